"""``hearby ingest``: a folder with a labels CSV submitted through the real catalog server."""

from __future__ import annotations

import argparse
import csv
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hearby import ingest_cli
from services.catalog.client import CatalogClient, channel_options
from services.catalog.server import binding
from services.catalog.settings import CatalogSettings
from services.catalog.tracks import Catalog
from services.common.bootstrap import start_server
from tests.unit.services.catalog.support import noise_bytes, tone


@pytest.fixture
async def client(catalog: Catalog) -> AsyncIterator[CatalogClient]:
    running = await start_server(CatalogSettings(port=0, metrics_port=0), [binding(catalog)])
    try:
        address = f"127.0.0.1:{running.port}"
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            yield CatalogClient(channel)
    finally:
        await running.stop(0.5)


def _folder(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "a.flac").write_bytes(tone(freq=440))
    (root / "audio" / "b.wav").write_bytes(tone(freq=550, fmt="WAV"))
    (root / "audio" / "broken.mp3").write_bytes(noise_bytes(3000))
    (root / "audio" / "c.flac").write_bytes(tone(freq=660))
    rows = [
        {"path": "audio/a.flac", "track_id": "", "genre": "rock", "tempo_bpm": "120",
         "Region Name": "north"},
        {"path": "audio/b.wav", "track_id": "bee", "genre": "jazz", "tempo_bpm": ""},
        {"path": "audio/broken.mp3", "track_id": "", "genre": "", "tempo_bpm": ""},
        {"path": "audio/missing.flac", "track_id": "", "genre": "", "tempo_bpm": ""},
        {"path": "audio/c.flac", "track_id": "", "genre": "", "tempo_bpm": "fast"},
    ]  # fmt: skip
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_labels_become_metadata_and_other_columns_extra():
    row = {"track_id": "x", "path": "p", "genre": "rock", "tempo_bpm": "96.5", "Region Name": "n",
           "duration_seconds": "3", "mood": " "}  # fmt: skip
    assert ingest_cli.labels_to_metadata(row) == {
        "genre": "rock",
        "tempo_bpm": 96.5,
        "extra": {"region_name": "n"},
    }
    with pytest.raises(ValueError):
        ingest_cli.labels_to_metadata({"tempo_bpm": "fast"})


async def test_submit_folder_counts_statuses_and_names_each_failure(
    client: CatalogClient, tmp_path: Path
):
    root = _folder(tmp_path / "corpus")
    summary = await ingest_cli.submit_folder(client, root, progress=False)
    assert summary.counts["accepted"] == 2
    assert set(summary.failed) == {"broken", "missing", "c"}
    assert summary.failed["broken"].startswith("INVALID_ARGUMENT: broken could not be decoded")
    assert "file not found" in summary.failed["missing"]
    assert summary.failed["c"].startswith("bad labels")
    state = await client.get_track("a")
    assert state.track.metadata["genre"] == "rock"
    assert state.track.metadata["extra"] == {"region_name": "north"}
    assert (await client.get_track("bee")).track.metadata["genre"] == "jazz"
    # Running it again queues nothing new.
    again = await ingest_cli.submit_folder(client, root, concurrency=2, progress=False)
    assert again.counts["duplicate"] == 2 and again.counts["accepted"] == 0
    assert again.lines()[0] == "accepted 0  duplicate 2  replaced 0  failed 3"


async def test_submit_folder_by_uri_lets_the_catalog_read_the_files(
    client: CatalogClient, tmp_path: Path
):
    root = _folder(tmp_path / "corpus")
    summary = await ingest_cli.submit_folder(client, root, by_uri=True, progress=False)
    assert summary.counts["accepted"] == 2
    assert (await client.get_track("a")).track.content_hash


def _args(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ingest_cli.add_arguments(parser)
    return parser.parse_args(kwargs.pop("argv", []))


def test_run_needs_a_folder_or_an_action(tmp_path: Path, capsys):
    assert ingest_cli.run(_args()) == 2
    assert ingest_cli.run(_args(argv=[str(tmp_path / "nope")])) == 2
    assert "not a folder" in capsys.readouterr().out


def test_run_reports_an_unreachable_catalog_once(tmp_path: Path, capsys):
    args = _args(argv=["--status", "--catalog", "127.0.0.1:1", "--timeout", "2"])
    assert ingest_cli.run(args) == 1
    assert "UNAVAILABLE" in capsys.readouterr().out
