"""Training speed of the tiny judge: padding-free batches versus padded batches, same data, same steps.

Both paths are the training code's own choices (:func:`lm_eval_pandalm.training.train.build_collator` and
:func:`~lm_eval_pandalm.training.train.attention_implementation` for ``padding_free`` true and false): the tiny
random LLaMA of :mod:`lm_eval_pandalm.testing.tiny_models` from the same initial weights, AdamW, the same examples
in the same shuffled batches of 16 (``per_device_train_batch_size`` of examples/train-tiny.yaml). A round is one pass
of collate, forward, backward and optimizer step over every batch; the clock counts the real (non-pad) tokens.

The examples have PandaLM-like lengths: each field's word count is drawn from the deciles measured on PandaLM's
test set (``data/testset-v1.json``: instruction + input, each response) and on PandaLM-7B's own outputs on it
(``data/pandalm-7b-testset-v1.json``: reason, reference), words from the tiny tokenizer's vocabulary; targets are
encoded as training encodes them (swap augmentation and reference dropping at 0.5).

A third path, for comparison only, trains on the same flattened batches with transformers' own SDPA, which masks
the whole row (``T**2`` attention for ``T`` packed tokens): what padding-free training cost before
:mod:`lm_eval_pandalm.training.packed_attention`.

Goal: padding-free at least 1.5x the padded tokens/s, with the same loss curve (relative difference per step at
most ``LOSS_RTOL``). The per-round ratio of the two, timed back to back, is printed at the end (``conftest.py``).
Run with::

    python -m pytest benchmarks/bench_training.py --benchmark-only -q -p no:cacheprovider
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import transformers

from lm_eval_pandalm.data.training_format import TrainingExample
from lm_eval_pandalm.testing.tiny_models import _ADJECTIVES, _NOUNS, _VERBS, build_tiny_judge
from lm_eval_pandalm.training.config import parse_config
from lm_eval_pandalm.training.data import augment
from lm_eval_pandalm.training.encoding import encode_generative, setup_tokenizer
from lm_eval_pandalm.training.train import attention_implementation, build_collator
from lm_eval_pandalm.types import Label, PairItem

N_EXAMPLES, BATCH_SIZE, MAX_LENGTH = 128, 16, 1024
ROUNDS, WARMUP_ROUNDS = 5, 1
LOSS_RTOL = 1e-4
SPEEDUP_GOAL = 1.5
THREADS = 1

# Word-count deciles (min, 10%, ..., 90%, max), measured with str.split() on PandaLM's files at commit 3871806:
# instruction + input and each of the 1998 responses of testset-v1.json; reason and reference of the 999 outputs in
# pandalm-7b-testset-v1.json.
INSTRUCTION_WORDS = (1, 11, 14, 16, 19, 25, 33, 42, 61, 96, 331)
RESPONSE_WORDS = (0, 1, 5, 9, 14, 20, 29, 42, 56, 80, 230)
REASON_WORDS = (4, 9, 11, 13, 14, 15, 16, 17, 19, 21, 31)
REFERENCE_WORDS = (1, 3, 7, 11, 17, 23, 30, 40, 55, 76, 189)


def pandalm_like_examples(n: int, seed: int = 0) -> list[TrainingExample]:
    """``n`` examples whose field lengths follow PandaLM's (see the deciles above), in the tiny vocabulary."""
    rng = random.Random(seed)
    vocabulary = (*_NOUNS, *_VERBS, *_ADJECTIVES)

    def text(deciles: tuple[int, ...], least: int = 0) -> str:
        bin_ = rng.randrange(10)
        count = max(least, rng.randint(deciles[bin_], deciles[bin_ + 1]))
        return " ".join(rng.choice(vocabulary) for _ in range(count))

    return [
        TrainingExample(
            item=PairItem(text(INSTRUCTION_WORDS, 1), "", text(RESPONSE_WORDS), text(RESPONSE_WORDS)),
            label=rng.choice(list(Label)),
            reason=text(REASON_WORDS, 1),
            reference=text(REFERENCE_WORDS, 1),
        )
        for _ in range(n)
    ]


class TrainingPath:
    """One way of batching: the collator and attention the training code picks, a fresh model and optimizer."""

    def __init__(self, folder: Path, features: list[dict], output_dir: Path, *flags: str) -> None:
        config = parse_config([
            "--model_name_or_path", str(folder), "--train_file", "unused", "--output_dir", str(output_dir),
            "--use_cpu", "true", "--report_to", "none", *flags,
        ])  # fmt: skip
        tokenizer = setup_tokenizer(transformers.AutoTokenizer.from_pretrained(folder))
        self.collate = build_collator(config, tokenizer)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation=attention_implementation(config), use_cache=False
        )
        self.model.train()
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.features = features
        self.optimizer: torch.optim.Optimizer | None = None

    def reset(self) -> None:
        """Back to the initial weights and a fresh optimizer (not timed)."""
        self.model.load_state_dict(self.initial)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-3, weight_decay=0.0)

    def run(self, steps: int) -> list[float]:
        """``steps`` optimizer steps, one per batch; the loss of each step."""
        assert self.optimizer is not None
        losses = []
        for start in range(0, steps * BATCH_SIZE, BATCH_SIZE):
            batch = self.collate(self.features[start : start + BATCH_SIZE])
            loss = self.model(**batch).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            losses.append(loss.item())
        return losses


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread while timing: on a 2-core machine shared with other jobs, two OpenMP threads per process are
    oversubscribed and the same round takes anywhere from 0.5 s to 15 s; one thread gives stable figures."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    folder = build_tiny_judge(tmp_path_factory.mktemp("bench-train") / "judge")
    tokenizer = setup_tokenizer(transformers.AutoTokenizer.from_pretrained(folder))
    pairs = augment(pandalm_like_examples(N_EXAMPLES), 0.5, 0.5, seed=0)
    encoded = encode_generative(tokenizer, pairs, MAX_LENGTH)
    random.Random(1).shuffle(encoded)  # the Trainer's sampler shuffles: batches mix lengths
    return folder, encoded


@pytest.fixture(scope="module")
def steps(request: pytest.FixtureRequest, features: tuple[Path, list[dict]]) -> int:
    """Every batch when timing; two when benchmarks are disabled (the CI's run-once check)."""
    return 2 if request.config.getoption("benchmark_disable") else len(features[1]) // BATCH_SIZE


@pytest.fixture(scope="module")
def paths(
    features: tuple[Path, list[dict]], steps: int, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TrainingPath]:
    folder, encoded = features
    out = tmp_path_factory.mktemp("bench-train-out")
    row_mask = ("--attn_implementation", "sdpa")
    made = {
        "padded": TrainingPath(folder, encoded, out, "--padding_free", "false"),
        "padding_free": TrainingPath(folder, encoded, out, "--padding_free", "true"),
        # For comparison only: the same flattened batches with transformers' SDPA, which masks the whole row.
        "padding_free_row_mask": TrainingPath(folder, encoded, out, "--padding_free", "true", *row_mask),
    }
    # Both run once before any timing, so that neither is timed in a colder process than the other.
    for path in made.values():
        path.reset()
        path.run(min(steps, 2))
    return made


def _tokens(features: list[dict], steps: int) -> tuple[int, int]:
    """(real tokens, padded slots) of the first ``steps`` batches."""
    real = slots = 0
    for start in range(0, steps * BATCH_SIZE, BATCH_SIZE):
        lengths = [len(f["input_ids"]) for f in features[start : start + BATCH_SIZE]]
        real += sum(lengths)
        slots += len(lengths) * max(lengths)
    return real, slots


def _timed(benchmark, path: TrainingPath, steps: int) -> list[float]:
    curve: list[float] = []

    def one_round() -> None:
        curve[:] = path.run(steps)

    benchmark.pedantic(one_round, setup=path.reset, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    return curve


def _record(benchmark, results: dict, name: str, real: int, slots: int, curve: list[float]) -> None:
    median = benchmark.stats.stats.median if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        real_tokens=real, padded_slots=slots, tokens_per_s=real / median, torch_threads=torch.get_num_threads()
    )
    training = results.setdefault("training", {"goal": SPEEDUP_GOAL, "loss_rtol": LOSS_RTOL})
    training[name] = {"median_s": median, "tokens": real, "curve": curve}


@pytest.mark.parametrize("name", ["padded", "padding_free", "padding_free_row_mask"])
def test_training_tokens_per_second(
    benchmark, name: str, paths: dict[str, TrainingPath], features, steps: int, bench_results: dict
) -> None:
    curve = _timed(benchmark, paths[name], steps)
    assert len(curve) == steps and all(loss == loss for loss in curve)  # no NaN
    real, slots = _tokens(features[1], steps)
    _record(benchmark, bench_results, name, real, slots, curve)


def test_training_interleaved_ratio_and_loss_curves(
    benchmark, paths: dict[str, TrainingPath], features, steps: int, bench_results: dict
) -> None:
    """Both paths back to back, round after round (load drift on a shared machine cancels in each round's ratio)."""
    rounds = 1 if benchmark.disabled else ROUNDS
    ratios: list[float] = []
    curves: dict[str, list[float]] = {}
    clock: Callable[[], float] = time.perf_counter

    def interleaved() -> None:
        for _ in range(rounds):
            seconds = {}
            for name in ("padded", "padding_free"):
                path = paths[name]
                path.reset()
                start = clock()
                curves[name] = path.run(steps)
                seconds[name] = clock() - start
            ratios.append(seconds["padded"] / seconds["padding_free"])  # same real tokens: the ratio of tokens/s

    benchmark.pedantic(interleaved, rounds=1, iterations=1)
    padded, flat = curves["padded"], curves["padding_free"]
    worst = max(abs(a - b) / abs(a) for a, b in zip(padded, flat, strict=True))
    assert worst <= LOSS_RTOL, f"loss curves differ by {worst:.2e} (relative) at worst"
    real, slots = _tokens(features[1], steps)
    bench_results.setdefault("training", {"goal": SPEEDUP_GOAL, "loss_rtol": LOSS_RTOL}).update(
        interleaved_ratio=statistics.median(ratios),
        ratios=ratios,
        loss_rtol_worst=worst,
        real_tokens=real,
        padded_slots=slots,
        steps=steps,
    )
    benchmark.extra_info.update(interleaved_ratios=ratios, loss_relative_difference_worst=worst)
