"""``ExperimentService`` over gRPC: converts protos to domain objects and back.

The work is done by :class:`~services.control.experiments.ExperimentStore` and
:mod:`services.control.ab_report`; their domain errors become status codes in the common
interceptor, so the handlers just let them rise.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hearby.control.v1 import experiment_pb2 as pb
from hearby.control.v1 import experiment_pb2_grpc
from services.common.errors import FailedPrecondition
from services.control.ab_report import ArmCounts, ArmReport, Rate, Report, build_report
from services.control.experiments import (
    Arm,
    Assignment,
    Experiment,
    ExperimentState,
    ExperimentStore,
    assignment,
)

logger = logging.getLogger(__name__)

# Where GetReport gets its numbers: experiment name -> arm name -> counts (in production
# the feedback service's ``EventLog.arm_counts``).
CountsSource = Callable[[str], Awaitable[Mapping[str, ArmCounts]]]

_STATE_TO_PROTO = {
    ExperimentState.DRAFT: pb.EXPERIMENT_STATE_DRAFT,
    ExperimentState.RUNNING: pb.EXPERIMENT_STATE_RUNNING,
    ExperimentState.STOPPED: pb.EXPERIMENT_STATE_STOPPED,
}
_STATE_FROM_PROTO = {value: key for key, value in _STATE_TO_PROTO.items()}


def _timestamp(when: dt.datetime | None) -> Timestamp | None:
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _datetime(message: pb.Experiment, field: str) -> dt.datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.UTC)


def experiment_to_proto(experiment: Experiment) -> pb.Experiment:
    """The proto ``Experiment`` of a domain experiment (unset times stay unset)."""
    return pb.Experiment(
        name=experiment.name,
        description=experiment.description,
        arms=[pb.Arm(name=a.name, version=a.version, weight=a.weight) for a in experiment.arms],
        salt=experiment.salt,
        state=_STATE_TO_PROTO[experiment.state],
        kill_switch=experiment.kill_switch,
        created_at=_timestamp(experiment.created_at),
        started_at=_timestamp(experiment.started_at),
        stopped_at=_timestamp(experiment.stopped_at),
    )


def experiment_from_proto(message: pb.Experiment) -> Experiment:
    """The domain experiment of a proto one; an UNSPECIFIED state reads as DRAFT.

    Not validated here: the store validates what it is asked to create.
    """
    return Experiment(
        name=message.name,
        description=message.description,
        arms=tuple(Arm(a.name, a.version, a.weight) for a in message.arms),
        salt=message.salt,
        state=_STATE_FROM_PROTO.get(message.state, ExperimentState.DRAFT),
        kill_switch=message.kill_switch,
        created_at=_datetime(message, "created_at"),
        started_at=_datetime(message, "started_at"),
        stopped_at=_datetime(message, "stopped_at"),
    )


def _rate_to_proto(rate: Rate) -> pb.Rate:
    return pb.Rate(
        successes=rate.successes,
        trials=rate.trials,
        value=rate.value,
        ci_low=rate.ci_low,
        ci_high=rate.ci_high,
    )


def _rate_from_proto(message: pb.Rate) -> Rate:
    return Rate(message.successes, message.trials, message.value, message.ci_low, message.ci_high)


def report_to_proto(report: Report) -> pb.GetReportResponse:
    """The GetReport response of a domain report (observed shares are left to readers)."""
    return pb.GetReportResponse(
        experiment=experiment_to_proto(report.experiment),
        arms=[
            pb.ArmReport(
                arm=a.arm,
                version=a.version,
                users=a.users,
                impressions=a.impressions,
                play_rate=_rate_to_proto(a.play_rate),
                like_rate=_rate_to_proto(a.like_rate),
                skip_rate=_rate_to_proto(a.skip_rate),
                completion_rate=_rate_to_proto(a.completion_rate),
                expected_share=a.expected_share,
            )
            for a in report.arms
        ],
        srm_p_value=report.srm_p_value,
        srm_detected=report.srm_detected,
    )


def report_from_proto(message: pb.GetReportResponse) -> Report:
    """The domain report of a GetReport response; observed shares are recomputed."""
    total = sum(a.users for a in message.arms)
    arms = tuple(
        ArmReport(
            arm=a.arm,
            version=a.version,
            users=a.users,
            impressions=a.impressions,
            play_rate=_rate_from_proto(a.play_rate),
            like_rate=_rate_from_proto(a.like_rate),
            skip_rate=_rate_from_proto(a.skip_rate),
            completion_rate=_rate_from_proto(a.completion_rate),
            expected_share=a.expected_share,
            observed_share=a.users / total if total else 0.0,
        )
        for a in message.arms
    )
    return Report(
        experiment_from_proto(message.experiment),
        arms,
        message.srm_p_value,
        message.srm_detected,
    )


def assignment_from_proto(message: pb.GetAssignmentResponse) -> Assignment:
    """The domain assignment of a GetAssignment response (the arm's weight is not sent)."""
    return Assignment(Arm(message.arm, message.version, 0.0), message.bucket, message.active)


class ExperimentServicer(experiment_pb2_grpc.ExperimentServiceServicer):
    """Serves the experiment store over gRPC.

    Args:
        store: The Redis-backed experiment store.
        counts: Per-arm counts of an experiment for GetReport; None answers GetReport
            with FAILED_PRECONDITION (this deployment cannot see the feedback counters).
    """

    def __init__(self, store: ExperimentStore, counts: CountsSource | None = None) -> None:
        self._store = store
        self._counts = counts

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateExperimentResponse:
        """Creates an experiment in state DRAFT."""
        experiment = await self._store.create(experiment_from_proto(request.experiment))
        logger.info(
            "created experiment %s: %s",
            experiment.name,
            ", ".join(f"{a.name}={a.version}:{a.weight:g}" for a in experiment.arms),
        )
        return pb.CreateExperimentResponse(experiment=experiment_to_proto(experiment))

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExperimentResponse:
        """One experiment."""
        experiment = await self._store.get(request.name)
        return pb.GetExperimentResponse(experiment=experiment_to_proto(experiment))

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExperimentsResponse:
        """All experiments, newest first."""
        experiments = await self._store.list()
        return pb.ListExperimentsResponse(experiments=[experiment_to_proto(e) for e in experiments])

    async def StartExperiment(
        self, request: pb.StartExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartExperimentResponse:
        """DRAFT or STOPPED -> RUNNING."""
        experiment = await self._store.start(request.name)
        logger.info("started experiment %s", experiment.name)
        return pb.StartExperimentResponse(experiment=experiment_to_proto(experiment))

    async def StopExperiment(
        self, request: pb.StopExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopExperimentResponse:
        """RUNNING -> STOPPED."""
        experiment = await self._store.stop(request.name)
        logger.info("stopped experiment %s", experiment.name)
        return pb.StopExperimentResponse(experiment=experiment_to_proto(experiment))

    async def SetWeights(
        self, request: pb.SetWeightsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetWeightsResponse:
        """Changes the arm weights."""
        experiment = await self._store.set_weights(request.name, dict(request.weights))
        logger.info(
            "experiment %s weights: %s",
            experiment.name,
            ", ".join(f"{a.name}={a.weight:g}" for a in experiment.arms),
        )
        return pb.SetWeightsResponse(experiment=experiment_to_proto(experiment))

    async def SetKillSwitch(
        self, request: pb.SetKillSwitchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetKillSwitchResponse:
        """Turns the kill switch on or off."""
        experiment = await self._store.set_kill_switch(request.name, request.on)
        # A warning: someone pulled the emergency brake (or released it).
        logger.warning(
            "experiment %s kill switch %s", experiment.name, "ON" if request.on else "off"
        )
        return pb.SetKillSwitchResponse(experiment=experiment_to_proto(experiment))

    async def GetAssignment(
        self, request: pb.GetAssignmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAssignmentResponse:
        """The arm a user is (or would be) assigned to."""
        experiment = await self._store.get(request.name)
        result = assignment(experiment, request.user_id)
        return pb.GetAssignmentResponse(
            arm=result.arm.name,
            version=result.arm.version,
            bucket=result.bucket,
            active=result.active,
        )

    async def GetReport(
        self, request: pb.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetReportResponse:
        """Per-arm metrics with 95 % intervals and the SRM check."""
        experiment = await self._store.get(request.name)
        if self._counts is None:
            raise FailedPrecondition(
                "this control service has no access to the feedback counters "
                "(services.feedback.events is not installed), so it cannot build reports"
            )
        counts = await self._counts(experiment.name)
        return report_to_proto(build_report(experiment, counts))
