"""How close the API judge comes to the throughput its concurrency allows, against the loopback server.

The loopback server (:mod:`lm_eval_pandalm.testing.openai_server`) answers every chat request after 200 ms, as a
remote model would; with ``concurrency`` requests in flight the best possible rate is ``concurrency / latency``
requests per second (16 / 0.2 s = 80 req/s). Two benchmarks judge the same 64 synthetic pairs (four waves):

(a) ``api_judge``: :class:`~lm_eval_pandalm.judges.openai_api.OpenAIJudge` itself, spend ledger on (one committed
    SQLite insert per call).
(b) ``api_judge_cached``: the judge as ``make_judge`` builds it from a YAML config, behind the judgment cache, which
    commits each verdict as it arrives; a fresh cache file per round, so every round pays for every item.

Goal: each reaches at least 0.8 x concurrency / latency requests per second. Each round is timed by the benchmark
itself too (``time.perf_counter``), so the figures are also printed under ``--benchmark-disable``, the way CI runs
every benchmark once. Run with::

    python -m pytest benchmarks/bench_api_judge.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.judges.openai_api import OpenAIJudge, OpenAIJudgeConfig
from lm_eval_pandalm.testing.fakes import FakeJudge
from lm_eval_pandalm.testing.openai_server import OpenAIServer, VerdictResponder
from lm_eval_pandalm.testing.tiny_models import synthetic_pair_items
from lm_eval_pandalm.types import PairItem

N_ITEMS = 64
CONCURRENCY = 16
LATENCY_S = 0.2
ROUNDS, WARMUP_ROUNDS = 3, 1
GOAL = 0.8
"""Fraction of ``CONCURRENCY / LATENCY_S`` requests per second the judge must reach."""


class _Summary:
    """Prints the throughput figures at the end of the run (a plugin registered by the benchmark module)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        names = [name for name in ("api_judge", "api_judge_cached") if name in self.results]
        if not names:
            return
        ideal = CONCURRENCY / LATENCY_S
        terminalreporter.section("API judge throughput")
        for name in names:
            entry = self.results[name]
            rate = entry["requests"] / entry["median_s"]
            status = "met" if rate >= GOAL * ideal else "NOT met"
            terminalreporter.write_line(
                f"{name:>16}: median {entry['median_s']:.3f} s for {entry['requests']} requests = {rate:.1f} req/s; "
                f"{rate / ideal:.3f} x concurrency / latency ({ideal:.0f} req/s) (goal >= {GOAL}: {status})"
            )


@pytest.fixture(scope="module", autouse=True)
def _summary_plugin(request: pytest.FixtureRequest, bench_results: dict) -> None:
    plugin = _Summary(bench_results)
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "bench_api_judge_summary")


@pytest.fixture(scope="module")
def items() -> list[PairItem]:
    return synthetic_pair_items(N_ITEMS, seed=31)


@pytest.fixture(scope="module")
def server(items: list[PairItem]) -> Iterator[OpenAIServer]:
    with OpenAIServer(chat=VerdictResponder(FakeJudge(), items), latency_s=LATENCY_S) as running:
        yield running


def _options(server: OpenAIServer, folder: Path) -> dict[str, Any]:
    return {
        "model": "gpt-4",
        "base_url": server.url,
        "api_key_env": None,
        "concurrency": CONCURRENCY,
        "ledger": str(folder / "spend.sqlite"),
        "show_progress": False,
    }


def _timed(run: Callable[[], list], times: list[float]) -> Callable[[], list]:
    def timed() -> list:
        start = time.perf_counter()
        verdicts = run()
        times.append(time.perf_counter() - start)
        return verdicts

    return timed


def _record(benchmark: Any, results: dict, name: str, times: list[float], server: OpenAIServer, before: int) -> None:
    median = statistics.median(times[WARMUP_ROUNDS:] or times)
    requests = (server.stats.requests - before) // len(times)
    benchmark.extra_info.update(
        requests=requests, concurrency=CONCURRENCY, latency_s=LATENCY_S, requests_per_s=requests / median
    )
    results[name] = {"median_s": median, "requests": requests, "pairs": requests}


def test_api_judge(benchmark, items, server, tmp_path, bench_results) -> None:
    judge = OpenAIJudge(OpenAIJudgeConfig(**_options(server, tmp_path)))
    times: list[float] = []
    before = server.stats.requests
    verdicts = benchmark.pedantic(
        _timed(lambda: judge(items), times), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1
    )
    assert len(verdicts) == N_ITEMS and all(v.ok for v in verdicts)
    assert server.stats.requests - before == N_ITEMS * len(times)  # no retries, no cache: one request per item
    _record(benchmark, bench_results, "api_judge", times, server, before)


def test_api_judge_cached(benchmark, items, server, tmp_path, bench_results) -> None:
    spec = tmp_path / "judge.yaml"
    spec.write_text(json.dumps({"type": "openai", **_options(server, tmp_path)}))  # JSON is YAML
    caches = iter(range(1000))
    times: list[float] = []
    before = server.stats.requests

    def cached_round() -> list:
        return make_judge(str(spec), cache=tmp_path / f"cache-{next(caches)}.sqlite")(items)

    verdicts = benchmark.pedantic(_timed(cached_round, times), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    assert len(verdicts) == N_ITEMS and all(v.ok for v in verdicts)
    assert server.stats.requests - before == N_ITEMS * len(times)
    _record(benchmark, bench_results, "api_judge_cached", times, server, before)
