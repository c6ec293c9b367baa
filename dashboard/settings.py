"""Settings of the dashboard: where the services are, where Streamlit listens.

Read from ``HEARBY_DASHBOARD_*`` environment variables; each service address also accepts
the shared variable ``hearby up`` sets for every part (``HEARBY_CONTROL_ADDRESS``, ...).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8501


def _address(service: str, default: str) -> object:
    """A ``host:port`` field read from the dashboard's own variable or the shared one."""
    return Field(
        default=default,
        validation_alias=AliasChoices(
            f"HEARBY_DASHBOARD_{service}_ADDRESS", f"HEARBY_{service}_ADDRESS"
        ),
    )


class DashboardSettings(BaseSettings):
    """The dashboard's settings.

    Args:
        host: Interface Streamlit binds (default ``127.0.0.1``).
        port: Streamlit's HTTP port (default 8501).
        control_address: ``host:port`` of the control service (versions, experiments;
            default ``127.0.0.1:50051``).
        vectorstore_address: ``host:port`` of the vector store (embedding map; default
            ``127.0.0.1:50052``).
        ranker_address: ``host:port`` of the ranker (neighbour lists; default
            ``127.0.0.1:50053``).
        catalog_address: ``host:port`` of the catalog (labels, audio; default
            ``127.0.0.1:50054``).
        feedback_address: ``host:port`` of the feedback service (ratings; default
            ``127.0.0.1:50055``).
        timeout_seconds: Deadline of each service call in seconds (default 10); a page
            shows a readable error instead of waiting longer.
        k: Neighbours shown per list by default (default 10, at most 50).
        catalog_cache_seconds: How long the track list used for seed search is reused
            before it is fetched again (default 30 s).
        max_upload_mib: Largest audio file the Compare page accepts as a seed, in MiB
            (default 64, the ranker's own limit).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_DASHBOARD_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    control_address: str = _address("CONTROL", "127.0.0.1:50051")  # type: ignore[assignment]
    vectorstore_address: str = _address("VECTORSTORE", "127.0.0.1:50052")  # type: ignore[assignment]
    ranker_address: str = _address("RANKER", "127.0.0.1:50053")  # type: ignore[assignment]
    catalog_address: str = _address("CATALOG", "127.0.0.1:50054")  # type: ignore[assignment]
    feedback_address: str = _address("FEEDBACK", "127.0.0.1:50055")  # type: ignore[assignment]
    timeout_seconds: float = 10.0
    k: int = Field(default=10, ge=1, le=50)
    catalog_cache_seconds: float = 30.0
    max_upload_mib: int = 64
