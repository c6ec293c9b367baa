r"""``hearby experiment``: A/B experiments between encoder versions, through the control service.

    hearby experiment create tempo-v2 --arm control=v1:50 --arm treatment=v2:50 \
        --description "does the ts+ps encoder keep listeners longer?"
    hearby experiment start tempo-v2
    hearby experiment weights tempo-v2 control=80 treatment=20   # a ramp
    hearby experiment kill tempo-v2 on                           # everyone on the default
    hearby experiment assign tempo-v2 user-42
    hearby experiment report tempo-v2                            # rates, intervals, SRM
    hearby experiment list | show NAME | stop NAME

The control service is found at ``--control``, else ``HEARBY_CONTROL_ADDRESS``, else
``127.0.0.1:50051``. Errors print the service's message and exit with 1. (The trainer's
grid of recipes x seeds is ``hearby sweep``.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.channels import open_channel
from services.common.errors import HearbyError, InvalidArgument, Unavailable
from services.control.ab_report import Report, format_rate
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Arm, Assignment, Experiment, shares
from services.control.settings import DEFAULT_PORT


class ExperimentCliSettings(BaseSettings):
    """Where ``hearby experiment`` finds the control service.

    Args:
        control_address: ``host:port`` of the control service
            (``HEARBY_EXPERIMENT_CONTROL_ADDRESS`` or the shared ``HEARBY_CONTROL_ADDRESS``;
            default ``127.0.0.1:50051``).
        timeout_seconds: Deadline of each call in seconds
            (``HEARBY_EXPERIMENT_TIMEOUT_SECONDS``; default 10).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_EXPERIMENT_", frozen=True, extra="ignore", populate_by_name=True
    )

    control_address: str = Field(
        f"127.0.0.1:{DEFAULT_PORT}",
        validation_alias=AliasChoices(
            "HEARBY_EXPERIMENT_CONTROL_ADDRESS", "HEARBY_CONTROL_ADDRESS"
        ),
    )
    timeout_seconds: float = Field(10.0, gt=0)


def parse_arm(spec: str) -> Arm:
    """An arm from ``name=version:weight`` (the weight defaults to 1).

    Raises:
        argparse.ArgumentTypeError: The spec is malformed.
    """
    name, sep, rest = spec.partition("=")
    version, _, weight = rest.partition(":")
    if not sep or not name or not version:
        raise argparse.ArgumentTypeError(
            f"arm {spec!r} must look like name=version:weight, e.g. control=v1:50"
        )
    try:
        value = float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"arm {spec!r}: weight {weight!r} is no number") from None
    return Arm(name, version, value)


def parse_weight(spec: str) -> tuple[str, float]:
    """An ``arm=weight`` pair.

    Raises:
        argparse.ArgumentTypeError: The spec is malformed.
    """
    name, sep, weight = spec.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"weight {spec!r} must look like arm=weight, e.g. treatment=20"
        ) from None


# --- output -------------------------------------------------------------------------------


def _when(experiment: Experiment) -> str:
    stamps = [
        ("created", experiment.created_at),
        ("started", experiment.started_at),
        ("stopped", experiment.stopped_at),
    ]
    return ", ".join(f"{label} {t:%Y-%m-%d %H:%M:%S} UTC" for label, t in stamps if t)


def describe(experiment: Experiment) -> str:
    """One line: name, state, kill switch, arms with their shares."""
    arms = ", ".join(
        f"{a.name}={a.version}:{a.weight:g} ({share:.1%})"
        for a, share in zip(experiment.arms, shares(experiment.arms), strict=True)
    )
    kill = "  KILL SWITCH ON" if experiment.kill_switch else ""
    return f"{experiment.name:<24} {experiment.state.value.upper():<8}{kill}  {arms}"


def describe_in_full(experiment: Experiment) -> str:
    """Several lines: everything about one experiment."""
    serving = (
        "assigning users"
        if experiment.active
        else "assigning nobody: everyone gets the default version"
    )
    lines = [
        describe(experiment),
        f"  description: {experiment.description or '-'}",
        f"  salt: {experiment.salt}",
        f"  {_when(experiment)}",
        f"  {serving}",
    ]
    return "\n".join(lines)


def describe_assignment(experiment: str, user_id: str, assignment: Assignment) -> str:
    """Where a user lands, and whether it applies now."""
    applies = (
        "active" if assignment.active else "inactive: the user gets the default version for now"
    )
    return (
        f"{user_id} in {experiment}: arm {assignment.arm.name} (version "
        f"{assignment.arm.version}), bucket {assignment.bucket}; {applies}"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    # Text left, numbers right: the first two columns are names.
    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def format_report(report: Report) -> str:
    """The report as tables for people: traffic, rates with 95 % intervals, SRM verdict."""
    experiment = report.experiment
    lines = [describe(experiment), ""]
    traffic = [
        [
            a.arm,
            a.version,
            str(a.users),
            str(a.impressions),
            str(a.play_rate.trials),
            str(a.like_rate.trials),
            f"{a.expected_share:.1%}",
            f"{a.observed_share:.1%}",
        ]
        for a in report.arms
    ]
    lines += _table(
        ["arm", "version", "users", "impressions", "shown", "plays", "expected", "observed"],
        traffic,
    )
    lines.append("")
    rates = [
        [
            a.arm,
            a.version,
            format_rate(a.play_rate),
            format_rate(a.like_rate),
            format_rate(a.skip_rate),
            format_rate(a.completion_rate),
        ]
        for a in report.arms
    ]
    lines += _table(
        ["arm", "version", "play/shown", "like/play", "skip/play", "complete/play"], rates
    )
    lines.append("(rates with their 95 % Wilson intervals; users are HyperLogLog estimates)")
    lines.append("")
    if report.srm_detected:
        lines.append(
            f"SAMPLE RATIO MISMATCH: p = {report.srm_p_value:.3g} < 0.001 (chi-square of users "
            "per arm vs. the configured shares). Assignment or logging is broken; do not "
            "trust the comparison until it is explained."
        )
    else:
        lines.append(
            f"no sample ratio mismatch: p = {report.srm_p_value:.3g} (chi-square of users per "
            "arm vs. the configured shares; flagged below 0.001)"
        )
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands, each with ``--control`` and ``--timeout``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n")[1] if __doc__ else None
    connection = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: after a subcommand these override the group's values only when given.
    connection.add_argument(
        "--control",
        default=argparse.SUPPRESS,
        help="host:port of the control service (HEARBY_CONTROL_ADDRESS, 127.0.0.1:50051)",
    )
    connection.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="call deadline in seconds (10)"
    )
    parser.add_argument("--control", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help_text, parents=[connection])

    create = action("create", "create an experiment (DRAFT)")
    create.add_argument("name", help="1-64 characters of a-z, 0-9, _ and -")
    create.add_argument(
        "--arm",
        dest="arms",
        action="append",
        type=parse_arm,
        required=True,
        metavar="NAME=VERSION:WEIGHT",
        help="an arm, in bucket order; give at least two (weight defaults to 1)",
    )
    create.add_argument("--salt", default="", help="hash salt (default: the name)")
    create.add_argument("--description", default="", help="what the experiment tests")
    action("list", "all experiments, newest first")
    for name, text in (
        ("show", "one experiment in full"),
        ("start", "start assigning users (at most one experiment runs)"),
        ("stop", "stop: users go back to the default version"),
        ("report", "per-arm rates with 95 %% intervals and the sample-ratio check"),
    ):
        action(name, text).add_argument("name")
    weights = action("weights", "set every arm's weight (a ramp)")
    weights.add_argument("name")
    weights.add_argument("weights", nargs="+", type=parse_weight, metavar="ARM=WEIGHT")
    kill = action("kill", "turn the kill switch on (default version for all) or off")
    kill.add_argument("name")
    kill.add_argument("switch", choices=["on", "off"])
    assign = action("assign", "the arm a user is (or would be) assigned to")
    assign.add_argument("name")
    assign.add_argument("user", help="user id")


async def _call(client: ExperimentClient, args: argparse.Namespace) -> str:
    """Runs one action and returns what to print."""
    if args.action == "create":
        wanted = Experiment(args.name, args.description, tuple(args.arms), args.salt)
        return describe_in_full(await client.create(wanted))
    if args.action == "list":
        experiments = await client.list()
        return "\n".join(describe(e) for e in experiments) or "no experiments yet"
    if args.action == "show":
        return describe_in_full(await client.get(args.name))
    if args.action == "start":
        return describe_in_full(await client.start(args.name))
    if args.action == "stop":
        return describe_in_full(await client.stop(args.name))
    if args.action == "weights":
        names = [name for name, _ in args.weights]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"an arm is named twice in {' '.join(names)}")
        return describe(await client.set_weights(args.name, dict(args.weights)))
    if args.action == "kill":
        return describe(await client.set_kill_switch(args.name, args.switch == "on"))
    if args.action == "assign":
        found = await client.assign(args.name, args.user)
        return describe_assignment(args.name, args.user, found)
    return format_report(await client.report(args.name))


async def _run(args: argparse.Namespace, address: str, timeout: float) -> str:
    async with open_channel(address) as channel:
        return await _call(ExperimentClient(channel, timeout), args)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby experiment``: prints the result, or the error and exits 1."""
    settings = ExperimentCliSettings()
    address = args.control or settings.control_address
    timeout = args.timeout or settings.timeout_seconds
    try:
        output = asyncio.run(_run(args, address, timeout))
    except Unavailable as exc:
        sys.stderr.write(
            f"error: the control service at {address} is unavailable ({exc.message}); is it "
            "running? (`hearby up` starts it; --control or HEARBY_CONTROL_ADDRESS point "
            "elsewhere)\n"
        )
        return 1
    except HearbyError as exc:
        sys.stderr.write(f"error ({exc.status}): {exc.message}\n")
        return 1
    sys.stdout.write(output + "\n")
    return 0
