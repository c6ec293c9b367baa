"""``python -m services.feedback``: runs the feedback service until SIGTERM."""

import asyncio

from services.common.logging import configure_logging
from services.feedback import server
from services.feedback.settings import FeedbackSettings


def main() -> None:
    """Reads the settings, sets up logging and serves."""
    settings = FeedbackSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(server.run(settings))


if __name__ == "__main__":
    main()
