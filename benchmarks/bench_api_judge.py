"""How close the API judge comes to the throughput its concurrency allows, against the loopback server.

The loopback server (:mod:`lm_eval_pandalm.testing.openai_server`) answers every chat request after 200 ms, as a
remote model would; with ``concurrency`` requests in flight the best possible rate is ``concurrency / latency``
requests per second (16 / 0.2 s = 80 req/s). The benchmarks judge the same 64 synthetic pairs (four waves):

(a) ``api_judge[child]``: :class:`~lm_eval_pandalm.judges.openai_api.OpenAIJudge` itself, spend ledger on (one
    committed SQLite insert per call), against the server running in a child process, as a remote server would: the
    figure is the judge's own throughput.
(b) ``api_judge[in_process]``: the same with the server in the judge's process, as the tests run it; the server's
    threads then compete with the judge for the interpreter lock, so this is a lower bound.
(c) ``api_judge_cached``: the judge as ``make_judge`` builds it from a YAML config, behind the judgment cache, which
    commits each verdict as it arrives; the same judge each round, with a fresh cache file, so that every round pays
    for every item (server in a child process).

Goal: at least 0.8 x concurrency / latency requests per second. Each round is also timed by the benchmark itself
(``time.perf_counter``), so the figures are printed under ``--benchmark-disable`` too, the way CI runs every benchmark
once. Run with::

    python -m pytest benchmarks/bench_api_judge.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import multiprocessing
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
from lm_eval_pandalm.wrappers.cache import CachedJudge

N_ITEMS = 64
CONCURRENCY = 16
LATENCY_S = 0.2
ROUNDS, WARMUP_ROUNDS = 5, 1
GOAL = 0.8
"""Fraction of ``CONCURRENCY / LATENCY_S`` requests per second the judge must reach."""


class _Summary:
    """Prints the throughput figures at the end of the run (a plugin registered by the benchmark module)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        names = [name for name in self.results if name.startswith("api_judge")]
        if not names:
            return
        ideal = CONCURRENCY / LATENCY_S
        terminalreporter.section("API judge throughput")
        for name in names:
            entry = self.results[name]
            rate = entry["requests"] / entry["median_s"]
            status = "met" if rate >= GOAL * ideal else "NOT met"
            cpu = f"; {entry['cpu_ms_per_request']:.2f} ms CPU per request" if "cpu_ms_per_request" in entry else ""
            terminalreporter.write_line(
                f"{name}: median {entry['median_s']:.3f} s for {entry['requests']} requests = {rate:.1f} req/s; "
                f"{rate / ideal:.3f} x concurrency / latency ({ideal:.0f} req/s) (goal >= {GOAL}: {status}){cpu}"
            )
            terminalreporter.write_line(f"    rounds (s): {entry['rounds_s']}")


_RESULTS: dict[str, dict[str, Any]] = {}
# Kept apart from conftest's bench_results, whose summary reads every entry as a verdict-path figure.


@pytest.fixture(scope="module", autouse=True)
def _summary_plugin(request: pytest.FixtureRequest) -> None:
    plugin = _Summary(_RESULTS)
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "bench_api_judge_summary")


@pytest.fixture(scope="module")
def items() -> list[PairItem]:
    return synthetic_pair_items(N_ITEMS, seed=31)


class _ChildServer:
    """The loopback server in a forked child process; ``requests`` asks it how many requests it has received."""

    def __init__(self, items: list[PairItem]) -> None:
        context = multiprocessing.get_context("fork")  # nothing to pickle; forked before any judge thread exists
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=self._serve, args=(child_conn, items), daemon=True)
        self._process.start()
        self.url = self._conn.recv()

    @staticmethod
    def _serve(conn: Any, items: list[PairItem]) -> None:
        with OpenAIServer(chat=VerdictResponder(FakeJudge(), items), latency_s=LATENCY_S) as running:
            conn.send(running.url)
            while (message := conn.recv()) != "stop":
                conn.send(running.stats.requests if message == "requests" else None)

    @property
    def requests(self) -> int:
        self._conn.send("requests")
        return int(self._conn.recv())

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


class _InProcessServer:
    def __init__(self, items: list[PairItem]) -> None:
        self._server = OpenAIServer(chat=VerdictResponder(FakeJudge(), items), latency_s=LATENCY_S).start()
        self.url = self._server.url

    @property
    def requests(self) -> int:
        return self._server.stats.requests

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="module")
def child_server(items: list[PairItem]) -> Iterator[_ChildServer]:
    server = _ChildServer(items)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def in_process_server(items: list[PairItem]) -> Iterator[_InProcessServer]:
    server = _InProcessServer(items)
    yield server
    server.stop()


def _options(server: Any, folder: Path) -> dict[str, Any]:
    return {
        "model": "gpt-4",
        "base_url": server.url,
        "api_key_env": None,
        "concurrency": CONCURRENCY,
        "ledger": str(folder / "spend.sqlite"),
        "show_progress": False,
    }


def _timed(run: Callable[[], list], times: list[float], cpu: list[float] | None = None) -> Callable[[], list]:
    def timed() -> list:
        start, start_cpu = time.perf_counter(), time.process_time()
        verdicts = run()
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(time.process_time() - start_cpu)
        return verdicts

    return timed


def _record(
    benchmark: Any, results: dict, name: str, times: list[float], requests: int, cpu: list[float] | None = None
) -> None:
    median = statistics.median(times[WARMUP_ROUNDS:] or times)
    if cpu:
        # This process's CPU per request (all its threads): with the server in a child process, the judge's own cost,
        # which bounds its rate on a busy machine at (free cores) / cpu_per_request whatever the latency.
        per_request = statistics.median(cpu[WARMUP_ROUNDS:] or cpu) / requests
        benchmark.extra_info["cpu_ms_per_request"] = per_request * 1e3
    benchmark.extra_info.update(
        requests=requests, concurrency=CONCURRENCY, latency_s=LATENCY_S, requests_per_s=requests / median
    )
    results[name] = {"median_s": median, "requests": requests, "rounds_s": [round(t, 3) for t in times]}
    if cpu:
        results[name]["cpu_ms_per_request"] = per_request * 1e3


@pytest.mark.parametrize("where", ["child", "in_process"])
def test_api_judge(benchmark, items, request, where, tmp_path) -> None:
    server = request.getfixturevalue(f"{where}_server")
    judge = OpenAIJudge(OpenAIJudgeConfig(**_options(server, tmp_path)))
    times: list[float] = []
    cpu: list[float] = []
    before = server.requests
    verdicts = benchmark.pedantic(
        _timed(lambda: judge(items), times, cpu), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1
    )
    judge.close()
    assert len(verdicts) == N_ITEMS and all(v.ok for v in verdicts)
    assert server.requests - before == N_ITEMS * len(times)  # no retries, no cache: one request per item
    _record(benchmark, _RESULTS, f"api_judge[{where}]", times, N_ITEMS, cpu)


def test_api_judge_cached(benchmark, items, child_server, tmp_path) -> None:
    spec = tmp_path / "judge.yaml"
    spec.write_text(json.dumps({"type": "openai", **_options(child_server, tmp_path)}))  # JSON is YAML
    judge = make_judge(str(spec), cache=tmp_path / "cache-0.sqlite")
    assert isinstance(judge, CachedJudge)
    inner, caches = judge.inner, iter(range(1, 1000))
    times: list[float] = []
    before = child_server.requests

    def cached_round() -> list:
        with CachedJudge(inner, tmp_path / f"cache-{next(caches)}.sqlite") as fresh:  # every item is a miss
            return fresh(items)

    verdicts = benchmark.pedantic(_timed(cached_round, times), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    assert len(verdicts) == N_ITEMS and all(v.ok for v in verdicts)
    assert child_server.requests - before == N_ITEMS * len(times)
    _record(benchmark, _RESULTS, "api_judge_cached", times, N_ITEMS)
