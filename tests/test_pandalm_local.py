"""The local PandaLM judge on a tiny random Llama: tree-packed likelihood scoring, batching, failures, explanations."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lm_eval_pandalm.judge import Judge  # noqa: E402
from lm_eval_pandalm.judges.pandalm_local import (  # noqa: E402
    CONTINUATIONS,
    PandaLMJudge,
    PandaLMJudgeConfig,
    pandalm_judge,
    plan_batches,
)
from lm_eval_pandalm.prompt import build_prompt  # noqa: E402
from lm_eval_pandalm.testing.tiny_models import build_tiny_judge, build_tiny_llama, synthetic_pair_items  # noqa: E402
from lm_eval_pandalm.types import Label, PairItem, VerdictState  # noqa: E402


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_judge(tmp_path_factory.mktemp("tiny") / "judge")


@pytest.fixture(scope="module")
def loaded(judge_dir: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(judge_dir, attn_implementation="sdpa")
    tokenizer = transformers.AutoTokenizer.from_pretrained(judge_dir)
    return model, tokenizer


def make_judge(judge_dir: Path, loaded, **fields) -> PandaLMJudge:
    model, tokenizer = loaded
    config = PandaLMJudgeConfig(model=str(judge_dir), show_progress=False, **fields)
    return PandaLMJudge(config, model=model, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def items() -> list[PairItem]:
    """Items of clearly different prompt lengths, not sorted by length."""
    short = synthetic_pair_items(3, seed=11, min_sentences=1, max_sentences=1)
    long = synthetic_pair_items(3, seed=12, min_sentences=5, max_sentences=7)
    return [long[0], short[0], long[1], short[1], short[2], long[2]]


def prompt_ids(tokenizer, item: PairItem) -> list[int]:
    return tokenizer(build_prompt(item)).input_ids


def naive_logliks(model, ids: list[int], continuations: list[list[int]]) -> list[float]:
    """Three separate full forward passes of prompt + continuation, summing the continuation's token log-probs."""
    result = []
    with torch.no_grad():
        for cont in continuations:
            logits = model(torch.tensor([ids + cont])).logits[0].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            result.append(sum(logprobs[len(ids) - 1 + j, token].item() for j, token in enumerate(cont)))
    return result


def probs(verdict) -> list[float]:
    return [verdict.p_first, verdict.p_second, verdict.p_tie]


# -- tokenization ---------------------------------------------------------------------------------------------------


def test_continuations_are_multi_token_and_follow_the_prompt(judge_dir, loaded, items):
    judge = make_judge(judge_dir, loaded)
    _, tokenizer = loaded
    ids = judge.continuation_ids
    assert [tokenizer.decode(c) for c in ids] == list(CONTINUATIONS)
    assert len(ids[2]) >= 3, "Tie\\n must be several tokens for the test to mean anything"
    assert len(tokenizer("Tie", add_special_tokens=False).input_ids) >= 2
    # What the model sees after a real prompt is exactly prompt ids + continuation ids.
    prompt = build_prompt(items[0])
    for text, cont in zip(CONTINUATIONS, ids, strict=True):
        assert tokenizer(prompt + text).input_ids == tokenizer(prompt).input_ids + cont
    assert judge._prefix_ids == [tokenizer.bos_token_id]


# -- scoring --------------------------------------------------------------------------------------------------------


def test_verdicts_are_probability_distributions(judge_dir, loaded, items):
    judge = make_judge(judge_dir, loaded)
    assert isinstance(judge, Judge)
    verdicts = judge(items)
    assert len(verdicts) == len(items)
    for verdict in verdicts:
        assert verdict.ok and verdict.judge_id == f"pandalm:{judge_dir}"
        assert all(0.0 <= p <= 1.0 for p in probs(verdict))
        assert math.isclose(sum(probs(verdict)), 1.0, abs_tol=1e-6)
        assert verdict.winner is max(zip(probs(verdict), Label, strict=True))[1]
        assert verdict.completion_tokens == 0 and verdict.latency_s >= 0
    assert judge([]) == []


def test_tree_packing_equals_naive_forward_passes(judge_dir, loaded, items):
    model, tokenizer = loaded
    judge = make_judge(judge_dir, loaded)
    all_ids = [prompt_ids(tokenizer, item) for item in items]
    assert len({len(ids) for ids in all_ids}) == len(items), "the batch must mix different lengths"
    with torch.inference_mode():
        packed = judge._continuation_loglik(all_ids).tolist()
    verdicts = judge(items)
    assert judge.forward_calls == 2  # one packed forward above, one batch for the call
    for ids, row, verdict in zip(all_ids, packed, verdicts, strict=True):
        expected = naive_logliks(model, ids, judge.continuation_ids)
        assert row == pytest.approx(expected, abs=1e-4)
        assert probs(verdict) == pytest.approx(torch.tensor(expected).softmax(0).tolist(), abs=1e-4)
        assert verdict.prompt_tokens == len(ids)


def test_full_logits_fallback_and_eager_attention_agree(judge_dir, loaded, items):
    reference = make_judge(judge_dir, loaded)(items)
    fallback = make_judge(judge_dir, loaded)
    fallback._keep_logits = False  # as for a model whose forward has no logits_to_keep
    eager_model = transformers.AutoModelForCausalLM.from_pretrained(judge_dir, attn_implementation="eager")
    eager = make_judge(judge_dir, (eager_model, loaded[1]))
    for other in (fallback(items), eager(items)):
        for a, b in zip(reference, other, strict=True):
            assert probs(a) == pytest.approx(probs(b), abs=1e-5)


def test_batching_does_not_change_verdicts(judge_dir, loaded, items):
    together = make_judge(judge_dir, loaded)
    batched = together(items)
    assert together.forward_calls == 1
    alone = make_judge(judge_dir, loaded)
    singles = [alone([item])[0] for item in items]
    assert alone.forward_calls == len(items)
    small = make_judge(judge_dir, loaded, max_batch_size=4)
    in_two = small(items)
    assert small.forward_calls == 2
    for a, b, c in zip(batched, singles, in_two, strict=True):
        assert probs(a) == pytest.approx(probs(b), abs=1e-5)
        assert probs(a) == pytest.approx(probs(c), abs=1e-5)


def test_verdicts_keep_input_order(judge_dir, loaded, items):
    _, tokenizer = loaded
    judge = make_judge(judge_dir, loaded, max_batch_tokens=900)  # several length-sorted batches
    verdicts = judge(items)
    assert judge.forward_calls > 1
    assert [v.prompt_tokens for v in verdicts] == [len(prompt_ids(tokenizer, item)) for item in items]
    reversed_verdicts = make_judge(judge_dir, loaded)(items[::-1])
    for a, b in zip(verdicts, reversed_verdicts[::-1], strict=True):
        assert probs(a) == pytest.approx(probs(b), abs=1e-5)


def test_plan_batches_respects_budgets():
    lengths = [50, 10, 30, 30, 70, 20, 10]
    batches = plan_batches(lengths, max_tokens=100, max_size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) == 1 or width * len(batch) <= 100)
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert plan_batches([500], max_tokens=100, max_size=3) == [[0]]  # too long alone still gets a batch
    assert plan_batches([], max_tokens=100, max_size=3) == []


# -- context window -------------------------------------------------------------------------------------------------


def test_over_context_and_left_truncation(judge_dir, loaded, items, caplog):
    model, tokenizer = loaded
    lengths = [len(prompt_ids(tokenizer, item)) for item in items]
    limit = sorted(lengths)[len(lengths) // 2] + 2  # roughly half the prompts fit with their verdict
    strict = make_judge(judge_dir, loaded, max_length=limit)
    verdicts = strict(items)
    n_cont = max(len(c) for c in strict.continuation_ids)
    for length, verdict in zip(lengths, verdicts, strict=True):
        if length + n_cont > limit:
            assert verdict.state is VerdictState.OVER_CONTEXT and verdict.winner is None
            assert f"{length + n_cont} tokens" in verdict.error and f"{limit} tokens" in verdict.error
            assert "truncation: left" in verdict.error
        else:
            assert verdict.ok
    assert any(not v.ok for v in verdicts) and any(v.ok for v in verdicts)

    left = make_judge(judge_dir, loaded, max_length=limit, truncation="left")
    with caplog.at_level(logging.WARNING, logger="lm_eval_pandalm.judges.pandalm_local"):
        truncated = left(items)
    assert all(v.ok for v in truncated)
    assert all(v.prompt_tokens <= limit for v in truncated)
    n_truncated = sum(length + n_cont > limit for length in lengths)
    assert f"left-truncated {n_truncated} of {len(items)} prompts" in caplog.text
    # Prompts that fit are scored as always. Over-long ones are cut as lm-eval's hf model cuts them, separately for
    # each continuation: (prompt + continuation)[-(max_length + 1):], the prompt's trailing "\n" counted with the
    # continuation (lm-eval moves trailing whitespace there), so both routes give the same numbers.
    for item, length, verdict in zip(items, lengths, truncated, strict=True):
        full = prompt_ids(tokenizer, item)
        if length + n_cont <= limit:
            expected = naive_logliks(model, full, left.continuation_ids)
        else:
            expected = []
            for cont in left.continuation_ids:
                sequence = (full + cont)[-(limit + 1) :]
                with torch.no_grad():
                    logits = model(torch.tensor([sequence[:-1]])).logits[0].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                scored = len(cont) + 1  # the prompt's final "\n" and the continuation
                targets = sequence[1:][-scored:]
                rows = range(len(sequence) - 1 - scored, len(sequence) - 1)
                expected.append(sum(logprobs[r, tok].item() for r, tok in zip(rows, targets, strict=True)))
        assert probs(verdict) == pytest.approx(torch.tensor(expected).softmax(0).tolist(), abs=1e-4)


# -- failures -------------------------------------------------------------------------------------------------------


def test_an_exception_fails_only_the_culprit_item(judge_dir, loaded, items, monkeypatch, caplog):
    _, tokenizer = loaded
    judge = make_judge(judge_dir, loaded)
    expected = make_judge(judge_dir, loaded)(items)
    culprit = 3
    culprit_ids = prompt_ids(tokenizer, items[culprit])
    original = judge._continuation_loglik
    attempts: list[int] = []

    def flaky(prompts):
        attempts.append(len(prompts))
        if any(list(p) == culprit_ids for p in prompts):
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(prompts)

    monkeypatch.setattr(judge, "_continuation_loglik", flaky)
    with caplog.at_level(logging.WARNING):
        verdicts = judge(items)
    assert attempts[0] == len(items) and 1 in attempts  # split in halves down to the culprit alone
    for i, (verdict, reference) in enumerate(zip(verdicts, expected, strict=True)):
        if i == culprit:
            assert verdict.state is VerdictState.ERROR
            assert verdict.error == "RuntimeError: CUDA out of memory (simulated)"
        else:
            assert verdict.ok and probs(verdict) == pytest.approx(probs(reference), abs=1e-5)
    assert "retrying in halves" in caplog.text


def test_flash_attention_is_refused(judge_dir, loaded):
    model = transformers.AutoModelForCausalLM.from_pretrained(judge_dir)
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        PandaLMJudge(PandaLMJudgeConfig(model=str(judge_dir)), model=model, tokenizer=loaded[1])


def test_config_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="truncation must be one of"):
        PandaLMJudgeConfig(truncation="right")
    with pytest.raises(ValueError, match="'float64'"):
        PandaLMJudgeConfig(dtype="float64")
    with pytest.raises(ValueError, match="flash"):
        PandaLMJudgeConfig(attn_implementation="flash_attention_2")
    with pytest.raises(TypeError, match="max_batch_tokens"):
        pandalm_judge("x", max_batch_token=10)


def test_loading_from_a_folder(judge_dir, items):
    judge = pandalm_judge(str(judge_dir), show_progress=False)
    assert judge.model.config._attn_implementation == "sdpa" and not judge.model.training
    assert judge._dtype == torch.float32 and judge.max_length == 1024
    assert all(v.ok for v in judge(items[:2]))


# -- explanations ---------------------------------------------------------------------------------------------------


def test_explain_mode_generates_and_keeps_the_scored_verdict(judge_dir, loaded, items):
    scored = make_judge(judge_dir, loaded)(items[:3])
    judge = make_judge(
        judge_dir, loaded, explain=True, explain_max_new_tokens=8, explain_num_beams=2, explain_batch_size=2
    )
    verdicts = judge(items[:3])
    assert judge.forward_calls == 1 and judge.generate_calls == 2
    for verdict, reference in zip(verdicts, scored, strict=True):
        assert verdict.ok and probs(verdict) == pytest.approx(probs(reference), abs=1e-6)
        assert isinstance(verdict.raw, str)
        assert 1 <= verdict.completion_tokens <= 8
        assert verdict.latency_s > 0


def test_explanations_are_parsed_and_mismatches_flagged(judge_dir, loaded, items, monkeypatch, caplog):
    judge = make_judge(judge_dir, loaded)
    scored = judge.score(items)
    other = Label.FIRST if scored[0].winner is Label.SECOND else Label.SECOND
    same = scored[2].winner if scored[2].winner is not Label.TIE else Label.FIRST
    texts = {
        0: f"{other.value}\n\n### Reason: x\n\n### Reference: y",
        2: f"{same.value}\n\n### Reason: first is better",
        4: "no verdict here",
    }
    by_length = {len(ids): i for i, ids in enumerate(judge._encode(items)[0])}

    def fake_generate(prompts):
        judge.generate_calls += 1
        return [(texts[by_length[len(p)]], 7) for p in prompts]

    monkeypatch.setattr(judge, "_generate", fake_generate)
    with caplog.at_level(logging.WARNING):
        verdicts = judge.explain(items, indices=[0, 2, 4], verdicts=scored)
    first = verdicts[0]
    assert (first.reason, first.reference, first.generated_winner) == ("x", "y", other)
    assert first.raw == texts[0] and first.completion_tokens == 7 and first.explain_mismatch
    assert verdicts[2].generated_winner is same and verdicts[2].reference is None
    assert verdicts[2].explain_mismatch == (scored[2].winner is not same)
    assert verdicts[4].ok and verdicts[4].generated_winner is None and verdicts[4].raw == "no verdict here"
    for i in (1, 3, 5):  # not asked for: untouched
        assert verdicts[i] == scored[i]
    for verdict, reference in zip(verdicts, scored, strict=True):
        assert verdict.winner is reference.winner and probs(verdict) == probs(reference)
    mismatches = sum(v.explain_mismatch for v in verdicts)
    assert f"{mismatches} of 3 explanations name a different verdict" in caplog.text
    assert "1 of 3 explanations name no verdict" in caplog.text
    with pytest.raises(IndexError):
        judge.explain(items, indices=[len(items)], verdicts=scored)


def test_left_padded_generation_matches_generating_alone(judge_dir, loaded, items):
    fields = {"explain": True, "explain_max_new_tokens": 6, "explain_num_beams": 2}
    together = make_judge(judge_dir, loaded, explain_batch_size=3, **fields)(items[:3])
    alone = [make_judge(judge_dir, loaded, explain_batch_size=1, **fields)([item])[0] for item in items[:3]]
    assert [v.raw for v in together] == [v.raw for v in alone]
    assert [v.completion_tokens for v in together] == [v.completion_tokens for v in alone]


def test_a_failed_explanation_keeps_the_scored_verdict(judge_dir, loaded, items, monkeypatch):
    judge = make_judge(judge_dir, loaded, explain=True, explain_batch_size=4)

    def broken(prompts):
        raise RuntimeError("generation exploded")

    monkeypatch.setattr(judge, "_generate", broken)
    verdicts = judge(items[:3])
    assert all(v.ok and v.raw is None and v.reason is None for v in verdicts)


# -- fingerprint ----------------------------------------------------------------------------------------------------


def test_fingerprint_tracks_weights_and_settings(tmp_path, loaded):
    tokenizer = loaded[1]
    folder = tmp_path / "judge"

    def fingerprint_of(seed: int, **fields) -> str:
        build_tiny_llama(folder, seed=seed)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder)
        config = PandaLMJudgeConfig(model=str(folder), show_progress=False, **fields)
        return PandaLMJudge(config, model=model, tokenizer=tokenizer).fingerprint

    base = fingerprint_of(0)
    payload = json.loads(base)
    assert payload["model"] == str(folder) and "files_sha256" in payload["weights"]
    assert payload["continuations"] == list(CONTINUATIONS) and "explain" not in payload
    assert fingerprint_of(1) != base  # same folder, same names and sizes, other weights
    assert fingerprint_of(0) == base  # rebuilt identically: content hash, not mtime
    assert fingerprint_of(0, explain_num_beams=2) == base  # explain settings only count when explain is on
    explained = fingerprint_of(0, explain=True)
    assert explained != base and json.loads(explained)["explain"]["num_beams"] == 4
    assert fingerprint_of(0, explain=True, explain_num_beams=2) != explained
    assert fingerprint_of(0, truncation="left") != base
    assert fingerprint_of(0, max_length=512) != base


def test_fingerprint_of_an_in_memory_model_hashes_its_tensors(loaded):
    model, tokenizer = loaded
    config = copy.deepcopy(model.config)
    config.name_or_path = ""
    torch.manual_seed(0)
    fresh = transformers.LlamaForCausalLM(config)
    judge = PandaLMJudge(PandaLMJudgeConfig(model="in-memory", show_progress=False), model=fresh, tokenizer=tokenizer)
    weights = json.loads(judge.fingerprint)["weights"]
    assert list(weights) == ["tensors_sha256"]
    with torch.no_grad():
        fresh.lm_head.weight[0, 0] += 1.0
    other = PandaLMJudge(PandaLMJudgeConfig(model="in-memory", show_progress=False), model=fresh, tokenizer=tokenizer)
    assert json.loads(other.fingerprint)["weights"] != weights


def test_hub_models_are_identified_by_commit():
    from lm_eval_pandalm.judges.pandalm_local import _hub_commit

    commit = "0123456789abcdef0123456789abcdef01234567"
    assert _hub_commit("WeOpenML/PandaLM-7B-v1", commit) == commit  # a pinned revision is its own commit
    assert _hub_commit("nobody/not-in-the-cache", None) is None  # then the loaded tensors are hashed
    assert _hub_commit("not a repo id!", None) is None
