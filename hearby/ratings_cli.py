"""``hearby ratings``: the dashboard's blind similarity ratings, through the feedback service.

    hearby ratings export --out ratings.csv                 # every rating, oldest first
    hearby ratings export --out ab.csv --versions none ts-ps
    hearby ratings export --out - | head                    # to stdout

One CSV row per rating (``dashboard.review_stats.CSV_COLUMNS``): who rated, when, the seed,
which version was on which side, the preference and the per-neighbour scores. It is the
portable backup of the ratings next to Redis' own AOF (see docs/DASHBOARD.md). The
feedback service is found at ``--feedback``, else ``HEARBY_RATINGS_FEEDBACK_ADDRESS``, else
the shared ``HEARBY_FEEDBACK_ADDRESS``, else ``127.0.0.1:50055``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashboard.review_stats import ratings_to_csv
from services.catalog.client import channel_options
from services.common.channels import open_channel
from services.common.errors import HearbyError, Unavailable
from services.common.files import write_atomically
from services.feedback.client import FeedbackClient
from services.feedback.ratings import Rating
from services.feedback.settings import DEFAULT_PORT

# A reply holds every rating (under 1 KiB each); room for about 100,000 of them.
_MAX_REPLY_MIB = 100


class RatingsCliSettings(BaseSettings):
    """Where ``hearby ratings`` finds the feedback service.

    Args:
        feedback_address: ``host:port`` of the feedback service
            (``HEARBY_RATINGS_FEEDBACK_ADDRESS`` or the shared ``HEARBY_FEEDBACK_ADDRESS``;
            default ``127.0.0.1:50055``).
        timeout_seconds: Deadline of the listing call in seconds
            (``HEARBY_RATINGS_TIMEOUT_SECONDS``; default 60: every rating in one reply).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_RATINGS_", frozen=True, extra="ignore", populate_by_name=True
    )

    feedback_address: str = Field(
        f"127.0.0.1:{DEFAULT_PORT}",
        validation_alias=AliasChoices("HEARBY_RATINGS_FEEDBACK_ADDRESS", "HEARBY_FEEDBACK_ADDRESS"),
    )
    timeout_seconds: float = Field(60.0, gt=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``export --out FILE [--versions A B] [--feedback ADDR] [--timeout S]``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export",
        help="write every rating as CSV",
        description="Writes the ratings the feedback service holds as CSV, one row per "
        "rating, oldest first; an existing FILE is replaced only once the export is whole.",
    )
    export.add_argument(
        "--out", required=True, metavar="FILE", help="CSV file to write ('-' for stdout)"
    )
    export.add_argument(
        "--versions", nargs=2, metavar=("A", "B"), help="only ratings comparing versions A and B"
    )
    export.add_argument(
        "--feedback",
        default=None,
        metavar="HOST:PORT",
        help="the feedback service (HEARBY_FEEDBACK_ADDRESS, 127.0.0.1:50055)",
    )
    export.add_argument(
        "--timeout", type=float, default=None, help="deadline of the listing in seconds (60)"
    )


async def fetch_ratings(
    address: str, timeout: float, versions: tuple[str, str] = ("", "")
) -> list[Rating]:
    """Every rating the feedback service at ``address`` holds (of one pair), oldest first.

    Raises:
        HearbyError: The call failed (``Unavailable`` when the service cannot be reached).
    """
    options = channel_options(_MAX_REPLY_MIB)
    async with open_channel(address, options=options) as channel:
        return await FeedbackClient(channel, timeout).list_ratings(*versions)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby ratings``: 0 when exported, 1 when the service failed."""
    settings = RatingsCliSettings()
    address = args.feedback or settings.feedback_address
    timeout = args.timeout or settings.timeout_seconds
    versions = tuple(args.versions) if args.versions else ("", "")
    try:
        ratings = asyncio.run(fetch_ratings(address, timeout, versions))
    except Unavailable as exc:
        print(
            f"error: the feedback service at {address} is unavailable ({exc.message}); is the "
            "stack running? (`hearby up` starts it; --feedback or HEARBY_FEEDBACK_ADDRESS "
            "point elsewhere)",
            file=sys.stderr,
        )
        return 1
    except HearbyError as exc:
        print(f"error ({exc.status}): {exc.message}", file=sys.stderr)
        return 1
    text = ratings_to_csv(ratings)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    try:
        # Whole or absent, so a backup is never half a file; readable like any export.
        write_atomically(out, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    print(f"{len(ratings)} ratings written to {out}")
    return 0
