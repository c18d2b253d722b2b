"""The API judge under faults, kills, budgets and a secret key, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.judges.openai_api import OpenAIJudge, OpenAIJudgeConfig
from lm_eval_pandalm.ledger import SpendLedger
from lm_eval_pandalm.testing.fakes import FakeJudge, PreferLonger
from lm_eval_pandalm.testing.openai_server import (
    FAULT_KINDS,
    OpenAIServer,
    VerdictResponder,
    periodic_faults,
    random_faults,
)
from lm_eval_pandalm.testing.tiny_models import synthetic_pair_items
from lm_eval_pandalm.types import VerdictState
from lm_eval_pandalm.wrappers.cache import JudgmentCache

SENTINEL_KEY = "sk-pandalm-SENTINEL-9f8e7d6c5b4a"


def _config(server: OpenAIServer, ledger: Path, **options) -> OpenAIJudgeConfig:
    return OpenAIJudgeConfig(
        **{"model": "gpt-4", "base_url": server.url, "api_key_env": None, "ledger": str(ledger), **options}
    )


def test_with_20_percent_faults_every_item_ends_judged_or_explicitly_failed(tmp_path):
    items = synthetic_pair_items(40, seed=21)
    truth = FakeJudge(PreferLonger(position_bias=0.3))
    expected = {item.key: verdict for item, verdict in zip(items, truth(items), strict=True)}
    faults = periodic_faults(5)  # every fifth attempt fails, each kind of fault in turn
    with OpenAIServer(chat=VerdictResponder(truth, items), fault_for=faults, timeout_stall_s=1.0) as server:
        config = _config(server, tmp_path / "spend.sqlite", concurrency=8, timeout_s=0.3, max_retries=2)
        verdicts = make_judge_from(config, tmp_path / "cache.sqlite")(items)
        stats = server.stats
        _check_fault_run(items, verdicts, expected, server, stats, tmp_path / "spend.sqlite")
        failed = [v for v in verdicts if not v.ok]
        # Failed calls were not cached: a fault-free re-run asks only for those.
        server.fault_for = None
        server.reset_stats()
        again = make_judge_from(config, tmp_path / "cache.sqlite")(items)
        assert server.stats.requests == len(failed)
    assert all(v.ok for v in again)


def _check_fault_run(items, verdicts, expected, server, stats, ledger_path) -> None:
    assert set(stats.faults) == set(FAULT_KINDS) and sum(stats.faults.values()) == stats.requests // 5
    for item, verdict in zip(items, verdicts, strict=True):
        answered = stats.answered_by_prompt[server.key_of(item)]
        assert verdict.state in (VerdictState.OK, VerdictState.ERROR)
        # Judged exactly when the server delivered an answer, and then with the server's verdict: never a made-up tie.
        assert verdict.ok == (answered == 1)
        if verdict.ok:
            assert verdict.winner == expected[item.key].winner
        else:
            assert verdict.error and verdict.winner is None and verdict.p_tie is None
    assert 0 < sum(not v.ok for v in verdicts) < len(items)

    with SpendLedger(ledger_path) as ledger:
        records = ledger.records()
    assert len(records) == len(items)  # one record per call, failed calls included
    by_key = {record.item_key: record for record in records}
    for item, verdict in zip(items, verdicts, strict=True):
        record = by_key[item.key]
        assert record.outcome == verdict.state.value
        assert record.retries == stats.attempts_by_prompt[server.key_of(item)] - 1
    assert sum(r.prompt_tokens or 0 for r in records) == stats.prompt_tokens
    assert sum(r.completion_tokens or 0 for r in records) == stats.completion_tokens


def make_judge_from(config: OpenAIJudgeConfig, cache: Path):
    """The API judge behind the judgment cache, as make_judge builds it from a YAML config."""
    path = cache.with_name(f"{cache.stem}-judge.yaml")
    path.write_text(json.dumps({"type": "openai", **dataclasses.asdict(config)}))  # JSON is YAML
    return make_judge(str(path), cache=cache)


def test_retry_after_is_honoured(tmp_path):
    items = synthetic_pair_items(1, seed=22)
    first_is_429 = lambda attempt, key: "rate_limit" if attempt == 1 else None  # noqa: E731
    with OpenAIServer(chat=VerdictResponder(FakeJudge(), items), fault_for=first_is_429, retry_after="1.2") as server:
        verdict = OpenAIJudge(_config(server, tmp_path / "spend.sqlite"))(items)[0]
        assert server.stats.requests == 2
    # The SDK's own first backoff is at most 0.5 s: waiting 1.2 s means it read the header.
    assert verdict.ok and verdict.latency_s >= 1.2
    with SpendLedger(tmp_path / "spend.sqlite") as ledger:
        assert [r.retries for r in ledger.records()] == [1]


def test_a_hard_budget_is_never_exceeded_by_more_than_the_requests_in_flight(tmp_path):
    items = synthetic_pair_items(40, seed=23)
    concurrency, budget = 4, 0.02
    prices = {"input_price_per_mtok": 10.0, "output_price_per_mtok": 10.0}
    # The server counts twice as many tokens as the judge estimates: estimates are low, as they can be in life.
    server = OpenAIServer(chat=VerdictResponder(FakeJudge(), items), latency_s=0.05, count_tokens=lambda t: len(t) // 2)
    with server:
        config = _config(server, tmp_path / "spend.sqlite", concurrency=concurrency, budget_usd=budget, **prices)
        judge = OpenAIJudge(config)
        verdicts = judge(items)
        over = [item for item, v in zip(items, verdicts, strict=True) if v.state is VerdictState.OVER_BUDGET]
        assert all(server.attempts_for(item) == 0 for item in over)  # refused before any request
        assert all(v.ok for v in verdicts if v.state is not VerdictState.OVER_BUDGET)
        with SpendLedger(tmp_path / "spend.sqlite") as ledger:
            costs = [r.cost_usd for r in ledger.records()]
        assert len(costs) == len(items) - len(over) and 0 < len(over) < len(items)
        assert sum(costs) == pytest.approx(judge.spent_usd)
        assert sum(costs) <= budget + concurrency * max(costs)

        # OVER_BUDGET is never cached: with a larger budget, the same cache judges exactly the items left over.
        cache = tmp_path / "cache.sqlite"
        with JudgmentCache(cache) as store:
            store.put_many(judge.fingerprint, [(i.key, v) for i, v in zip(items, verdicts, strict=True)])
        server.reset_stats()
        rest = make_judge_from(dataclasses.replace(config, budget_usd=10.0), cache)(items)
        assert server.stats.requests == len(over)
    assert all(v.ok for v in rest)


# -- whole runs in a subprocess --------------------------------------------------------------------------------------


def _write_run_files(tmp_path: Path, items, server: OpenAIServer, **options) -> tuple[Path, Path]:
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
    config = tmp_path / "judge.yaml"
    config.write_text(
        json.dumps(
            {"type": "openai", "model": "gpt-4", "base_url": server.url, "api_key_env": "SENTINEL_KEY", **options}
        )
    )
    return pairs, config


def _pandalm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lm_eval_pandalm.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "SENTINEL_KEY": SENTINEL_KEY, "PYTHONUNBUFFERED": "1"}


def _cached(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


def test_a_run_killed_half_way_resumes_without_repeating_a_single_answered_request(tmp_path):
    items = synthetic_pair_items(30, seed=24)
    with OpenAIServer(chat=VerdictResponder(FakeJudge(), items), api_key=SENTINEL_KEY) as server:
        pairs, config = _write_run_files(tmp_path, items, server, concurrency=4)
        cache, out = tmp_path / "cache.sqlite", tmp_path / "verdicts.jsonl"
        command = _pandalm("judge", "--input", str(pairs), "--judge", str(config), "--output", str(out))
        command += ["--cache", str(cache)]
        server.hold_after(12)  # answer 12 requests, then stall: the run is caught mid-chunk with calls in flight
        run = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _cached(cache) < 12 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        assert _cached(cache) == 12, "the 12 answered verdicts should be in the cache before the chunk ends"
        run.send_signal(signal.SIGKILL)
        run.wait()
        first = server.reset_stats()
        server.release()
        assert first.answered == 12 and first.faults["held"] >= 1

        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        second = server.stats
    answered_before = [k for k, n in first.answered_by_prompt.items() if n]
    assert len(answered_before) == 12
    assert all(second.attempts_by_prompt[key] == 0 for key in answered_before)
    assert second.answered == len(items) - 12
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(items) and all(line["verdict"]["state"] == "ok" for line in lines)
    with SpendLedger(tmp_path / "spend.sqlite") as ledger:  # beside --cache
        total = ledger.summary()[0]
    assert total["calls"] == len(items)
    assert total["prompt_tokens"] == first.prompt_tokens + second.prompt_tokens


def test_the_api_key_appears_in_no_output_log_cache_or_ledger_file(tmp_path):
    items = synthetic_pair_items(12, seed=25)
    faults = random_faults(0.3, seed=4)
    with OpenAIServer(
        chat=VerdictResponder(FakeJudge(), items), api_key=SENTINEL_KEY, fault_for=faults, timeout_stall_s=1.0
    ) as server:
        pairs, config = _write_run_files(tmp_path, items, server, concurrency=4, timeout_s=0.3, max_retries=1)
        out, cache = tmp_path / "verdicts.jsonl", tmp_path / "cache.sqlite"
        command = _pandalm("judge", "-vv", "--input", str(pairs), "--judge", str(config), "--output", str(out))
        done = subprocess.run([*command, "--cache", str(cache)], env=_env(), capture_output=True, timeout=120)
        spend = subprocess.run(_pandalm("spend", "--cache", str(cache), "--json"), capture_output=True, timeout=60)
        assert server.stats.authorizations == {f"Bearer {SENTINEL_KEY}": server.stats.requests}  # the key was sent
    assert done.returncode == 0 and spend.returncode == 0, done.stderr.decode()[-2000:]
    total = json.loads(spend.stdout.decode().splitlines()[-1])["total"]  # pandalm spend agrees with the server
    assert total["calls"] == len(items) and total["retries"] == server.stats.requests - len(items)
    assert (total["prompt_tokens"], total["completion_tokens"]) == (
        server.stats.prompt_tokens,
        server.stats.completion_tokens,
    )
    assert b"HTTP Request: POST" in done.stderr  # debug logging was on
    (tmp_path / "judge.stdout").write_bytes(done.stdout + spend.stdout)
    (tmp_path / "judge.stderr").write_bytes(done.stderr + spend.stderr)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {"verdicts.jsonl", "cache.sqlite", "spend.sqlite", "judge.stderr"} <= {path.name for path in files}
    for path in files:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), f"the API key leaked into {path.name}"
