"""The dashboard's backend against a port nobody listens on: a sentence, not a traceback."""

from __future__ import annotations

import pytest

from dashboard.queries import Backend, ServiceError
from dashboard.settings import DashboardSettings
from services.common.errors import FailedPrecondition, Unavailable
from services.common.processes import free_port


@pytest.fixture
def backend() -> Backend:
    nowhere = f"127.0.0.1:{free_port('127.0.0.1')}"
    settings = DashboardSettings(
        control_address=nowhere,
        catalog_address=nowhere,
        ranker_address=nowhere,
        feedback_address=nowhere,
        vectorstore_address=nowhere,
        timeout_seconds=2.0,
    )
    backend = Backend(settings)
    yield backend
    backend.close()


def test_backend_names_the_service_and_its_address_when_it_cannot_be_reached(
    backend: Backend,
) -> None:
    with pytest.raises(ServiceError) as caught:
        backend.ratings()
    error = caught.value
    assert error.status == "UNAVAILABLE"
    assert str(error).startswith(
        f"The feedback service ({backend.settings.feedback_address}) is unavailable: "
    )
    assert "hearby up" in str(error)
    with pytest.raises(ServiceError, match="The control service"):
        backend.versions()


def test_service_error_passes_the_service_message_through_for_other_codes() -> None:
    error = ServiceError("ranker", "h:1", FailedPrecondition("'v1' is RETIRED, not READY"))
    assert str(error) == "ranker: 'v1' is RETIRED, not READY"
    assert error.status == "FAILED_PRECONDITION"
    unavailable = ServiceError("catalog", "h:2", Unavailable("redis is down"))
    assert "The catalog service (h:2) is unavailable: redis is down." in str(unavailable)
