"""``python -m services.catalog``: runs the catalog service until SIGTERM."""

import asyncio

from services.catalog import server
from services.catalog.settings import CatalogSettings
from services.common.logging import configure_logging


def main() -> None:
    """Reads the settings, sets up logging and serves."""
    settings = CatalogSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(server.run(settings))


if __name__ == "__main__":
    main()
