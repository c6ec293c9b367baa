"""``python -m services.ranker``: runs the ranker until SIGTERM."""

import asyncio

from services.common.logging import configure_logging
from services.ranker import server
from services.ranker.settings import RankerSettings


def main() -> None:
    """Reads the settings, sets up logging and serves."""
    settings = RankerSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(server.run(settings))


if __name__ == "__main__":
    main()
