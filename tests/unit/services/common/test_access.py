"""Who may call what: scopes from the proto contract, the key in metadata, the per-call check."""

from __future__ import annotations

import pytest

from hearby.catalog.v1 import catalog_pb2
from hearby.common.v1 import auth_pb2
from hearby.control.v1 import control_pb2, experiment_pb2
from hearby.feedback.v1 import feedback_pb2
from hearby.ranker.v1 import ranker_pb2
from hearby.vectorstore.v1 import vectorstore_pb2
from services.common.access import AccessControl, presented_key, required_scope
from services.common.auth import KeyStore, Scope, add_key
from services.common.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from services.common.ratelimit import RateLimiter
from services.common.settings_base import SecuritySettings

SERVICES = [
    service
    for module in (
        catalog_pb2,
        control_pb2,
        experiment_pb2,
        feedback_pb2,
        ranker_pb2,
        vectorstore_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
]


def test_every_hearby_rpc_names_its_scope_in_the_proto():
    unmarked = [
        method.full_name
        for service in SERVICES
        for method in service.methods
        if method.GetOptions().Extensions[auth_pb2.required_scope] == auth_pb2.SCOPE_UNSPECIFIED
    ]
    assert not unmarked
    assert sum(len(service.methods) for service in SERVICES) >= 36


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("/hearby.ranker.v1.RankerService/Recommend", Scope.READ),
        ("/hearby.ranker.v1.RankerService/Session", Scope.READ),
        ("/hearby.catalog.v1.CatalogService/SubmitTrack", Scope.WRITE),
        ("/hearby.feedback.v1.FeedbackService/RecordEvents", Scope.WRITE),
        ("/hearby.control.v1.ControlService/RetireVersion", Scope.ADMIN),
        ("/hearby.control.v1.ExperimentService/SetWeights", Scope.ADMIN),
        ("/no.such.Service/Method", Scope.ADMIN),
    ],
)
def test_required_scope_follows_the_issue_and_unknown_methods_need_admin(method, scope):
    assert required_scope(method) is scope


def test_the_key_is_read_from_bearer_authorization_or_x_api_key():
    assert presented_key([("authorization", "Bearer hb_1")]) == "hb_1"
    assert presented_key([("authorization", "bearer  hb_2 ")]) == "hb_2"
    assert presented_key([("x-api-key", b"hb_3")]) == "hb_3"
    assert presented_key([("authorization", "Basic abc")]) == ""
    assert presented_key(None) == ""


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    reader, _ = add_key(path, "reader", frozenset({Scope.READ}), rate_per_second=1)
    admin, _ = add_key(path, "ops", frozenset({Scope.ADMIN}), rate_per_second=0)
    return path, reader, admin


def test_check_admits_by_scope_and_keeps_health_open(keys):
    path, reader, admin = keys
    access = AccessControl(KeyStore(path), default_rate=100, limiter=RateLimiter(5.0))
    bearer = [("authorization", f"Bearer {reader}")]
    assert access.check("/hearby.ranker.v1.RankerService/Similar", bearer).label.endswith(":reader")
    assert access.check("/grpc.health.v1.Health/Check", None).key is None
    with pytest.raises(Unauthenticated, match="missing API key"):
        access.check("/hearby.ranker.v1.RankerService/Similar", None)
    with pytest.raises(PermissionDenied):
        access.check("/hearby.control.v1.ControlService/RegisterVersion", bearer)
    admin_md = [("authorization", f"Bearer {admin}")]
    assert access.check("/hearby.control.v1.ControlService/RegisterVersion", admin_md).key


def test_check_refuses_a_key_over_its_rate_with_a_retry_time(keys):
    path, reader, admin = keys
    # A stopped clock: no token comes back between the calls, however slow the machine.
    limiter = RateLimiter(1.0, clock=lambda: 100.0)
    access = AccessControl(KeyStore(path), default_rate=100, limiter=limiter)
    bearer = [("authorization", f"Bearer {reader}")]
    access.check("/hearby.ranker.v1.RankerService/Similar", bearer)
    with pytest.raises(ResourceExhausted, match="over its rate limit of 1 calls/s") as err:
        access.check("/hearby.ranker.v1.RankerService/Similar", bearer)
    assert 0 < err.value.retry_after_seconds <= 1.0
    unlimited = [("authorization", f"Bearer {admin}")]
    for _ in range(1000):
        access.check("/hearby.ranker.v1.RankerService/Similar", unlimited)


def test_from_settings_needs_a_key_file_unless_auth_is_off(tmp_path):
    with pytest.raises(FileNotFoundError, match="HEARBY_AUTH_KEYS_FILE is not set"):
        AccessControl.from_settings(SecuritySettings(auth="keys"))
    assert AccessControl.from_settings(SecuritySettings(auth="off")).keys is None
