"""What the lm-eval judge filter adds on top of the judge itself.

Two benchmarks on the same tiny judge (random two-layer Llama, see ``lm_eval_pandalm.testing.tiny_models``; judgment
cache off) and the same 32 synthetic documents, each with a candidate response and a baseline response:

(a) ``judge_filter``: what lm-eval runs after generation: build ``PandaLMJudgeFilter`` from the task's options (as
    lm-eval does for every ``apply``), render its five Jinja2 templates per document, group by judge, build the pairs,
    judge them in both orders (one call of 64 items), summarise each judgment and serialise it to JSON.
(b) ``judge_only``: ``BothOrdersJudge(judge).judge_with_orders(items)`` on the same 32 pairs, prepared in advance:
    the judge's own time.
(c) ``filter_own_work``: (a) with a judge that answers instantly (the tiny judge's verdicts on these pairs, served
    from memory): what the filter does besides judging, plus the both-orders wrapper that (b) also runs. An upper
    bound of the overhead, in milliseconds, that hardly depends on the judge's speed or on the machine's load.

(a) and (b) use the same judge object (built once through the judge SPEC, as the filter builds it). Goal: (a) takes
at most 1.10x the time of (b). Besides the two medians, (b) also times (a) and (b) back to back for the same number
of rounds (alternating which goes first) and reports the median of the per-round ratios, which load changes on a
shared machine affect much less; (c) gives the estimate ``1 + (c) / (b)``. Run with::

    python -m pytest benchmarks/bench_judge_filter.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from lm_eval_pandalm.harness import judging
from lm_eval_pandalm.harness.judge_filter import PandaLMJudgeFilter
from lm_eval_pandalm.judge import Judge
from lm_eval_pandalm.testing.tiny_models import build_tiny_judge, synthetic_pair_items
from lm_eval_pandalm.types import PairItem, Verdict
from lm_eval_pandalm.wrappers.both_orders import BothOrdersJudge

N_DOCS = 32
ROUNDS, WARMUP_ROUNDS = 20, 3
INTERLEAVED_ROUNDS = 40
OVERHEAD_GOAL = 1.10
"""The filter may take at most this many times the judge's own time on the same items."""

FILTER_OPTIONS = {
    "instruction": "{{ instruction }}",
    "input": "{{ input }}",
    "baseline": "{{ baseline }}",
    "judge": "{{ judge }}",
    "protocol": "{{ protocol }}",
}


class _Summary:
    """Prints the overhead figures at the end of the run (a plugin registered by the benchmark module)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if "judge_filter" not in self.results or "judge_only" not in self.results:
            return
        terminalreporter.section("judge filter overhead")
        filtered, judged = self.results["judge_filter"]["median_s"], self.results["judge_only"]["median_s"]
        ratio = filtered / judged
        status = "met" if ratio <= OVERHEAD_GOAL else "NOT met"
        terminalreporter.write_line(f"time of judge filter / judge only, ratio of medians: {ratio:.3f} ({status})")
        if "filter_own_work" in self.results:
            own = self.results["filter_own_work"]["median_s"]
            ratio = 1 + own / judged
            status = "met" if ratio <= OVERHEAD_GOAL else "NOT met"
            terminalreporter.write_line(
                f"filter's own work (instant judge): {own * 1e3:.2f} ms for {N_DOCS} documents; "
                f"1 + own work / judge only: {ratio:.3f} (goal <= {OVERHEAD_GOAL}: {status})"
            )
        if "filter_interleaved_ratio" in self.results:
            ratio = self.results["filter_interleaved_ratio"]
            status = "met" if ratio <= OVERHEAD_GOAL else "NOT met"
            terminalreporter.write_line(
                f"time of judge filter / judge only, interleaved rounds: {ratio:.3f} "
                f"(goal <= {OVERHEAD_GOAL}: {status})"
            )


@pytest.fixture(scope="module", autouse=True)
def _summary_plugin(request: pytest.FixtureRequest, bench_results: dict) -> None:
    plugin = _Summary(bench_results)
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "bench_judge_filter_summary")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A YAML judge config for the tiny judge (no progress bars), with the judgment cache switched off."""
    folder: Path = build_tiny_judge(tmp_path_factory.mktemp("bench") / "judge")
    config = tmp_path_factory.mktemp("bench") / "judge.yaml"
    config.write_text(f"type: pandalm\nmodel: {folder}\nshow_progress: false\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PANDALM_NO_CACHE", "1")
        yield str(config)
        judging.clear_judge_cache()


@pytest.fixture(scope="module")
def judge(spec: str) -> Judge:
    return judging.judge_for_spec(spec)  # the very object the filter will use


@pytest.fixture(scope="module")
def pairs() -> list[PairItem]:
    # Short responses (1-4 sentences): the quicker the judge, the larger the filter's share of the time.
    return synthetic_pair_items(N_DOCS, seed=11)


def _docs(spec: str, pairs: list[PairItem]) -> list[dict[str, str]]:
    """Documents as the pandalm_pairwise task has them: the candidate's response is the pair's first."""
    return [
        {
            "id": item.id,
            "instruction": item.instruction,
            "input": item.input,
            "baseline": item.response2,
            "judge": spec,
            "protocol": "both-orders",
        }
        for item in pairs
    ]


@pytest.fixture(scope="module")
def filter_run(spec: str, pairs: list[PairItem]) -> Callable[[], list[list[str]]]:
    """(a): one lm-eval ``apply`` of the judge filter on the documents' generations."""
    docs = _docs(spec, pairs)
    resps = [[item.response1] for item in pairs]

    def run() -> list[list[str]]:
        return PandaLMJudgeFilter(**FILTER_OPTIONS).apply(resps, docs)

    return run


@pytest.fixture(scope="module")
def judge_run(judge: Judge, pairs: list[PairItem]) -> Callable[[], list]:
    """(b): the judge alone, in both orders, on the same pairs."""
    both = BothOrdersJudge(judge, rule="average")
    return lambda: both.judge_with_orders(pairs)


class _Recorded:
    """A judge that answers from verdicts recorded in memory (keyed on the pair's content), instantly."""

    judge_id = "recorded"
    fingerprint = "recorded"

    def __init__(self, verdicts: dict[str, Verdict]) -> None:
        self.verdicts = verdicts

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        return [self.verdicts[item.key] for item in items]


@pytest.fixture(scope="module")
def own_work_run(judge: Judge, spec: str, pairs: list[PairItem]) -> Iterator[Callable[[], list[list[str]]]]:
    """(c): the filter's apply with an instant judge in place of the tiny judge."""
    batch = pairs + [item.swapped() for item in pairs]
    recorded = _Recorded({item.key: verdict for item, verdict in zip(batch, judge(batch), strict=True)})
    real = judging.judge_for_spec
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(judging, "judge_for_spec", lambda s, data_dir=None: recorded if s == "recorded" else real(s))
        docs = [{**doc, "judge": "recorded"} for doc in _docs(spec, pairs)]
        resps = [[item.response1] for item in pairs]
        yield lambda: PandaLMJudgeFilter(**FILTER_OPTIONS).apply(resps, docs)


@pytest.fixture(scope="module", autouse=True)
def _warm(filter_run: Callable[[], Any], judge_run: Callable[[], Any]) -> None:
    """Run both once before any timing, so that both are timed in the same warmed-up process."""
    filter_run()
    judge_run()


def _without_judge(entry: list[str]) -> dict[str, Any]:
    summary = json.loads(entry[0])
    summary.pop("judge")
    return summary


def _record(benchmark: Any, results: dict, name: str) -> None:
    if benchmark.disabled:  # --benchmark-disable: run once as a plain test, nothing was timed
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        docs=N_DOCS, judged_items=2 * N_DOCS, seconds_per_doc=median / N_DOCS, torch_threads=torch.get_num_threads()
    )
    results[name] = {"median_s": median, "pairs": N_DOCS}


def test_judge_filter(benchmark: Any, filter_run: Callable[[], list[list[str]]], bench_results: dict) -> None:
    out = benchmark.pedantic(filter_run, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    assert len(out) == N_DOCS and all(len(entry) == 1 for entry in out)
    _record(benchmark, bench_results, "judge_filter")


def test_judge_only(
    benchmark: Any, judge_run: Callable[[], list], filter_run: Callable[[], Any], bench_results: dict
) -> None:
    judgments = benchmark.pedantic(judge_run, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    assert len(judgments) == N_DOCS and all(j.combined.ok for j in judgments)
    _record(benchmark, bench_results, "judge_only")
    ratios = []
    for round_ in range(INTERLEAVED_ROUNDS):
        # Alternate which one goes first, so that neither always runs in the other's wake.
        first, second = (filter_run, judge_run) if round_ % 2 == 0 else (judge_run, filter_run)
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        end = time.perf_counter()
        filtered, judged = (middle - start, end - middle) if round_ % 2 == 0 else (end - middle, middle - start)
        ratios.append(filtered / judged)
    interleaved = statistics.median(ratios)
    benchmark.extra_info["interleaved_ratio_filter_over_judge"] = interleaved
    bench_results["filter_interleaved_ratio"] = interleaved


def test_filter_own_work(
    benchmark: Any, own_work_run: Callable[[], list[list[str]]], filter_run: Callable[[], list[list[str]]],
    bench_results: dict,
) -> None:  # fmt: skip
    out = benchmark.pedantic(own_work_run, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    # The same judgments as with the tiny judge itself (only the judge's name differs).
    assert [_without_judge(entry) for entry in out] == [_without_judge(entry) for entry in filter_run()]
    _record(benchmark, bench_results, "filter_own_work")
