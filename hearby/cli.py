"""The ``hearby`` command line: one entry point, one module per subcommand.

Subcommand modules are imported only when their command runs, so ``hearby --help`` stays
fast (no torch import). Each module provides ``add_arguments(parser)`` and ``run(args)``
returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line summary). Later work adds commands here.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("hearby.doctor", "check that everything hearby needs is installed"),
    "corpus": ("trainer.corpus.cli", "render a labelled music corpus (synth, music21)"),
    "train": ("trainer.train", "train an encoder version with an augmentation recipe"),
    "evaluate": ("trainer.evaluate", "locality and linear probes of trained runs (--compare)"),
    "sweep": (
        "trainer.experiment",
        "train and compare recipes over seeds (the paper's experiment), resumable",
    ),
    "experiment": (
        "hearby.experiment_cli",
        "A/B experiments between encoder versions: create, start, ramp, kill, report",
    ),
    "ingest": (
        "hearby.ingest_cli",
        "submit a folder of audio with labels to the catalog; queue status, dead letters",
    ),
    "publish": ("trainer.publish", "export a trained run as a version in the model repository"),
    "up": (
        "hearby.up",
        "run the whole stack on this machine (redis, embedder, vectorstore, control, catalog, "
        "feedback, ranker, ingest workers, dashboard) until Ctrl-C",
    ),
    "dashboard": (
        "hearby.dashboard_cli",
        "the Streamlit dashboard alone (hearby up starts it too): compare, rate, review",
    ),
    "keys": ("hearby.keys_cli", "API keys: create, list, rotate, revoke (hashed, no restart)"),
    "dashboard-users": (
        "hearby.dashboard_users_cli",
        "people who may log in to the dashboard: add, passwd, disable, list",
    ),
    "certs": ("hearby.certs_cli", "a development CA and TLS/mTLS certificates for the services"),
    "ratings": ("hearby.ratings_cli", "similarity ratings from the dashboard: export as CSV"),
    "demo": (
        "hearby.demo",
        "the whole product end to end: demo catalog, stack, ingest, an A/B experiment with "
        "simulated listeners, results",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items()]
    return argparse.ArgumentParser(
        prog="hearby",
        description="hearby: music recommendation by how it sounds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="hearby COMMAND [options]",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun `hearby COMMAND --help` for details.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not args or args[0] not in COMMANDS:
        top.parse_args(args[:1] if args and args[0] in ("-h", "--help") else [])
        if args:
            top.error(f"unknown command {args[0]!r}; choose from {', '.join(COMMANDS)}")
        top.print_help()
        return 2
    name, rest = args[0], args[1:]
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"hearby {name}", description=summary)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)))


if __name__ == "__main__":
    sys.exit(main())
