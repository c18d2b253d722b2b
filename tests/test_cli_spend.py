"""`pandalm spend`: the spend ledger summarised per model, judge and day."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.ledger import SpendLedger, SpendRecord


def _day(text: str, hour: int = 12) -> float:
    day = dt.date.fromisoformat(text)
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc).timestamp()


def _record(when: float, model: str, judge: str, prompt: int | None, completion: int | None, cost, **extra):
    fields = {"outcome": "ok", "tokens_estimated": False, "latency_s": 0.5, "retries": 0, **extra}
    return SpendRecord(when, judge, "f" * 64, model, "http://127.0.0.1:1/v1 chat", "k", prompt_tokens=prompt,
                       completion_tokens=completion, cost_usd=cost, **fields)  # fmt: skip


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "spend.sqlite"
    with SpendLedger(path) as ledger:
        ledger.record(_record(_day("2026-03-01"), "gpt-4", "openai:gpt-4", 1000, 10, 0.0306))
        ledger.record(_record(_day("2026-03-01", 23), "gpt-4", "openai:gpt-4", 2000, 20, 0.0612, retries=2))
        ledger.record(
            _record(_day("2026-03-02"), "gpt-4", "openai:gpt-4", None, None, None, outcome="error", retries=4)
        )
        ledger.record(_record(_day("2026-03-02"), "pandalm", "openai-completions:pandalm", 900, 3, None))
    return path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_spend_sums_calls_tokens_and_dollars_per_model_judge_and_day(ledger_path, capsys):
    assert main(["spend", "--ledger", str(ledger_path), "--json"]) == 0
    summary = _json(capsys)
    total = summary["total"]
    assert (total["calls"], total["failed_calls"], total["retries"]) == (4, 1, 6)
    assert (total["prompt_tokens"], total["completion_tokens"], total["tokens"]) == (3900, 33, 3933)
    assert total["cost_usd"] == pytest.approx(0.0918) and total["unpriced_calls"] == 1
    by_model = {row["group"]: row for row in summary["by_model"]}
    assert by_model["gpt-4"]["calls"] == 3 and by_model["pandalm"]["cost_usd"] == 0.0
    assert [row["group"] for row in summary["by_judge"]] == ["openai:gpt-4", "openai-completions:pandalm"]
    by_day = {row["group"]: row["calls"] for row in summary["by_day"]}
    assert by_day == {"2026-03-01": 2, "2026-03-02": 2}  # 23:00 UTC is still the first


def test_spend_filters_by_date_and_groups_on_request(ledger_path, capsys):
    args = ["spend", "--ledger", str(ledger_path), "--since", "2026-03-02", "--by", "model", "--json"]
    assert main(args) == 0
    summary = _json(capsys)
    assert summary["total"]["calls"] == 2 and "by_day" not in summary
    assert {row["group"] for row in summary["by_model"]} == {"gpt-4", "pandalm"}
    assert main(["spend", "--ledger", str(ledger_path), "--until", "2026-03-01"]) == 0
    table = capsys.readouterr().out
    assert "total" in table and " 0 " in table  # an empty window is a table of zeros, not an error


def test_spend_reports_unusable_ledgers_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nothing.sqlite"
    assert main(["spend", "--ledger", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no spend ledger at" in err and not missing.exists()
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    assert main(["spend", "--ledger", str(other)]) == 2
    assert "not a spend ledger" in capsys.readouterr().err
    assert main(["spend", "--ledger", str(other), "--since", "March"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
