"""``pandalm submit --dry-run``: per-candidate lm-eval results with a judge card, readable by lm-eval (acceptance 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main


def test_submit_dry_run_writes_lm_eval_results_with_a_judge_card(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lm_eval.utils import make_table

    judge = ["--judge", "replay:pandalm-7b", "--no-cache", "--json"]
    compare = ["compare", "--benchmark", "pandalm", "--protocol", "first-order", "--baseline", "bloom-7b"]
    assert main([*compare, *judge, "--bootstrap", "200"]) == 0
    (tmp_path / "cmp.json").write_text(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["meta", "--benchmark", "pandalm", *judge]) == 0
    (tmp_path / "meta.json").write_text(capsys.readouterr().out.strip().splitlines()[-1])
    out = tmp_path / "out"
    args = ["submit", "--compare", str(tmp_path / "cmp.json"), "--meta", str(tmp_path / "meta.json")]
    assert main([*args, "--output-dir", str(out), "--dry-run"]) == 0
    listed = [Path(line.removeprefix("would push: ")) for line in capsys.readouterr().out.splitlines()]
    assert sorted(listed) == sorted(p for p in out.rglob("*") if p.is_file())  # exactly the files listed
    assert {p.parent.name for p in listed} == {"llama-7b", "bloom-7b", "cerebras-gpt-6.7B", "opt-7b", "pythia-6.9b"}
    for path in listed:
        results = json.loads(path.read_text())
        table = make_table(results)
        assert "pandalm_bt_rating" in table and "pandalm_rank" in table
        card = results["pandalm_judge_card"]
        assert card["judge_id"] == "replay:pandalm-7b" and card["protocol"] == "first-order"
        assert card["fingerprint"].startswith("replay:pandalm-7b") and len(card["prompt_template_sha256"]) == 64
        assert card["meta"][0]["benchmark"] == "pandalm" and card["meta"][0]["accuracy"] > 0.6
        assert results["configs"]["pandalm_compare"]["metadata"]["pandalm_judge_card"] == card
        figures = results["results"]["pandalm_compare"]
        if path.parent.name != "bloom-7b":
            assert "pandalm_lc_win_rate" in table
            assert isinstance(figures["pandalm_lc_win_rate_stderr,pandalm"], float)
    # Pushing without a Hub organisation is refused with one line.
    assert main([*args, "--output-dir", str(tmp_path / "push")]) == 2
    assert "--hub-org" in capsys.readouterr().err
