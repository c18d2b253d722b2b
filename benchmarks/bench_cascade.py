"""How much a cascade adds to the time its stages take, over replayed stages.

The cascade ``LLaMA2 -> GPT-4`` (both replayed from LLMBar's recorded verdicts, both orders) judges the five LLMBar
sets at once (419 pairs, asked in both orders as ``pandalm meta --protocol both-orders`` asks: 838 presentations).
Side by side, in interleaved rounds:

(a) ``cascade``: the whole cascade call (grouping into pairs, both stages, signals, policy, records, accounting);
(b) ``stages``: the stages' own calls on exactly the batches the cascade sent them (recorded once beforehand).

Two configurations: ``consistency`` (the policy's one signal) and ``example`` (the signals and calibrated router of
``examples/cascade-llmbar-replay.yaml``, TF-IDF distance included). The example is timed twice: ``warm``, the same
cascade judging the pairs again (its text signals are computed once per pair and kept), and ``cold``, a fresh
cascade each round (every signal computed; the TF-IDF reference stays fitted). Goal: (a) / (b) <= 1.10, the median
of the per-round ratios. Run with::

    python -m pytest benchmarks/bench_cascade.py --benchmark-only -q -p no:cacheprovider

As a plain test (``python -m pytest benchmarks/bench_cascade.py -q -p no:cacheprovider --benchmark-disable``) it runs
a few rounds only and checks nothing but that both paths run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lm_eval_pandalm.data.benchmarks import load_benchmark
from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.types import PairItem
from lm_eval_pandalm.wrappers.cascade.build import with_policy

REPO = Path(__file__).resolve().parents[1]
SETS = ("llmbar-natural", "llmbar-neighbor", "llmbar-gptinst", "llmbar-gptout", "llmbar-manual")
GOAL = 1.10
ROUNDS = 25
CONFIGS: dict[str, str | None] = {
    "consistency": """
type: cascade
stages:
  - {name: llama2, judge: "replay:LLaMA2", context_tokens: 4096}
  - {name: gpt-4, judge: "replay:GPT-4", model: gpt-4, prompt_overhead_tokens: 150}
signals: [consistent]
policy: {type: threshold, score: consistent}
""",
    "example-warm": None,  # the shipped example
    "example-cold": None,
}


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


class _Spy:
    """Records the batches a stage judge receives."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.judge_id = inner.judge_id
        self.batches: list[list[PairItem]] = []

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def __call__(self, items: list[PairItem]) -> list[Any]:
        self.batches.append(list(items))
        return self.inner(items)


@pytest.fixture(scope="module")
def requests(monkeypatch_module: pytest.MonkeyPatch) -> list[PairItem]:
    data = REPO.parent / "shared" / "data"
    if not data.is_dir() and not os.environ.get("PANDALM_DATA_DIR"):
        pytest.skip(f"LLMBar's recordings are needed: no data mirror at {data} and PANDALM_DATA_DIR is unset")
    if data.is_dir():
        monkeypatch_module.setenv("PANDALM_DATA_DIR", str(data))
    items = [item for name in SETS for item in load_benchmark(name).items]
    return items + [item.swapped() for item in items]


def _paths(config: str, tmp_path: Path, requests: list[PairItem]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    source = CONFIGS[config]
    if source is None:
        spec = str(REPO / "examples" / "cascade-llmbar-replay.yaml")
    else:
        spec = str(tmp_path / f"{config}.yaml")
        Path(spec).write_text(source, encoding="utf-8")
    probe = make_judge(spec, cache=False)
    spies = [_Spy(stage.judge) for stage in probe.stages]  # type: ignore[attr-defined]
    for stage, spy in zip(probe.stages, spies, strict=True):  # type: ignore[attr-defined]
        stage.judge = spy
    probe(requests)  # loads the recordings and fits the TF-IDF reference; records each stage's batches
    recorded = [(spy.inner, batch) for spy in spies for batch in spy.batches]
    for stage, spy in zip(probe.stages, spies, strict=True):  # type: ignore[attr-defined]
        stage.judge = spy.inner

    def cascade() -> Any:
        if config.endswith("-cold"):
            fresh = with_policy(probe, probe.policy)  # type: ignore[arg-type]
            fresh._static_cache = {}
            return fresh(requests)
        probe.spent_usd = 0.0  # each round is a run of its own: a lifetime budget must not stop later rounds
        return probe(requests)

    def stages() -> Any:
        return [judge(batch) for judge, batch in recorded]

    return cascade, stages


@pytest.mark.parametrize("config", list(CONFIGS))
def test_cascade_overhead(config: str, requests: list[PairItem], tmp_path: Path, benchmark: Any) -> None:
    cascade, stages = _paths(config, tmp_path, requests)
    cascade()
    stages()
    rounds = ROUNDS if not benchmark.disabled else 2
    ratios, times_a, times_b = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        stages()
        middle = time.perf_counter()
        cascade()
        end = time.perf_counter()
        times_b.append(middle - start)
        times_a.append(end - middle)
        ratios.append((end - middle) / (middle - start))
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(
        {"cascade_median_s": statistics.median(times_a), "stages_median_s": statistics.median(times_b), "ratio": ratio}
    )
    benchmark.pedantic(cascade, rounds=3 if not benchmark.disabled else 1, iterations=1)
    status = "met" if ratio <= GOAL else "NOT met"
    print(
        f"\n{config}: cascade {statistics.median(times_a) * 1e3:.1f} ms, stages {statistics.median(times_b) * 1e3:.1f}"
        f" ms, median of the per-round ratios {ratio:.3f} (goal <= {GOAL}: {status})"
    )
