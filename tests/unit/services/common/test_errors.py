"""Domain errors: the inverse mapping clients use, status code name -> error."""

from __future__ import annotations

import pytest

from services.common import errors


@pytest.mark.parametrize(
    "cls",
    [
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.FailedPrecondition,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.DeadlineExceeded,
        errors.PermissionDenied,
        errors.Unauthenticated,
    ],
)
def test_from_status_returns_the_error_whose_status_it_is(cls):
    error = errors.from_status(cls.status, "what went wrong")
    assert type(error) is cls
    assert error.message == "what went wrong"


def test_from_status_falls_back_to_the_base_error_for_codes_no_domain_error_has():
    error = errors.from_status("INTERNAL", "internal error, incident abc")
    assert type(error) is errors.HearbyError
    assert error.message == "internal error, incident abc"


def test_from_status_ignores_subclasses_defined_outside_errors():
    class ServiceOwnError(errors.HearbyError):
        status = "INTERNAL"

    assert type(errors.from_status("INTERNAL", "x")) is errors.HearbyError


def test_from_status_uses_the_code_name_when_the_details_are_empty():
    assert errors.from_status("NOT_FOUND", "").message == "NOT_FOUND"
