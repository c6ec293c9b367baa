"""``hearby ratings export`` against a real feedback service over a real redis-server.

The service is started with ``hearby up``'s own launch helper on free ports; ratings go in
through the public client, come out through the command, and are read back from the CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator

import grpc
import pytest

from hearby import cli
from hearby.up import service_process
from services.common.processes import free_port
from services.common.redis_server import RedisServer
from services.feedback.client import FeedbackClient
from services.feedback.ratings import Preference, Rating
from tests.unit.services.feedback.support import rating

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a feedback service holding three ratings (two of them v1 vs v2)."""
    tmp = tmp_path_factory.mktemp("ratings-export")
    address = f"127.0.0.1:{free_port()}"
    with RedisServer(tmp / "redis") as redis_server:
        env = {
            "HEARBY_FEEDBACK_PORT": address.rsplit(":", 1)[1],
            "HEARBY_FEEDBACK_REDIS_URL": redis_server.url,
            "HEARBY_FEEDBACK_LOG_FORMAT": "text",
        }
        with service_process(
            "feedback", "services.feedback", address, tmp / "feedback.log", env, 60
        ):
            asyncio.run(
                _submit(
                    address,
                    rating("r1"),
                    rating("r2", ("v2", "v1"), minutes=1, preference=Preference.TIE),
                    rating("r3", ("v1", "v3"), minutes=2, neighbour_scores=()),
                )
            )
            yield address


async def _submit(address: str, *ratings: Rating) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        client = FeedbackClient(channel, 10.0)
        for one in ratings:
            assert await client.submit_rating(one)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_writes_every_rating_oldest_first_with_versions_and_scores(
    feedback, tmp_path, capsys
):
    out = tmp_path / "backup" / "ratings.csv"
    out.parent.mkdir()
    assert cli.main(["ratings", "export", "--out", str(out), "--feedback", feedback]) == 0
    assert capsys.readouterr().out.strip() == f"3 ratings written to {out}"
    rows = _rows(out.read_text())
    assert [r["rating_id"] for r in rows] == ["r1", "r2", "r3"]
    first = rows[0]
    assert (first["left_version"], first["right_version"]) == ("v1", "v2")
    assert (first["preference"], first["preferred_version"]) == ("left", "v1")
    assert first["left_track_ids"] == "a1 a2 a3"
    assert first["time"].startswith("2026-03-01T12:00:00")
    assert json.loads(first["neighbour_scores"]) == [
        {"track_id": "a1", "side": "left", "score": 5},
        {"track_id": "b2", "side": "right", "score": 2},
    ]
    assert (rows[1]["preference"], rows[1]["preferred_version"]) == ("tie", "")
    assert json.loads(rows[2]["neighbour_scores"]) == []
    # Nothing half-written is left beside it.
    assert sorted(p.name for p in out.parent.iterdir()) == ["ratings.csv"]


def test_export_of_one_version_pair_to_stdout_takes_the_address_from_the_environment(
    feedback, monkeypatch, capsys
):
    monkeypatch.setenv("HEARBY_FEEDBACK_ADDRESS", feedback)
    assert cli.main(["ratings", "export", "--out", "-", "--versions", "v1", "v2"]) == 0
    assert [r["rating_id"] for r in _rows(capsys.readouterr().out)] == ["r1", "r2"]


def test_an_unreachable_feedback_service_is_a_clear_error_and_no_file(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "ratings.csv"
    assert cli.main(["ratings", "export", "--out", str(out), "--feedback", address]) == 1
    err = capsys.readouterr().err
    assert f"the feedback service at {address} is unavailable" in err
    assert "hearby up" in err
    assert not out.exists()


def test_export_without_an_action_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["ratings"])
    assert exited.value.code == 2
    assert "export" in capsys.readouterr().err
