"""The local judge behind the public entry points: SPEC registry, cache, both orders, CLI."""

import json

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.testing.tiny_models import synthetic_pair_items
from lm_eval_pandalm.verdict_io import read_verdicts
from lm_eval_pandalm.wrappers import BothOrdersJudge, CachedJudge


@pytest.fixture(scope="module")
def items():
    return synthetic_pair_items(6, seed=3)


def _build(tiny_judge_dir, cache_path):
    judge = make_judge(f"pandalm:{tiny_judge_dir}", cache=cache_path)
    assert isinstance(judge, CachedJudge)
    return judge


def test_a_cached_rerun_makes_zero_forward_passes(tiny_judge_dir, tmp_path, items):
    cache_path = tmp_path / "judgments.sqlite"
    first = _build(tiny_judge_dir, cache_path)
    verdicts = BothOrdersJudge(first).judge_with_orders(items)
    assert first.inner.forward_calls >= 1
    assert first.misses == 2 * len(items)

    second = _build(tiny_judge_dir, cache_path)  # a fresh process would look exactly like this
    again = BothOrdersJudge(second).judge_with_orders(items)
    assert second.inner.forward_calls == 0
    assert second.hits == 2 * len(items)
    for a, b in zip(verdicts, again, strict=True):
        assert (a.first.p_first, a.first.p_second, a.first.p_tie) == pytest.approx(
            (b.first.p_first, b.first.p_second, b.first.p_tie)
        )
        assert a.combined.winner == b.combined.winner
        assert b.first.source == "cache"


def test_a_cached_swapped_pair_is_judged_afresh_not_served_flipped(tiny_judge_dir, tmp_path, items):
    # The local judge is order-sensitive: the flip of its (2, 1) verdict is not its (1, 2) verdict.
    cache_path = tmp_path / "judgments.sqlite"
    swapped = [item.swapped() for item in items]
    _build(tiny_judge_dir, cache_path)(swapped)
    judge = _build(tiny_judge_dir, cache_path)
    served = judge(items)
    assert judge.inner.forward_calls > 0 and judge.flipped_hits == 0
    fresh = make_judge(f"pandalm:{tiny_judge_dir}", cache=False)(items)
    for verdict, expected in zip(served, fresh, strict=True):
        assert verdict.source is None
        assert verdict.p_first == pytest.approx(expected.p_first, abs=1e-5)


def test_both_orders_average_the_two_orders_of_the_real_model(tiny_judge_dir, items):
    judge = make_judge(f"pandalm:{tiny_judge_dir}", cache=False)
    for j in BothOrdersJudge(judge).judge_with_orders(items):
        assert j.combined.p_first == pytest.approx((j.first.p_first + j.second.p_first) / 2)
        assert j.combined.p_tie == pytest.approx((j.first.p_tie + j.second.p_tie) / 2)
        assert j.consistent == (j.first.winner == j.second.winner)
    paper = BothOrdersJudge(judge, rule="paper").judge_with_orders(items)
    for j in paper:
        expected = j.first.winner if j.consistent else "Tie"
        assert j.combined.winner == expected


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_meta_cli_with_a_local_judge(tiny_judge_dir, tmp_path, capsys):
    cache = str(tmp_path / "c.sqlite")
    args = ["meta", "--benchmark", "llmbar-natural", "--judge", f"pandalm:{tiny_judge_dir}", "--limit", "4"]
    assert main([*args, "--protocol", "both-orders", "--json", "--cache", cache]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 4 and result["failed"] == 0
    assert 0 <= result["positional_agreement"] <= 1
    assert result["judge"] == f"pandalm:{tiny_judge_dir}" and result["protocol"] == "both-orders"


def test_judge_cli_with_a_yaml_config(tiny_judge_dir, tmp_path, items):
    config = tmp_path / "judge.yaml"
    config.write_text(f"type: pandalm\nmodel: {tiny_judge_dir}\nmax_batch_size: 2\nshow_progress: false\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps(
                {"instruction": i.instruction, "input": i.input, "response1": i.response1, "response2": i.response2}
            )
            + "\n"
            for i in items
        )
    )
    out = tmp_path / "verdicts.jsonl"
    assert main(["judge", "--input", str(pairs), "--judge", str(config), "--output", str(out), "--no-cache"]) == 0
    verdicts = [v for _, v in read_verdicts(out)]
    assert len(verdicts) == len(items) and all(v.ok for v in verdicts)
    assert all(abs(v.p_first + v.p_second + v.p_tie - 1) < 1e-6 for v in verdicts)
