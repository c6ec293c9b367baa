"""Settings of the dashboard: where the services are, where Streamlit listens, who logs in.

Read from ``HEARBY_DASHBOARD_*`` environment variables; each service address also accepts
the shared variable ``hearby up`` sets for every part (``HEARBY_CONTROL_ADDRESS``, ...).
Whether people must log in is not a dashboard setting: it follows the stack's one
authentication switch, ``HEARBY_AUTH`` (:class:`services.common.settings_base.SecuritySettings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings_base import SecuritySettings

DEFAULT_PORT = 8501
# Next to the stack's API key file (var/stack/keys/keys.json), where `hearby up` keeps it.
DEFAULT_USERS_FILE = Path("var/stack/keys/dashboard-users.json")


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
        users_file: The JSON file of the people who may log in (``hearby dashboard-users``
            writes it; default ``var/stack/keys/dashboard-users.json``). Read only while
            login is on (see :attr:`login_required`).
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
    users_file: Path = DEFAULT_USERS_FILE

    @property
    def login_required(self) -> bool:
        """Whether people must log in: exactly when the stack requires API keys.

        One switch for the whole stack: ``HEARBY_AUTH=off`` turns off both the services'
        API keys and this login (local development and tests only).
        """
        return SecuritySettings().auth == "keys"
