"""Typed async client of ``ExperimentService``.

Returns domain objects (:class:`~services.control.experiments.Experiment`,
:class:`~services.control.ab_report.Report`, ...) and raises the domain errors of
``services/common/errors.py`` (NotFound, FailedPrecondition, ...) for the status codes the
service returns, so callers (``hearby experiment``, the dashboard, tests) never handle
protos or ``grpc.aio.AioRpcError``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping

import grpc

from hearby.control.v1 import experiment_pb2 as pb
from hearby.control.v1 import experiment_pb2_grpc
from services.common import rpc
from services.control.ab_report import Report
from services.control.experiment_servicer import (
    assignment_from_proto,
    experiment_from_proto,
    experiment_to_proto,
    report_from_proto,
)
from services.control.experiments import Assignment, Experiment


class ExperimentClient:
    """Calls ``ExperimentService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the control service (the caller owns it).
        timeout_seconds: Deadline of each call; a slower call raises DeadlineExceeded.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        self._timeout = timeout_seconds

    async def create(self, experiment: Experiment) -> Experiment:
        """Creates an experiment in state DRAFT.

        Args:
            experiment: Name, description, arms (READY versions, in bucket order) and
                salt ("" uses the name); its state, kill switch and times are ignored.

        Raises:
            InvalidArgument: Bad name, salt or arms.
            NotFound: An arm's version is not registered.
            FailedPrecondition: An arm's version is not READY.
            AlreadyExists: The name is taken.
        """
        request = pb.CreateExperimentRequest(experiment=experiment_to_proto(experiment))
        reply = await rpc.call(self._stub.CreateExperiment(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def get(self, name: str) -> Experiment:
        """One experiment. Raises NotFound for an unknown name."""
        request = pb.GetExperimentRequest(name=name)
        reply = await rpc.call(self._stub.GetExperiment(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def list(self) -> builtins.list[Experiment]:
        """All experiments, newest first."""
        request = pb.ListExperimentsRequest()
        reply = await rpc.call(self._stub.ListExperiments(request, timeout=self._timeout))
        return [experiment_from_proto(e) for e in reply.experiments]

    async def start(self, name: str) -> Experiment:
        """DRAFT or STOPPED -> RUNNING.

        Raises:
            NotFound: No such experiment, or an arm's version is not registered.
            FailedPrecondition: It or another experiment is RUNNING, or an arm's version
                is not READY.
        """
        request = pb.StartExperimentRequest(name=name)
        reply = await rpc.call(self._stub.StartExperiment(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def stop(self, name: str) -> Experiment:
        """Stops it. Raises FailedPrecondition if it is not running."""
        request = pb.StopExperimentRequest(name=name)
        reply = await rpc.call(self._stub.StopExperiment(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def set_weights(self, name: str, weights: Mapping[str, float]) -> Experiment:
        """Sets every arm's weight (a ramp); users whose bucket stays in their arm keep it.

        Raises:
            InvalidArgument: A missing or unknown arm, or bad weights.
        """
        request = pb.SetWeightsRequest(name=name, weights=dict(weights))
        reply = await rpc.call(self._stub.SetWeights(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def set_kill_switch(self, name: str, on: bool) -> Experiment:
        """Turns the kill switch on (everyone gets the default version) or off."""
        request = pb.SetKillSwitchRequest(name=name, on=on)
        reply = await rpc.call(self._stub.SetKillSwitch(request, timeout=self._timeout))
        return experiment_from_proto(reply.experiment)

    async def assign(self, name: str, user_id: str) -> Assignment:
        """The arm a user is (or would be) assigned to; the arm's weight reads 0.

        Raises:
            InvalidArgument: Empty user id.
            NotFound: No such experiment.
        """
        request = pb.GetAssignmentRequest(name=name, user_id=user_id)
        reply = await rpc.call(self._stub.GetAssignment(request, timeout=self._timeout))
        return assignment_from_proto(reply)

    async def report(self, name: str) -> Report:
        """Per-arm metrics with 95 % intervals and the SRM verdict.

        Raises:
            NotFound: No such experiment.
            FailedPrecondition: The service cannot read the feedback counters.
        """
        request = pb.GetReportRequest(name=name)
        return report_from_proto(
            await rpc.call(self._stub.GetReport(request, timeout=self._timeout))
        )
