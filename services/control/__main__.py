"""``python -m services.control``: runs the control service until SIGTERM."""

import asyncio

from services.common.logging import configure_logging
from services.control import server
from services.control.settings import ControlSettings


def main() -> None:
    """Reads the settings, sets up logging and serves."""
    settings = ControlSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(server.run(settings))


if __name__ == "__main__":
    main()
