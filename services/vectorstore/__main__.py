"""``python -m services.vectorstore``: the vectorstore gRPC service."""

from __future__ import annotations

import asyncio
import logging

from services.common.logging import configure_logging
from services.vectorstore import server
from services.vectorstore.settings import VectorStoreSettings
from services.vectorstore.store import StoreStartupError


def main() -> None:
    """Loads settings, configures logging and serves; exits 1 if the store cannot start."""
    settings = VectorStoreSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(server.serve(settings))
    except StoreStartupError as exc:
        logging.getLogger("services.vectorstore").error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
