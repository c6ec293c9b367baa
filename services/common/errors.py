"""Domain errors: raised by service logic, mapped to gRPC status codes in one place.

Domain modules raise these without importing grpc; ``interceptors.py`` turns each into the
status code named by its ``status`` attribute, with the message as the details string.
Messages are for the caller: say what was wrong and what to do about it.
"""

from __future__ import annotations


class HearbyError(Exception):
    """Base of all domain errors.

    Attributes:
        status: Name of the ``grpc.StatusCode`` member this error maps to.
    """

    status = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(HearbyError):
    """The request is malformed: a bad id, k, filter, payload or audio."""

    status = "INVALID_ARGUMENT"


class NotFound(HearbyError):
    """A named thing (track, version, experiment, collection) does not exist."""

    status = "NOT_FOUND"


class AlreadyExists(HearbyError):
    """A create request names something that exists and must not be overwritten."""

    status = "ALREADY_EXISTS"


class FailedPrecondition(HearbyError):
    """The thing exists but is in the wrong state (e.g. a version that is not READY)."""

    status = "FAILED_PRECONDITION"


class ResourceExhausted(HearbyError):
    """A size, rate or quota limit was exceeded."""

    status = "RESOURCE_EXHAUSTED"


class Unavailable(HearbyError):
    """A dependency (Redis, Milvus, Triton) cannot be reached right now; retry later."""

    status = "UNAVAILABLE"


class DeadlineExceeded(HearbyError):
    """The work did not finish within the caller's deadline."""

    status = "DEADLINE_EXCEEDED"


class PermissionDenied(HearbyError):
    """The caller is known but may not do this."""

    status = "PERMISSION_DENIED"


class Unauthenticated(HearbyError):
    """The caller did not present valid credentials."""

    status = "UNAUTHENTICATED"
