"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1: chat and completions modes, config, ledger."""

from __future__ import annotations

import json
import math

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.config import ConfigError
from lm_eval_pandalm.errors import JudgeLoadError
from lm_eval_pandalm.judges import check_spec, make_judge
from lm_eval_pandalm.judges.openai_api import OpenAIJudge, OpenAIJudgeConfig
from lm_eval_pandalm.ledger import SpendLedger
from lm_eval_pandalm.testing.fakes import FakeJudge, PreferLonger
from lm_eval_pandalm.testing.openai_server import ChatAnswer, OpenAIServer, VerdictResponder
from lm_eval_pandalm.testing.tiny_models import synthetic_pair_items
from lm_eval_pandalm.types import Label, VerdictState
from lm_eval_pandalm.wrappers.both_orders import BothOrdersJudge
from lm_eval_pandalm.wrappers.cache import CachedJudge


def _yaml(path, **options) -> str:
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in {"type": "openai", **options}.items()))
    return str(path)


def _judge(server: OpenAIServer, tmp_path, **options) -> OpenAIJudge:
    defaults = {"model": "gpt-4", "base_url": server.url, "api_key_env": None, "ledger": str(tmp_path / "spend.sqlite")}
    return OpenAIJudge(OpenAIJudgeConfig(**{**defaults, **options}))


# -- chat mode -------------------------------------------------------------------------------------------------------


def test_chat_mode_answers_from_recorded_gpt4_verdicts_through_make_judge_and_the_cache(tmp_path, shared_data_dir):
    from lm_eval_pandalm.data.benchmarks import load_benchmark

    items = list(load_benchmark("llmbar-natural").items[:12])
    recorded = make_judge("replay:GPT-4")
    with OpenAIServer(chat=VerdictResponder(recorded, items)) as server:
        spec = _yaml(tmp_path / "gpt4.yaml", model="gpt-4", base_url=server.url, api_key_env=None, concurrency=4)
        judge = make_judge(spec, cache=tmp_path / "cache.sqlite")
        assert isinstance(judge, CachedJudge)
        both = BothOrdersJudge(judge).judge_with_orders(items)
        expected_first = recorded(items)
        expected_second = recorded([item.swapped() for item in items])
        assert [j.first.winner for j in both] == [v.winner for v in expected_first]
        assert [j.second.winner for j in both] == [v.flipped().winner for v in expected_second]
        first = [j.first for j in both]
        assert all(v.prompt_tokens and v.completion_tokens == 1 and v.latency_s > 0 for v in first)
        assert all(math.isclose(v.cost_usd, (v.prompt_tokens * 30 + 60) / 1e6) for v in first)  # gpt-4 list price
        assert server.stats.answered == 2 * len(items)

        again = make_judge(spec, cache=tmp_path / "cache.sqlite")(items)  # all from the cache: no request
        assert server.stats.answered == 2 * len(items)
        assert [v.source for v in again] == ["cache"] * len(items)

    with SpendLedger(tmp_path / "spend.sqlite") as ledger:  # beside the cache, since the config names no ledger
        total = ledger.summary()[0]
    assert total["calls"] == 2 * len(items)
    assert (total["prompt_tokens"], total["completion_tokens"]) == (
        server.stats.prompt_tokens,
        server.stats.completion_tokens,
    )


def test_chat_probabilities_come_from_the_first_tokens_top_logprobs(tmp_path):
    items = synthetic_pair_items(6, seed=3)
    soft = FakeJudge(PreferLonger(position_bias=0.2, tie_weight=30.0))
    with OpenAIServer(chat=VerdictResponder(soft, items)) as server:
        verdicts = _judge(server, tmp_path, top_logprobs=3)(items)
        hard = _judge(server, tmp_path, logprobs=False)(items)
    for verdict, expected, plain in zip(verdicts, soft(items), hard, strict=True):
        assert verdict.winner == expected.winner and verdict.generated_winner == expected.winner
        for label in Label:
            assert verdict.prob(label) == pytest.approx(expected.prob(label), abs=1e-12)
        assert plain.prob(expected.winner) == 1.0  # no logprobs asked for: a hard verdict


def test_an_answer_that_is_not_exactly_a_label_is_unparsed_and_never_a_tie(tmp_path):
    items = synthetic_pair_items(4, seed=4)
    answers = iter(["Response 1 is better.", "tie", "2.", "**1**"])
    with OpenAIServer(chat=lambda messages: ChatAnswer(next(answers))) as server:
        verdicts = _judge(server, tmp_path, concurrency=1, logprobs=False)(items)
    assert [v.state for v in verdicts] == [
        VerdictState.UNPARSED,
        VerdictState.OK,
        VerdictState.OK,
        VerdictState.UNPARSED,
    ]
    assert [v.winner for v in verdicts] == [None, Label.TIE, Label.SECOND, None]
    assert verdicts[0].raw == "Response 1 is better." and verdicts[0].prompt_tokens  # paid for, so counted


def test_an_error_status_is_an_error_verdict_and_a_context_overflow_is_over_context(tmp_path):
    items = synthetic_pair_items(2, seed=5)

    def scorer(prompts):
        raise ValueError("This model's maximum context length is 2048 tokens, you requested 4000")

    with OpenAIServer(completions=scorer) as server:
        over = _judge(server, tmp_path, mode="completions", model="pandalm")(items)
    assert {v.state for v in over} == {VerdictState.OVER_CONTEXT}
    with OpenAIServer(chat=None) as server:  # 404 on the chat route: not retried, not a verdict
        missing = _judge(server, tmp_path, max_retries=3)(items)
        assert server.stats.requests == len(items)
    assert {v.state for v in missing} == {VerdictState.ERROR} and "HTTP 404" in (missing[0].error or "")


# -- completions mode ------------------------------------------------------------------------------------------------


def test_completions_mode_equals_the_local_judge_on_the_same_weights(tmp_path, tiny_judge_dir):
    from lm_eval_pandalm.judges.pandalm_local import PandaLMJudge, PandaLMJudgeConfig
    from lm_eval_pandalm.testing.openai_server import TinyModelScorer

    items = synthetic_pair_items(8, seed=11)
    items.append(items[0].__class__("Summarize the following text.", "Short.", "Longer answer.", input="Some text."))
    local = PandaLMJudge(PandaLMJudgeConfig(model=str(tiny_judge_dir), show_progress=False))(items)
    with OpenAIServer(completions=TinyModelScorer(tiny_judge_dir)) as server:
        spec = _yaml(
            tmp_path / "vllm.yaml", mode="completions", model="tiny", base_url=server.url, api_key_env=None, ledger=None
        )
        remote = make_judge(spec, cache=False)(items)
        assert server.stats.requests == len(items)  # one request (three prompts) per item
    for mine, theirs in zip(remote, local, strict=True):
        assert mine.ok and mine.winner == theirs.winner
        for label in Label:
            assert mine.prob(label) == pytest.approx(theirs.prob(label), abs=1e-5)
        assert mine.completion_tokens == 3 and mine.prompt_tokens == 3 * theirs.prompt_tokens + 2 + 2 + 4


# -- configuration ---------------------------------------------------------------------------------------------------


def test_config_errors_name_the_option_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="Did you mean 'budget_usd'"):
        check_spec(_yaml(tmp_path / "a.yaml", model="gpt-4", budget=1.0))
    with pytest.raises(ConfigError, match="needs a price"):
        check_spec(_yaml(tmp_path / "b.yaml", model="my-model", budget_usd=1.0))
    with pytest.raises(ConfigError, match="mode must be one of"):
        check_spec(_yaml(tmp_path / "c.yaml", model="gpt-4", mode="edit"))
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(JudgeLoadError, match="MY_KEY holds no API key"):
        make_judge(_yaml(tmp_path / "d.yaml", model="gpt-4", api_key_env="MY_KEY"), cache=False)


def test_the_cli_reports_a_missing_key_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"instruction": "q", "response1": "a", "response2": "b"}) + "\n")
    code = main(["judge", "--input", str(pairs), "--judge", "openai:gpt-4", "--output", str(tmp_path / "o.jsonl")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "OPENAI_API_KEY that should hold the API key is not set" in err


def test_fingerprint_has_what_changes_verdicts_and_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_KEY", "sk-fingerprint-sentinel-123")
    base = {"model": "gpt-4", "api_key_env": "SENTINEL_KEY", "ledger": str(tmp_path / "l.sqlite")}
    judge = OpenAIJudge(OpenAIJudgeConfig(**base))
    assert "sk-fingerprint-sentinel" not in judge.fingerprint + repr(judge) + repr(judge.config)
    faster = OpenAIJudge(OpenAIJudgeConfig(**base, concurrency=64, max_retries=9, budget_usd=5.0))
    assert faster.fingerprint == judge.fingerprint
    other = OpenAIJudge(OpenAIJudgeConfig(**{**base, "model": "gpt-4o"}))
    elsewhere = OpenAIJudge(OpenAIJudgeConfig(**base, base_url="https://example.org/v1?token=abc"))
    assert len({judge.fingerprint, other.fingerprint, elsewhere.fingerprint}) == 3
    assert "abc" not in elsewhere.fingerprint  # queries may hold tokens: not in ids, fingerprints or the ledger
    with pytest.raises(ValueError, match="must not contain credentials"):
        OpenAIJudgeConfig(**base, base_url="https://user:pw@example.org/v1")


def test_estimate_prices_a_dry_run_without_a_call(tmp_path):
    items = synthetic_pair_items(5, seed=6)
    judge = OpenAIJudge(OpenAIJudgeConfig(model="gpt-4", api_key_env=None, ledger=str(tmp_path / "l.sqlite")))
    estimate = judge.estimate(items)
    assert estimate["calls"] == 5 and estimate["completion_tokens"] == 5 * judge.config.max_tokens
    assert estimate["cost_usd"] == pytest.approx(
        (estimate["prompt_tokens"] * 30 + estimate["completion_tokens"] * 60) / 1e6
    )
    assert judge.calls == 0


@pytest.mark.parametrize("name", ["openai-gpt4.yaml", "vllm-pandalm.yaml"])
def test_the_example_api_judge_configs_are_valid(name):
    from pathlib import Path

    check_spec(str(Path(__file__).resolve().parents[1] / "examples" / name))
