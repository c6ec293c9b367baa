"""``python -m services.embedder``: runs Triton over the model repository until SIGTERM."""

from services.common.logging import configure_logging
from services.embedder import server
from services.embedder.settings import EmbedderSettings


def main() -> None:
    """Reads the settings, sets up logging and serves."""
    settings = EmbedderSettings()
    configure_logging(settings.log_level, settings.log_format)
    server.run(settings)


if __name__ == "__main__":
    main()
