"""Settings of the embedder (``HEARBY_EMBEDDER_*``): the Triton server and its clients."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import PathList, ServiceSettings

BUNDLED_REPOSITORY = Path("models")
"""Versions that ship with hearby (tracked in git)."""
PUBLISH_REPOSITORY = Path("var/model_repository")
"""Where ``hearby publish`` writes new versions by default."""


class EmbedderSettings(ServiceSettings):
    """Where Triton runs, what it serves, and how clients call it.

    The embedder process is Triton itself, so ``host``/``port``/``metrics_port`` (from
    :class:`ServiceSettings`) are Triton's gRPC interface, gRPC port and metrics port.
    Other services build their :class:`~services.embedder.client.EmbedderClient` from the
    same class, so one ``HEARBY_EMBEDDER_URL`` points every caller at the server.

    Args:
        port: Triton's gRPC port (default 8001, Triton's usual).
        metrics_port: Triton's Prometheus port; 0 picks a free one (default 8002).
        url: ``host:port`` clients call; empty means ``host:port`` of this process's
            server (default empty).
        model_repositories: The Triton model repositories Triton serves together
            (``HEARBY_EMBEDDER_MODEL_REPOSITORIES``, the shared
            ``HEARBY_MODEL_REPOSITORIES``, or the older single-folder
            ``HEARBY_EMBEDDER_MODEL_REPOSITORY``; ``a:b`` or a JSON list). Default
            ``models`` (bundled versions, in git) and ``var/model_repository`` (where
            ``hearby publish`` writes). A version name must be unique across them.
        workdir: Scratch folder for Triton's backend directory and log (default
            ``var/embedder``).
        load_versions: Versions loaded at start (env: a JSON list, e.g. ``["ts-v1"]``);
            others load at run time through :mod:`services.embedder.versions`.
        request_timeout_seconds: Deadline of one inference request in seconds (default 30).
        load_timeout_seconds: Deadline of loading one version in seconds (default 180; a
            load took ~8.5 s on an idle 2-core machine, far longer under load).
        start_timeout_seconds: Seconds Triton may take to start, versions in
            ``load_versions`` included (default 300).
        max_batch: Windows per inference request (default 32); capped by the version's
            ``max_batch_size``. Triton's dynamic batcher merges requests further.
        concurrency: Inference requests one client keeps in flight at once (default 4):
            enough to keep every model instance busy, bounded so one long track cannot
            flood the queue.
        hop_seconds: Hop between the windows of a track in seconds (default 1.5, the
            hop ``trainer/evaluate.py`` uses, so served and offline embeddings agree).
        key_file: A file holding the embedder's access key. Triton then refuses
            inference and model management without it (header ``hearby-embedder-key``;
            health and metadata stay open), and every client sends it. Unset: Triton is
            open to whoever reaches its port (``hearby up`` always sets one).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_EMBEDDER_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = 8001
    metrics_port: int = 8002
    url: str = ""
    model_repositories: PathList = Field(
        (BUNDLED_REPOSITORY, PUBLISH_REPOSITORY),
        min_length=1,
        validation_alias=AliasChoices(
            "HEARBY_EMBEDDER_MODEL_REPOSITORIES",
            "HEARBY_MODEL_REPOSITORIES",
            "HEARBY_EMBEDDER_MODEL_REPOSITORY",
        ),
    )
    workdir: Path = Path("var/embedder")
    load_versions: tuple[str, ...] = ()
    request_timeout_seconds: PositiveFloat = 30.0
    load_timeout_seconds: PositiveFloat = 180.0
    start_timeout_seconds: PositiveFloat = 300.0
    max_batch: PositiveInt = 32
    concurrency: PositiveInt = 4
    hop_seconds: PositiveFloat = 1.5
    key_file: Path | None = None

    @property
    def access_key(self) -> str:
        """The embedder's access key ("" without ``key_file``).

        Raises:
            FileNotFoundError: ``key_file`` names a missing file.
        """
        if self.key_file is None:
            return ""
        try:
            return self.key_file.read_text().strip()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"HEARBY_EMBEDDER_KEY_FILE={self.key_file} does not exist"
            ) from None

    @property
    def triton_url(self) -> str:
        """The ``host:port`` clients call."""
        return self.url or f"{self.host}:{self.port}"

    @property
    def model_repository(self) -> Path:
        """The first of ``model_repositories``.

        Only for :class:`~services.embedder.client.EmbedderClient`, which reads a manifest
        from one folder for versions published before the Triton config carried their
        sample rate; everything else uses ``model_repositories``.
        """
        return self.model_repositories[0]
