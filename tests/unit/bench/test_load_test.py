"""Tests of bench/load_test.py's pure parts: the mix, arrivals, statistics, the report.

The load loops run here against a fake workload and fake clients (no stack: a stack
start costs minutes on the CI machine); the script itself was run by hand with
``--smoke`` and at full size (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections import Counter

import grpc
import numpy as np
import pytest
import soundfile

from bench import load_test
from bench.catalog_seed import make_catalog
from bench.load_test import (
    MACHINE,
    RpcStats,
    RunResult,
    Workload,
    arrivals,
    closed_loop,
    cpu_rows,
    highest_passing,
    make_clip,
    markdown,
    open_loop,
    parse_mix,
    passes,
    pick,
    status_code,
    summary_rows,
    sweep_rows,
)
from services.catalog.tracks import SubmitResult, SubmitStatus
from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.ranker.client import Attribution, Recommendations, ScoredTrack
from services.vectorstore.records import TrackMetadata

# -- the mix -----------------------------------------------------------------------------


def test_parse_mix_normalises_the_default_mix_in_its_order() -> None:
    mix = parse_mix(load_test.DEFAULT_MIX)
    assert list(mix) == ["recommend", "similar", "events", "submit"]
    assert mix["recommend"] == pytest.approx(0.5)
    assert mix["submit"] == pytest.approx(0.05)
    assert sum(mix.values()) == pytest.approx(1.0)


def test_parse_mix_takes_relative_weights_and_drops_zero_ones() -> None:
    assert parse_mix(" Similar=1, recommend=3 ,submit=0") == {"similar": 0.25, "recommend": 0.75}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recommend=1,search=1", "unknown RPC 'search'.*recommend, similar, events, submit"),
        ("recommend", "needs a weight"),
        ("recommend=-1,similar=1", ">= 0"),
        ("recommend=nan", ">= 0"),
        ("recommend=x", "not a number"),
        ("recommend=1,recommend=2", "twice"),
        ("recommend=0", "at least one positive"),
        ("", "at least one positive"),
    ],
)
def test_parse_mix_rejects_a_bad_mix_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_pick_follows_the_cumulative_shares() -> None:
    mix = {"recommend": 0.5, "similar": 0.3, "events": 0.15, "submit": 0.05}
    assert pick(mix, 0.0) == "recommend"
    assert pick(mix, 0.49) == "recommend"
    assert pick(mix, 0.5) == "similar"
    assert pick(mix, 0.81) == "events"
    assert pick(mix, 0.96) == "submit"
    assert pick({"similar": 0.7, "submit": 0.3}, 0.9999999999999999) == "submit"


def test_pick_draws_each_rpc_at_its_share() -> None:
    mix = parse_mix(load_test.DEFAULT_MIX)
    draws = Counter(pick(mix, u) for u in np.random.default_rng(0).random(20_000))
    for name, share in mix.items():
        assert draws[name] / 20_000 == pytest.approx(share, abs=0.01)


def test_arrivals_are_sorted_within_the_window_at_the_rate() -> None:
    times = arrivals(50.0, 100.0, np.random.default_rng(1))
    assert np.all(np.diff(times) > 0)
    assert times[0] >= 0 and times[-1] < 100.0
    # Poisson: 5000 expected, standard deviation ~71.
    assert abs(len(times) - 5000) < 5 * 71


def test_arrivals_are_empty_for_no_rate_or_no_time() -> None:
    assert len(arrivals(0.0, 10.0, np.random.default_rng(0))) == 0
    assert len(arrivals(10.0, 0.0, np.random.default_rng(0))) == 0


# -- statistics and the report -----------------------------------------------------------


def _stats(latencies: list[float], **errors: int) -> RpcStats:
    return RpcStats(list(latencies), Counter(errors), [float(i) for i in range(len(latencies))])


def _result(
    rate: float | None, recommend_ms: float, errors: int = 0, not_sent: int = 0
) -> RunResult:
    stats = {
        "recommend": _stats([recommend_ms] * 100, UNAVAILABLE=errors),
        "similar": _stats([5.0] * 50),
    }
    return RunResult(f"{rate} calls/s", 10.0, stats, offered_rate=rate, not_sent=not_sent)


def test_rpc_stats_count_successes_and_errors_and_give_percentiles() -> None:
    stats = _stats([float(ms) for ms in range(1, 101)], UNAVAILABLE=2, DEADLINE_EXCEEDED=1)
    assert stats.calls == 103
    assert stats.error_count == 3
    assert stats.percentile(50) == pytest.approx(50.5)
    assert stats.percentile(99) == pytest.approx(99.01)
    assert np.isnan(RpcStats().percentile(99))


def test_slow_counts_calls_over_the_threshold_and_the_seconds_they_ended_in() -> None:
    stats = RpcStats([10.0, 150.0, 200.0, 300.0, 120.0], Counter(), [1.1, 5.2, 5.7, 5.9, 9.0])
    assert stats.slow(100.0) == (4, 2)
    assert stats.slow(500.0) == (0, 0)
    merged = stats.merged(RpcStats([400.0], Counter(), [12.5]))
    assert merged.slow(100.0) == (5, 3)


def test_run_result_totals_every_rpc_and_its_rate() -> None:
    result = RunResult(
        "x",
        4.0,
        {"recommend": _stats([10.0, 20.0], UNAVAILABLE=1), "submit": _stats([100.0])},
    )
    assert result.total.calls == 4
    assert result.errors == 1
    assert result.rate() == pytest.approx(1.0)
    assert result.rate("recommend") == pytest.approx(0.75)
    assert result.rate("similar") == 0.0


def test_summary_rows_list_each_rpc_then_the_total_with_error_codes() -> None:
    result = RunResult(
        "x",
        2.0,
        {
            "recommend": _stats([10.0, 30.0], RESOURCE_EXHAUSTED=2, UNAVAILABLE=1),
            "submit": _stats([200.0]),
        },
    )
    header, recommend, submit, total = summary_rows(result)
    assert header[:3] == ["RPC", "calls", "calls/s"]
    assert "RESOURCE_EXHAUSTED" in header
    assert recommend[:4] == ["Recommend", "5", "2.5", "20.0"]
    assert recommend[header.index("max ms")] == "30.0"
    assert recommend[header.index("errors")] == "3"
    assert recommend[header.index("RESOURCE_EXHAUSTED")] == "2"
    assert recommend[-1] == "RESOURCE_EXHAUSTED 2, UNAVAILABLE 1"
    assert submit[0] == "SubmitTrack" and submit[-1] == "-"
    assert total[:3] == ["total", "6", "3.0"]


def test_summary_rows_show_a_dash_for_an_rpc_without_a_success() -> None:
    result = RunResult("x", 1.0, {"similar": _stats([], UNAVAILABLE=3)})
    _, similar, _ = summary_rows(result)
    assert similar[3:6] == ["-", "-", "-"]


def test_markdown_writes_a_pipe_table() -> None:
    assert markdown([["a", "b"], ["1", "2"]]) == "| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_passes_needs_p99_under_target_no_errors_and_nothing_unsent() -> None:
    assert passes(_result(10, 50.0), 100.0)
    assert not passes(_result(10, 150.0), 100.0)
    assert not passes(_result(10, 50.0, errors=1), 100.0)
    assert not passes(_result(10, 50.0, not_sent=1), 100.0)
    no_recommend = RunResult("x", 1.0, {"similar": _stats([1.0])}, offered_rate=5)
    assert not passes(no_recommend, 100.0)


def test_highest_passing_takes_the_highest_open_loop_rate_that_passes() -> None:
    results = [
        _result(10, 40.0),
        _result(20, 60.0),
        _result(40, 99.0, errors=1),
        _result(60, 300.0),
        _result(None, 10.0),  # a closed loop has no offered rate
    ]
    best = highest_passing(results, 100.0)
    assert best is not None and best.offered_rate == 20
    assert highest_passing(results[3:], 100.0) is None


def test_sweep_rows_give_a_verdict_per_rate() -> None:
    rows = sweep_rows([_result(10, 40.0), _result(20, 160.0)], 100.0)
    assert rows[0][-1] == "p99 < 100 ms"
    assert rows[1][0] == "10" and rows[1][-1] == "yes"
    assert rows[2][4] == "160.0" and rows[2][-1] == "no"
    assert rows[1][7] == "-"  # no SubmitTrack in this run


def test_cpu_rows_give_each_part_and_the_rest_of_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(load_test.os, "cpu_count", lambda: 2)
    result = _result(10, 50.0)  # 150 calls in 10 s
    result.cpu_s = {"ranker": 4.0, "client": 1.0, MACHINE: 15.0}
    idle = RunResult("idle", 5.0, {}, cpu_s={"ranker": 1.0, "client": 0.0, MACHINE: 3.0})
    header, ranker, client, other = cpu_rows([idle, result])
    assert header == ["part", "idle", "10 calls/s"]
    assert ranker == ["ranker", "10 %", "20 % / 26.7"]
    assert client == ["client", "0 %", "5 % / 6.7"]
    assert other == ["other processes", "20 %", "50 % / 66.7"]


_RECOMMEND = 'method="/hearby.ranker.v1.RankerService/Recommend"'
_METRIC = "hearby_grpc_request_duration_seconds"
METRICS_PAGE = "\n".join(
    [
        f"# HELP {_METRIC} Wall time",
        f"# TYPE {_METRIC} histogram",
        f'{_METRIC}_bucket{{le="0.05",{_RECOMMEND}}} 90.0',
        f'{_METRIC}_bucket{{le="0.1",{_RECOMMEND}}} 99.0',
        f'{_METRIC}_bucket{{le="0.25",{_RECOMMEND}}} 100.0',
        f'{_METRIC}_bucket{{le="+Inf",{_RECOMMEND}}} 100.0',
        f"{_METRIC}_count{{{_RECOMMEND}}} 100.0",
        f"{_METRIC}_sum{{{_RECOMMEND}}} 3.0",
        f'{_METRIC}_bucket{{le="0.05",method="/grpc.health.v1.Health/Check"}} 4.0',
        f'{_METRIC}_count{{method="/grpc.health.v1.Health/Check"}} 4.0',
        f'hearby_grpc_requests_total{{code="OK",{_RECOMMEND}}} 100.0',
    ]
)


def test_parse_histograms_reads_each_methods_buckets_but_not_health_checks() -> None:
    histograms = load_test.parse_histograms(METRICS_PAGE)
    assert list(histograms) == ["/hearby.ranker.v1.RankerService/Recommend"]
    h = histograms["/hearby.ranker.v1.RankerService/Recommend"]
    assert h.count == 100 and h.mean_ms == pytest.approx(30.0)
    assert h.within(0.1) == pytest.approx(0.99)
    assert h.quantile_bound(0.99) == 0.1
    assert h.quantile_bound(0.999) == 0.25


def test_histogram_minus_gives_the_calls_of_one_run() -> None:
    before = load_test.Histogram({0.05: 10.0, 0.1: 10.0, float("inf"): 10.0}, 0.2, 10.0)
    after = load_test.Histogram({0.05: 12.0, 0.1: 20.0, float("inf"): 20.0}, 1.0, 20.0)
    run = after.minus(before)
    assert run.count == 10 and run.mean_ms == pytest.approx(80.0)
    assert run.within(0.05) == pytest.approx(0.2)
    assert run.quantile_bound(0.99) == 0.1
    assert after.minus(None) is after


def test_server_rows_show_each_method_busiest_first() -> None:
    histograms = load_test.parse_histograms(METRICS_PAGE)
    header, recommend = load_test.server_rows(histograms)
    assert header[0] == "method (server side)"
    assert recommend == ["RankerService/Recommend", "100", "30.0", "90.0 %", "99.0 %", "100"]


# -- the calls ---------------------------------------------------------------------------


def test_make_clip_is_a_unique_flac_of_the_asked_length() -> None:
    audio, rate = soundfile.read(io.BytesIO(make_clip(1, seconds=2.0)))
    assert rate == load_test.CLIP_RATE
    assert len(audio) == 2 * load_test.CLIP_RATE
    assert 0.1 < np.abs(audio).max() <= 1.0
    assert make_clip(1, 2.0) == make_clip(1, 2.0)
    assert make_clip(1, 2.0) != make_clip(2, 2.0)


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "details")


def test_status_code_names_the_grpc_status_behind_a_domain_error() -> None:
    wrapped = Unavailable("down")
    wrapped.__cause__ = _rpc_error(grpc.StatusCode.INTERNAL)
    assert status_code(wrapped) == "INTERNAL"
    assert status_code(ResourceExhausted("slow down")) == "RESOURCE_EXHAUSTED"
    assert status_code(_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED)) == "DEADLINE_EXCEEDED"
    assert status_code(ConnectionResetError()) == "CLIENT_ConnectionResetError"


class FakeRanker:
    """RankerClient's calls: answers ``k`` catalog tracks under a numbered request id."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def _answer(self, k: int) -> Recommendations:
        request_id = f"r{len(self.calls)}"
        tracks = [ScoredTrack(f"t{i}", 0.9, TrackMetadata()) for i in range(k)]
        return Recommendations(Attribution(request_id, "none", "default"), tracks)

    async def recommend(self, user_id: str, k: int) -> Recommendations:
        self.calls.append(("recommend", user_id))
        if self.fail:
            raise self.fail
        return self._answer(k)

    async def similar(self, k: int, *, track_id: str, user_id: str) -> Recommendations:
        self.calls.append(("similar", track_id))
        return self._answer(k)


class FakeFeedback:
    """FeedbackClient.record_events: keeps the events, reports them all as new."""

    def __init__(self) -> None:
        self.events: list = []

    async def record_events(self, events: list) -> int:
        self.events += events
        return len(events)


class FakeCatalog:
    """CatalogClient.submit_track: accepts, or fails for ids in ``fail``."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.submitted: dict[str, bytes] = {}

    async def submit_track(self, track_id: str, *, data: bytes, metadata: dict) -> SubmitResult:
        if track_id in self.fail:
            raise InvalidArgument("bad audio")
        self.submitted[track_id] = data
        return SubmitResult(track_id, "hash", SubmitStatus.ACCEPTED, "1-0", 4.0)


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(200, 5, np.random.default_rng(0), dimension=8)


def _workload(catalog, ranker=None, feedback=None, tracks=None) -> Workload:
    return Workload(
        catalog,
        ranker or FakeRanker(),  # type: ignore[arg-type]
        feedback or FakeFeedback(),  # type: ignore[arg-type]
        tracks or FakeCatalog(),  # type: ignore[arg-type]
        seed=0,
        clip_seconds=1.0,
    )


async def test_workload_records_a_success_latency_and_a_failure_code(catalog) -> None:
    ok, failing = RpcStats(), RpcStats()
    await _workload(catalog).run("recommend", ok)
    await _workload(catalog, ranker=FakeRanker(Unavailable("down"))).run("recommend", failing)
    assert len(ok.latencies_ms) == 1 and ok.error_count == 0
    assert failing.errors == Counter({"UNAVAILABLE": 1})


async def test_workload_counts_latency_from_when_an_open_loop_call_was_due(catalog) -> None:
    stats = RpcStats()
    due = load_test.time.perf_counter() - 0.5
    await _workload(catalog).run("similar", stats, due=due)
    assert stats.latencies_ms[0] >= 500


async def test_events_quote_the_users_last_recommendation(catalog) -> None:
    ranker, feedback = FakeRanker(), FakeFeedback()
    workload = _workload(catalog, ranker=ranker, feedback=feedback)
    stats = RpcStats()
    for _ in range(40):
        await workload.run("recommend", stats)
        await workload.run("events", stats)
    assert stats.error_count == 0
    attributed = [e for e in feedback.events if e.request_id]
    assert attributed, "no event quoted a recommendation"
    for event in attributed:
        assert event.track_id in {f"t{i}" for i in range(load_test.K)}
    assert len({e.event_id for e in feedback.events}) == len(feedback.events)
    assert workload.acknowledged_events == len(feedback.events)


async def test_submits_use_unique_ids_and_track_acknowledged_and_failed_ones(catalog) -> None:
    first = _workload(catalog)
    failing_id = f"load-{first._run_id}-1"
    tracks = FakeCatalog(fail={failing_id})
    workload = _workload(catalog, tracks=tracks)
    workload._run_id = first._run_id
    stats = RpcStats()
    for _ in range(3):
        await workload.run("submit", stats)
    assert workload.failed_tracks == [failing_id]
    assert workload.acknowledged_tracks == sorted(tracks.submitted)
    assert len(set(tracks.submitted.values())) == 2  # every clip is different audio
    assert stats.errors == Counter({"INVALID_ARGUMENT": 1})


class FakeWorkload:
    """Workload.run that takes ``delay`` seconds and counts its calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def run(self, rpc: str, stats: RpcStats, due: float | None = None) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        stats.latencies_ms.append(self.delay * 1000)
        stats.finished_s.append(load_test.time.perf_counter())


async def test_closed_loop_keeps_every_client_busy_for_the_duration() -> None:
    workload = FakeWorkload(0.01)
    mix = parse_mix("recommend=1,similar=1")
    result = await closed_loop(workload, mix, clients=4, seconds=0.3, seed=0)  # type: ignore[arg-type]
    assert workload.most_in_flight == 4
    assert result.offered_rate is None
    # 4 clients x ~0.3 s / 10 ms each; generous for a busy CI machine.
    assert 40 <= result.total.calls <= 130
    assert set(result.stats) == {"recommend", "similar"}


async def test_open_loop_sends_at_the_rate_and_skips_calls_over_the_in_flight_cap() -> None:
    mix = parse_mix("recommend=1")
    fast = await open_loop(FakeWorkload(0.001), mix, 200.0, 0.5, 32, seed=1)  # type: ignore[arg-type]
    assert fast.offered_rate == 200.0 and fast.not_sent == 0
    assert 60 <= fast.total.calls <= 140  # Poisson around 100
    slow = await open_loop(FakeWorkload(0.2), mix, 200.0, 0.5, 2, seed=1)  # type: ignore[arg-type]
    assert slow.not_sent > 0
    assert slow.total.calls + slow.not_sent == fast.total.calls  # same seed, same arrivals


def test_stack_env_items_are_name_value_pairs() -> None:
    assert load_test._env_item("OPENBLAS_NUM_THREADS=1") == ("OPENBLAS_NUM_THREADS", "1")
    assert load_test._env_item("A=b=c") == ("A", "b=c")
    with pytest.raises(argparse.ArgumentTypeError):
        load_test._env_item("A")


def test_smoke_sets_small_defaults_that_flags_still_override() -> None:
    args = load_test.parse_args(["--smoke", "--seconds", "60"])
    assert (args.tracks, args.users, args.seconds, args.warmup) == (1000, 100, 60.0, 3.0)
    full = load_test.parse_args([])
    assert (full.tracks, full.seconds, full.rate, full.sweep) == (10_000, 180.0, None, None)


def test_parse_args_takes_a_sweep_and_refuses_it_with_a_rate_or_a_bad_mix() -> None:
    assert load_test.parse_args(["--sweep", "5,10, 20"]).sweep == [5.0, 10.0, 20.0]
    for argv in (["--sweep", "5", "--rate", "5"], ["--sweep", "0"], ["--mix", "search=1"]):
        with pytest.raises(SystemExit):
            load_test.parse_args(argv)
