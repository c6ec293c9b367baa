"""ExperimentService as served by the control server (in-process, free port, real Redis).

Drives it through the typed client, the raw stub (status codes) and ``hearby experiment``
(run in a thread: the CLI runs its own event loop while this one serves).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hearby.cli import main as hearby_main
from hearby.control.v1 import experiment_pb2 as pb
from hearby.control.v1 import experiment_pb2_grpc
from services.common.errors import FailedPrecondition, NotFound
from services.common.processes import free_port
from services.control import server
from services.control.ab_report import ArmCounts
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Arm, Experiment, ExperimentState, bucket
from services.control.registry import VersionRegistry
from services.control.settings import ControlSettings
from tests.unit.services.control.manifests import manifest_json

Code = grpc.StatusCode
ARMS = (Arm("control", "v1", 1), Arm("treatment", "v2", 1))
COUNTS = {
    "control": ArmCounts(users=500, impressions=1500, shown=15000, plays=1500, likes=150,
                         skips=300, completes=900),
    "treatment": ArmCounts(users=520, impressions=1580, shown=15800, plays=1900, likes=250,
                           skips=280, completes=1300),
}  # fmt: skip


async def fixed_counts(experiment: str) -> Mapping[str, ArmCounts]:
    """Counts as the feedback event log would return them for ``exp``."""
    return COUNTS if experiment == "exp" else {}


async def ready(registry: VersionRegistry, *names: str) -> None:
    """Registers versions and walks them to READY, as the backfill job does."""
    for name in names:
        await registry.register(name, manifest_json(name))
        await registry.start_backfill(name, 2)
        await registry.complete_backfill(name)


async def _serve(redis_url: str, counts) -> AsyncIterator[str]:
    settings = ControlSettings(port=0, metrics_port=0, redis_url=redis_url, lifecycle=False)
    running, client = await server.start(settings, counts=counts)
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.stop(0.5)
        await client.aclose()


@pytest.fixture
def registry(async_redis: aioredis.Redis) -> VersionRegistry:
    """A version registry over an empty database."""
    return VersionRegistry(async_redis)


@pytest.fixture
async def address(redis_server, registry) -> AsyncIterator[str]:
    """The control service with v1 and v2 READY and v3 PUBLISHED; reports from COUNTS."""
    await ready(registry, "v1", "v2")
    await registry.register("v3", manifest_json("v3"))
    async for served in _serve(redis_server.url, fixed_counts):
        yield served


@pytest.fixture
async def channel(address) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(address) as opened:
        yield opened


@pytest.fixture
def experiments(channel) -> ExperimentClient:
    return ExperimentClient(channel)


@pytest.fixture
def stub(channel) -> experiment_pb2_grpc.ExperimentServiceStub:
    return experiment_pb2_grpc.ExperimentServiceStub(channel)


async def cli(*args: str) -> int:
    """``hearby experiment ARGS`` in a thread (the CLI runs its own event loop)."""
    return await asyncio.to_thread(hearby_main, ["experiment", *args])


async def test_the_experiment_service_reports_serving_next_to_the_control_service(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("hearby.control.v1.ExperimentService", "hearby.control.v1.ControlService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_client_walks_an_experiment_from_draft_through_a_ramp_to_stopped(experiments):
    created = await experiments.create(Experiment("exp", "does ts+ps help?", ARMS))
    assert (created.state, created.salt, created.arms) == (ExperimentState.DRAFT, "exp", ARMS)
    assert created.created_at is not None and created.started_at is None
    assert [e.name for e in await experiments.list()] == ["exp"]
    assert not (await experiments.assign("exp", "u1")).active
    started = await experiments.start("exp")
    assert started.active and started.started_at is not None
    found = await experiments.assign("exp", "u1")
    assert found.active and found.bucket == bucket("exp", "u1")
    assert (found.arm.name, found.arm.version) in {("control", "v1"), ("treatment", "v2")}
    ramped = await experiments.set_weights("exp", {"control": 90, "treatment": 10})
    assert [a.weight for a in ramped.arms] == [90.0, 10.0]
    killed = await experiments.set_kill_switch("exp", True)
    assert killed.kill_switch and not killed.active
    assert not (await experiments.assign("exp", "u1")).active
    stopped = await experiments.stop("exp")
    assert stopped.state is ExperimentState.STOPPED and stopped.stopped_at is not None
    assert await experiments.get("exp") == stopped


async def test_the_report_carries_rates_intervals_shares_and_the_srm_check(experiments):
    await experiments.create(Experiment("exp", "", ARMS))
    report = await experiments.report("exp")
    control, treatment = report.arms
    assert (control.arm, control.version, control.users, control.impressions) == (
        "control",
        "v1",
        500,
        1500,
    )
    assert control.play_rate.value == pytest.approx(0.1)
    assert control.play_rate.ci_low < 0.1 < control.play_rate.ci_high
    assert treatment.completion_rate.successes == 1300
    assert treatment.like_rate.trials == 1900
    assert (control.expected_share, treatment.expected_share) == (0.5, 0.5)
    assert treatment.observed_share == pytest.approx(520 / 1020)
    assert 0.5 < report.srm_p_value < 1 and not report.srm_detected


@pytest.mark.parametrize(
    ("call", "request_", "code", "message"),
    [
        ("GetExperiment", pb.GetExperimentRequest(name="nope"), Code.NOT_FOUND, "does not exist"),
        ("StartExperiment", pb.StartExperimentRequest(name="nope"), Code.NOT_FOUND, "nope"),
        ("GetReport", pb.GetReportRequest(name="nope"), Code.NOT_FOUND, "nope"),
        (
            "GetExperiment",
            pb.GetExperimentRequest(name="Bad Name"),
            Code.INVALID_ARGUMENT,
            "use 1-64 characters",
        ),
        (
            "CreateExperiment",
            pb.CreateExperimentRequest(
                experiment=pb.Experiment(name="one", arms=[pb.Arm(name="c", version="v1")])
            ),
            Code.INVALID_ARGUMENT,
            "give at least two",
        ),
        (
            "CreateExperiment",
            pb.CreateExperimentRequest(
                experiment=pb.Experiment(
                    name="zero",
                    arms=[pb.Arm(name="c", version="v1"), pb.Arm(name="t", version="v2")],
                )
            ),
            Code.INVALID_ARGUMENT,
            "sum to 0",
        ),
        (
            "CreateExperiment",
            pb.CreateExperimentRequest(
                experiment=pb.Experiment(
                    name="notready",
                    arms=[
                        pb.Arm(name="c", version="v1", weight=1),
                        pb.Arm(name="t", version="v3", weight=1),
                    ],
                )
            ),
            Code.FAILED_PRECONDITION,
            "version 'v3' is PUBLISHED, not READY",
        ),
        (
            "CreateExperiment",
            pb.CreateExperimentRequest(
                experiment=pb.Experiment(
                    name="unknown",
                    arms=[
                        pb.Arm(name="c", version="v1", weight=1),
                        pb.Arm(name="t", version="v9", weight=1),
                    ],
                )
            ),
            Code.NOT_FOUND,
            "version 'v9' is not registered",
        ),
        (
            "GetAssignment",
            pb.GetAssignmentRequest(name="nope", user_id="u1"),
            Code.NOT_FOUND,
            "does not exist",
        ),
    ],
)
async def test_bad_requests_get_their_status_codes(stub, call, request_, code, message):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(stub, call)(request_)
    assert raised.value.code() == code
    assert message in raised.value.details()


async def test_duplicates_and_a_second_running_experiment_are_refused(stub, experiments):
    await experiments.create(Experiment("exp", "", ARMS))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateExperiment(
            pb.CreateExperimentRequest(
                experiment=pb.Experiment(
                    name="exp",
                    arms=[
                        pb.Arm(name="c", version="v1", weight=1),
                        pb.Arm(name="t", version="v2", weight=1),
                    ],
                )
            )
        )
    assert raised.value.code() == Code.ALREADY_EXISTS
    await experiments.create(Experiment("other", "", ARMS))
    await experiments.start("exp")
    with pytest.raises(FailedPrecondition, match="'exp' is RUNNING; at most one"):
        await experiments.start("other")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetAssignment(pb.GetAssignmentRequest(name="exp", user_id=""))
    assert raised.value.code() == Code.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SetWeights(pb.SetWeightsRequest(name="exp", weights={"control": 1}))
    assert raised.value.code() == Code.INVALID_ARGUMENT
    assert "missing: treatment" in raised.value.details()


async def test_a_service_without_feedback_counts_refuses_reports(redis_server, registry):
    await ready(registry, "v1", "v2")
    async for address in _serve(redis_server.url, None):
        async with grpc.aio.insecure_channel(address) as opened:
            experiments = ExperimentClient(opened)
            await experiments.create(Experiment("exp", "", ARMS))
            with pytest.raises(FailedPrecondition, match="cannot build reports"):
                await experiments.report("exp")
            with pytest.raises(NotFound):
                await experiments.report("nope")


async def test_cli_creates_starts_ramps_and_reports_a_readable_table(address, capsys):
    control = ("--control", address)
    assert await cli("create", "exp", "--arm", "control=v1:50", "--arm", "treatment=v2:50",
                     "--description", "does ts+ps help?", *control) == 0  # fmt: skip
    assert "exp" in capsys.readouterr().out
    assert await cli("start", "exp", *control) == 0
    assert "RUNNING" in capsys.readouterr().out
    assert await cli("weights", "exp", "control=80", "treatment=20", *control) == 0
    assert "control=v1:80 (80.0%), treatment=v2:20 (20.0%)" in capsys.readouterr().out
    assert await cli("assign", "exp", "user-42", *control) == 0
    assert f"bucket {bucket('exp', 'user-42')}; active" in capsys.readouterr().out
    assert await cli("kill", "exp", "on", *control) == 0
    assert "KILL SWITCH ON" in capsys.readouterr().out
    assert await cli("list", *control) == 0
    assert capsys.readouterr().out.startswith("exp ")

    assert await cli("weights", "exp", "control=50", "treatment=50", *control) == 0
    capsys.readouterr()
    assert await cli("--control", address, "report", "exp") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("arm") and "users" in line)
    assert header.split() == [
        "arm", "version", "users", "impressions", "shown", "plays", "expected", "observed"
    ]  # fmt: skip
    control_row = next(line for line in lines if line.startswith("control") and "1500" in line)
    assert control_row.split() == [
        "control", "v1", "500", "1500", "15000", "1500", "50.0%", "49.0%"
    ]  # fmt: skip
    rates = next(line for line in lines if line.startswith("arm") and "play/shown" in line)
    assert rates.split() == ["arm", "version", "play/shown", "like/play", "skip/play",
                             "complete/play"]  # fmt: skip
    treatment_rates = next(line for line in lines if line.startswith("treatment") and "[" in line)
    # Plays per shown 1900 / 15800 = 12.0 % with its Wilson interval.
    assert "12.0% [11.5%, 12.5%]" in treatment_rates
    assert "no sample ratio mismatch: p = 0.53" in out


async def test_cli_says_what_went_wrong_and_exits_1(address, capsys):
    assert await cli("show", "nope", "--control", address) == 1
    assert "error (NOT_FOUND): experiment 'nope' does not exist" in capsys.readouterr().err
    assert await cli("create", "exp", "--arm", "c=v1:1", "--control", address) == 1
    assert "give at least two" in capsys.readouterr().err
    nobody = f"127.0.0.1:{free_port()}"
    assert await cli("list", "--control", nobody, "--timeout", "1") == 1
    err = capsys.readouterr().err
    assert f"the control service at {nobody} is unavailable" in err and "is it running?" in err


async def test_cli_reads_the_control_address_from_the_environment(address, capsys, monkeypatch):
    monkeypatch.setenv("HEARBY_CONTROL_ADDRESS", address)
    assert await cli("list") == 0
    assert capsys.readouterr().out.strip() == "no experiments yet"


async def test_the_served_binding_reads_the_feedback_event_logs_arm_counters(
    redis_server, registry, async_redis, monkeypatch
):
    from services.feedback.events import EventLog, EventType, Impression, UserEvent

    await ready(registry, "v1", "v2")
    monkeypatch.setenv("HEARBY_FEEDBACK_REDIS_URL", redis_server.url)
    report_counts = server.connect_report_counts()
    try:
        async for address in _serve(redis_server.url, report_counts.counts):
            async with grpc.aio.insecure_channel(address) as opened:
                experiments = ExperimentClient(opened)
                await experiments.create(Experiment("exp", "", ARMS))
                await experiments.start("exp")
                found = await experiments.assign("exp", "u1")
                events = EventLog(async_redis)
                await events.record_impression(
                    Impression("r1", "u1", found.arm.version, "exp", found.arm.name, ("t1", "t2"))
                )
                await events.record([UserEvent("u1", "t1", EventType.PLAY, request_id="r1")])
                report = await experiments.report("exp")
    finally:
        await report_counts.close()
    served = next(a for a in report.arms if a.arm == found.arm.name)
    assert (served.users, served.impressions) == (1, 1)
    assert (served.play_rate.successes, served.play_rate.trials) == (1, 2)
