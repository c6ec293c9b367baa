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
        retry_after_seconds: When set, how long the caller should wait before retrying;
            sent as a ``google.rpc.RetryInfo`` in the status details.
    """

    status = "UNKNOWN"

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds


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


# Status code name -> the domain error that produces it: the inverse of ``status``. Listed
# by hand, not gathered from ``__subclasses__()``, so that a service's own subclass (e.g.
# the embedder's INTERNAL error) never takes over a code, whatever was imported first.
_BY_STATUS: dict[str, type[HearbyError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
    )
}


def from_status(code_name: str, message: str) -> HearbyError:
    """The domain error for a status code a hearby service answered with.

    The inverse of the interceptor's mapping, for clients: a service that raised
    ``NotFound("...")`` makes its client raise ``NotFound("...")`` again.

    Args:
        code_name: Name of the ``grpc.StatusCode`` member, e.g. ``"NOT_FOUND"``.
        message: The status details; when empty, the code name stands in.

    Returns:
        The matching subclass, or :class:`HearbyError` itself for codes no domain error
        produces (INTERNAL, UNKNOWN, CANCELLED, ...).
    """
    cls = _BY_STATUS.get(code_name, HearbyError)
    return cls(message or code_name)
