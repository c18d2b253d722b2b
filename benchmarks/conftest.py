"""Benchmark collection (``bench_*.py`` files) and the summary of the verdict-path speed goals."""

from __future__ import annotations

import pytest

_RESULTS = pytest.StashKey[dict]()

SPEEDUP_GOAL = 100.0
"""The verdict path must judge at least this many times more pairs per second than PandaLM's reference loop."""
FLOOR_GOAL = 1.25
"""The verdict path may take at most this many times the bare forward pass over the same prompts."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("python_files", "bench_*.py")
    config.stash[_RESULTS] = {}


@pytest.fixture(scope="session")
def bench_results(request: pytest.FixtureRequest) -> dict:
    """Median seconds and pair counts per benchmark, filled by the benchmarks, read by the summary."""
    return request.config.stash[_RESULTS]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    if not results:
        return
    write = terminalreporter.write_line
    if "training" in results:
        terminalreporter.section("training goals")
        _training_summary(write, results["training"])
        if len(results) == 1:
            return
    terminalreporter.section("verdict path goals")
    for name, entry in results.items():
        if not isinstance(entry, dict) or "pairs" not in entry:
            continue
        per_pair = entry["median_s"] / entry["pairs"]
        write(f"{name:>21}: median {entry['median_s']:.4f} s for {entry['pairs']} pairs = {per_pair * 1e3:.3f} ms/pair")
    if "verdict_path" in results and "reference_loop" in results:
        ours = results["verdict_path"]["median_s"] / results["verdict_path"]["pairs"]
        theirs = results["reference_loop"]["median_s"] / results["reference_loop"]["pairs"]
        speedup = theirs / ours
        status = "met" if speedup >= SPEEDUP_GOAL else "NOT met"
        write(f"pairs/s of verdict path / reference loop: {speedup:.0f}x (goal >= {SPEEDUP_GOAL:.0f}x: {status})")
    if "verdict_path" in results and "forward_floor" in results:
        ratio = results["verdict_path"]["median_s"] / results["forward_floor"]["median_s"]
        status = "met" if ratio <= FLOOR_GOAL else "NOT met"
        write(f"time of verdict path / forward floor, ratio of medians: {ratio:.3f} (goal <= {FLOOR_GOAL}: {status})")
    if "interleaved_ratio" in results:
        ratio = results["interleaved_ratio"]
        status = "met" if ratio <= FLOOR_GOAL else "NOT met"
        write(f"time of verdict path / forward floor, interleaved rounds: {ratio:.3f} (goal <= {FLOOR_GOAL}: {status})")


def _training_summary(write, training: dict) -> None:
    """bench_training.py: tokens/s of padding-free and padded batches, their ratio, the loss-curve difference."""
    goal, rtol = training["goal"], training["loss_rtol"]
    names = ("padded", "padding_free", "padding_free_row_mask")
    timed = [name for name in names if name in training and training[name]["median_s"] > 0]
    for name in timed:
        entry = training[name]
        write(f"{name:>21}: median {entry['median_s']:.3f} s for {entry['tokens']} real tokens = "
              f"{entry['tokens'] / entry['median_s']:.0f} tokens/s")  # fmt: skip
    if {"padded", "padding_free"} <= set(timed):  # not with --benchmark-disable (no medians then)
        ratio = training["padded"]["median_s"] / training["padding_free"]["median_s"]
        status = "met" if ratio >= goal else "NOT met"
        write(f"tokens/s of padding-free / padded, ratio of medians: {ratio:.2f} (goal >= {goal}: {status})")
    if "interleaved_ratio" in training:
        ratio = training["interleaved_ratio"]
        status = "met" if ratio >= goal else "NOT met"
        rounds = ", ".join(f"{r:.2f}" for r in training["ratios"])
        write(f"tokens/s of padding-free / padded, interleaved rounds: {ratio:.2f} [{rounds}] "
              f"(goal >= {goal}: {status})")  # fmt: skip
        write(f"padded slots / real tokens: {training['padded_slots'] / training['real_tokens']:.2f} over "
              f"{training['steps']} steps; loss curves: worst relative difference {training['loss_rtol_worst']:.1e} "
              f"(tolerance {rtol:.0e})")  # fmt: skip
