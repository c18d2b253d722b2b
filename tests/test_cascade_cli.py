"""The cascade through the command line and lm-eval: the shipped example on LLMBar's recorded verdicts,
``pandalm calibrate``, ``meta --json/--dry-run/--plot``, ``judge --json``, ``export-escalations``, the judgment cache
in front of a local stage, and ``pandalm_pairwise`` with a cascade judge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.harness import judging
from lm_eval_pandalm.harness.cascade_metrics import METRICS as COST_METRICS
from lm_eval_pandalm.harness.judging import JudgmentSummary, judge_against_baseline
from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.testing.fakes import FakeJudge, PreferLonger
from lm_eval_pandalm.types import PairItem
from lm_eval_pandalm.wrappers.cache import CachedJudge
from lm_eval_pandalm.wrappers.cascade import build_cascade
from lm_eval_pandalm.wrappers.cascade.config import parse_cascade_mapping

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cascade-llmbar-replay.yaml"
SMALL_SETS = "llmbar-gptout,llmbar-manual"  # 47 and 46 pairs


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _uncalibrated(tmp_path: Path) -> Path:
    """The example with a plain consistency policy (escalates the pairs LLaMA2 judges inconsistently)."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["policy"] = {"type": "threshold", "score": "consistent"}
    path = tmp_path / "cascade.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_shipped_example_is_calibrated_and_loads(shared_data_dir: Path) -> None:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert config["policy"]["type"] == "calibrated"
    assert config["policy"]["calibration"]["benchmarks"] == [
        "llmbar-natural",
        "llmbar-neighbor",
        "llmbar-gptinst",
        "llmbar-gptout",
        "llmbar-manual",
    ]
    judge = make_judge(str(EXAMPLE))
    assert [stage.name for stage in judge.stages] == ["llama2", "gpt-4"]  # type: ignore[attr-defined]


def test_meta_json_reports_escalation_calls_tokens_cost_and_guarantee(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _uncalibrated(tmp_path)
    assert (
        main(["meta", "--benchmark", "llmbar-gptout", "--judge", str(config), "--protocol", "both-orders", "--dry-run"])
        == 0
    )
    estimate = _last_json(capsys.readouterr().out)
    assert estimate["dry_run"] and estimate["units"] == 47 and estimate["api_calls_upper_bound"] == 94
    assert (
        main(["meta", "--benchmark", "llmbar-gptout", "--judge", str(config), "--protocol", "both-orders", "--json"])
        == 0
    )
    summary = _last_json(capsys.readouterr().out)
    stages = summary["stages"]
    assert summary["units"] == 47 and stages[0]["reached"] == 47
    # Each escalated pair is judged by GPT-4 in both orders: two (estimated, replayed) API calls.
    assert summary["escalated_fraction"] == pytest.approx(stages[1]["reached"] / 47)
    assert summary["api_calls"] == 2 * stages[1]["reached"] and summary["cost_estimated"] is True
    assert 0 < summary["cost_usd"] <= estimate["cost_usd_upper_bound"] * 1.05
    assert summary["tokens"] == stages[1]["tokens"] and stages[0]["api_calls"] == 0
    assert summary["guarantee"]["policy"] == "threshold" and summary["guarantee"]["kept_units"] == stages[0]["kept"]
    assert 0 <= summary["guarantee"]["agreement_kept"] <= 1
    assert summary["accuracy_order_avg"] is not None


def test_calibrate_writes_a_config_with_leave_one_out_figures(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _uncalibrated(tmp_path)
    output = tmp_path / "calibrated.yaml"
    args = ["calibrate", "--benchmark", SMALL_SETS, "--judge", str(source), "--alpha", "0.3", "--delta", "0.2"]
    assert main([*args, "--output", str(output), "--json"]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert [row["held_out"] for row in summary["leave_one_out"]] == ["llmbar-gptout", "llmbar-manual"]
    for row in summary["leave_one_out"] + summary["in_sample"]:
        assert 0 <= row["accuracy_order_avg"] <= 1 and 0 <= row["escalated_fraction"] <= 1
    written = yaml.safe_load(output.read_text(encoding="utf-8"))
    policy = written["policy"]
    assert policy["type"] == "calibrated" and policy["alpha"] == 0.3 and policy["delta"] == 0.2
    assert len(policy["router"]) == 1 and len(policy["thresholds"]) == 1
    assert written["stages"] == yaml.safe_load(source.read_text(encoding="utf-8"))["stages"]
    # The written config runs, and on its calibration data escalates what calibration measured.
    assert (
        main(["meta", "--benchmark", "llmbar-gptout", "--judge", str(output), "--protocol", "both-orders", "--json"])
        == 0
    )
    run = _last_json(capsys.readouterr().out)
    gptout = next(row for row in summary["in_sample"] if row["benchmark"] == "llmbar-gptout")
    assert run["escalated_fraction"] == pytest.approx(gptout["escalated_fraction"])
    assert run["accuracy_order_avg"] == pytest.approx(gptout["accuracy_order_avg"])


def test_calibrate_refuses_bad_input(shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.yaml")
    assert main(["calibrate", "--benchmark", "llmbar-gptout", "--judge", "replay:GPT-4", "--output", out]) == 2
    assert "cascade config file" in capsys.readouterr().err
    source = str(_uncalibrated(tmp_path))
    assert (
        main(["calibrate", "--benchmark", "llmbar-gptout", "--judge", source, "--alpha", "1.5", "--output", out]) == 2
    )
    assert "--alpha must be strictly between 0 and 1" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: cascade\nstages: [replay:LLaMA2, replay:GPT-4]\npolicy: {typ: threshold}\n")
    assert main(["meta", "--benchmark", "llmbar-gptout", "--judge", str(bad)]) == 2
    assert "unknown option 'typ'" in capsys.readouterr().err


def test_meta_plot_writes_a_png(shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "plots" / "gptout.png"
    config = str(_uncalibrated(tmp_path))
    assert (
        main(
            [
                "meta",
                "--benchmark",
                "llmbar-manual",
                "--judge",
                config,
                "--protocol",
                "both-orders",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_escalations_writes_pandalm_training_format(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_uncalibrated(tmp_path))
    output = tmp_path / "escalated.jsonl"
    assert main(["export-escalations", "--benchmark", "llmbar-gptout", "--judge", config, "--output", str(output)]) == 0
    message = capsys.readouterr().out
    escalated = int(message.split(" of ")[0])
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2 * escalated > 0
    for line in lines:
        assert set(line) == {"inputs", "outputs"}
        assert set(line["inputs"]) == {"instruction", "input", "response1", "response2"}
        assert set(line["outputs"]) == {"evaluation_result", "evaluation_reason", "reference_response"}
        assert line["outputs"]["evaluation_result"] in ("1", "2", "Tie")
    first, second = lines[0], lines[1]  # one pair in both orders: the same judgment seen from each side
    assert first["inputs"]["response1"] == second["inputs"]["response2"]
    first_only = tmp_path / "first.jsonl"
    args = ["export-escalations", "--benchmark", "llmbar-gptout", "--judge", config, "--output", str(first_only)]
    assert main([*args, "--orders", "first"]) == 0
    assert len(first_only.read_text(encoding="utf-8").splitlines()) == escalated
    assert (
        main(["export-escalations", "--benchmark", "llmbar-gptout", "--judge", "replay:GPT-4", "--output", str(output)])
        == 2
    )


def test_judge_json_with_a_cascade(shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lm_eval_pandalm.data.benchmarks import load_benchmark
    from lm_eval_pandalm.verdict_io import item_to_dict

    items = load_benchmark("llmbar-manual").items[:10]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(item_to_dict(item)) + "\n" for item in items), encoding="utf-8")
    config = str(_uncalibrated(tmp_path))
    output = tmp_path / "verdicts.jsonl"
    args = ["judge", "--input", str(pairs), "--judge", config, "--output", str(output), "--protocol", "both-orders"]
    assert main([*args, "--json"]) == 0
    figures = _last_json(capsys.readouterr().out)
    assert figures["judged"] == 10 and figures["units"] == 10 and "escalated_fraction" in figures
    assert len(output.read_text(encoding="utf-8").splitlines()) == 10


def test_local_stage_goes_through_the_judgment_cache(tiny_judge_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "type": "cascade",
                "stages": [
                    {"name": "local", "judge": f"pandalm:{tiny_judge_dir}"},
                    {"name": "again", "judge": f"pandalm:{tiny_judge_dir}"},
                ],
                "policy": {"type": "threshold", "score": "max_prob", "thresholds": [0.99]},
            }
        )
    )
    items = [PairItem("Say hi.", "Hi!", "Hello there."), PairItem("Name a colour.", "Red.", "Blue, like the sky.")]
    cache = tmp_path / "judgments.sqlite"
    judge = make_judge(str(config), cache=cache)
    local = judge.stages[0].judge  # type: ignore[attr-defined]
    assert isinstance(local, CachedJudge)
    first = judge(items)
    again = make_judge(str(config), cache=cache)
    second = again(items)
    assert [v.winner for v in first] == [v.winner for v in second]
    assert again.stages[0].judge.hits == 4 and again.stages[0].judge.misses == 0  # type: ignore[attr-defined]


def test_summaries_say_which_stage_decided_and_what_it_cost() -> None:
    cheap = FakeJudge(PreferLonger(position_bias=2.0), judge_id="cheap")
    strong = FakeJudge(PreferLonger(), judge_id="strong")
    config = parse_cascade_mapping(
        {"stages": [{"name": "cheap", "judge": "fake:c"}, {"name": "strong", "judge": "fake:s", "model": "gpt-4"}]}
    )
    judge = build_cascade(config, judges=[cheap, strong])
    summaries = judge_against_baseline(
        judge,
        instructions=["Short?", "Close?"],
        inputs=["", ""],
        responses=["a", "c" * 20],
        baselines=["b" * 40, "d" * 22],
    )
    kept, escalated = summaries
    assert (kept.stage, kept.escalated, kept.api_calls, kept.cost_usd) == ("cheap", False, 0, 0.0)
    assert escalated.stage == "strong" and escalated.escalated and escalated.api_calls == 2
    assert escalated.cost_usd > 0 and escalated.decision == "cheap: consistent 0 < 1 -> strong: last stage"
    values = {name: [fn(["ref"], [s.to_json()]) for s in summaries] for name, fn in COST_METRICS.items()}
    assert values["pandalm_escalated"] == [0.0, 1.0] and values["pandalm_api_calls"] == [0.0, 2.0]
    # A judge that is no cascade: unknown, not zero.
    (plain,) = judge_against_baseline(strong, instructions=["Q"], inputs=[""], responses=["a"], baselines=["bb"])
    assert plain.stage is None and all(math.isnan(fn(["ref"], [plain.to_json()])) for fn in COST_METRICS.values())
    # Summaries logged before these fields existed still read back.
    old = {
        k: v
        for k, v in json.loads(plain.to_json()).items()
        if k not in ("stage", "escalated", "decision", "api_calls", "cost_usd")
    }
    assert JudgmentSummary.from_json(json.dumps(old)).stage is None


@pytest.fixture(scope="module")
def tiny_candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lm_eval_pandalm.testing.tiny_models import build_tiny_candidate

    return build_tiny_candidate(tmp_path_factory.mktemp("tiny") / "candidate")


def test_pandalm_pairwise_with_a_cascade_judge(
    shared_data_dir: Path,
    tiny_judge_dir: Path,
    tiny_candidate_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("DISABLE_MULTIPROC", "1")
    config = tmp_path / "cascade.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "type": "cascade",
                "stages": [
                    {"name": "local", "judge": f"pandalm:{tiny_judge_dir}"},
                    {"name": "strong", "judge": f"pandalm:{tiny_judge_dir}", "model": "gpt-4"},
                ],
                "policy": {"type": "budget", "score": "margin", "fraction": 0.5},
            }
        )
    )
    try:
        results = simple_evaluate(
            model="hf",
            model_args={"pretrained": str(tiny_candidate_dir), "device": "cpu"},
            tasks=["pandalm_pairwise"],
            task_manager=TaskManager(
                include_path=str(REPO / "task_configs"), include_defaults=False, metadata={"judge": str(config)}
            ),
            gen_kwargs={"max_gen_toks": 8},
            limit=4,
            bootstrap_iters=100,
            log_samples=True,
        )
    finally:
        judging.clear_judge_cache()
    assert results is not None
    figures = results["results"]["pandalm_pairwise"]
    assert figures["pandalm_escalated,pandalm"] == 0.5  # the least confident half of the 4 documents
    for name in COST_METRICS:
        assert isinstance(figures[f"{name}_stderr,pandalm"], float)
    assert figures["pandalm_api_calls,pandalm"] == 1.0  # 2 escalated documents x 2 orders / 4 documents
    stages = []
    for sample in results["samples"]["pandalm_pairwise"]:
        summary = JudgmentSummary.from_json(sample["filtered_resps"][0])
        assert summary.decision and summary.stage in ("local", "strong")
        stages.append(summary.stage)
    assert sorted(stages) == ["local", "local", "strong", "strong"]


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_hidden_distance_reads_the_local_judges_final_hidden_state(tiny_judge_dir: Path) -> None:
    from lm_eval_pandalm.wrappers.cascade import CascadeJudge

    local = make_judge(f"pandalm:{tiny_judge_dir}", cache=False)
    reference = [PairItem("Say hi.", "Hi!", "Hello there."), PairItem("Name a colour.", "Red.", "Blue.")]
    vectors = local.embed(reference)  # type: ignore[attr-defined]
    assert len(vectors) == 2 and all(math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5) for vec in vectors)
    config = parse_cascade_mapping(
        {"stages": ["fake:local", "fake:strong"], "signals": ["hidden_distance"], "reference": "pandalm"}
    )
    stages = build_cascade(config, judges=[local, FakeJudge(judge_id="strong")]).stages
    judge = CascadeJudge(stages, config.policy_config, config.signal_names(), reference_items=reference)
    other = PairItem("Write a long essay about the history of mathematics.", "Once upon a time.", "No.")
    judge([reference[0], other])
    same = judge.decision_for(reference[0]).steps[0].signals["hidden_distance"]  # type: ignore[union-attr]
    far = judge.decision_for(other).steps[0].signals["hidden_distance"]  # type: ignore[union-attr]
    assert same == pytest.approx(0.0, abs=1e-5) and far > same
