"""``python -m services.ingest``: runs one ingest worker until SIGTERM.

One worker per process; run several processes (``hearby up`` does) to spread the stream
over a consumer group.
"""

import asyncio

from services.common.logging import configure_logging
from services.ingest import consumer
from services.ingest.settings import IngestSettings


def main() -> None:
    """Reads the settings, sets up logging and consumes."""
    settings = IngestSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(consumer.serve(settings))


if __name__ == "__main__":
    main()
