"""Judge meta-evaluation through lm-eval: the pandalm_judge_* tasks and the pandalm-replay model (issue 3, part 4).

Acceptance 3: the test set task run through lm-eval with PandaLM-7B's recorded verdicts gives the figures of
``pandalm meta --protocol pandalm-legacy``; the both-order LLMBar tasks reproduce LLMBar's own statistics; and lm-eval's
``hf`` model scores the tasks with the same verdict probabilities as the package's local judge.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict

# lm-eval's built-ins first, then anything that registers names with it (see harness/registration.py).
import lm_eval.api.metrics
import lm_eval.models  # noqa: F401
import pytest
from lm_eval import simple_evaluate
from lm_eval.api import registry
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from lm_eval_pandalm.data.benchmarks import load_benchmark
from lm_eval_pandalm.harness.meta_tasks import (
    LABELS,
    VERDICT_CONTINUATIONS,
    doc_to_text,
    f1_macro,
    process_results,
    process_results_both_orders,
    swap_doc,
)
from lm_eval_pandalm.harness.replay_model import OTHER_LOGLIKELIHOOD, PandaLMReplayLM, ReplayRequestError
from lm_eval_pandalm.judges.replay import MissingVerdictError, replay_judge
from lm_eval_pandalm.meta import evaluate_judge
from lm_eval_pandalm.metrics import classification_report
from lm_eval_pandalm.prompt import build_prompt
from lm_eval_pandalm.task_configs import tasks_dir
from lm_eval_pandalm.types import Label, Verdict, VerdictState
from lm_eval_pandalm.verdict_io import write_verdicts

TASKS_DIR = tasks_dir() / "pandalm_judge"
SETS = {
    "testset": ("pandalm", 999),
    "autoj": ("autoj", 1392),
    "llmbar_natural": ("llmbar-natural", 100),
    "llmbar_neighbor": ("llmbar-neighbor", 134),
    "llmbar_gptinst": ("llmbar-gptinst", 92),
    "llmbar_gptout": ("llmbar-gptout", 47),
    "llmbar_manual": ("llmbar-manual", 46),
}
LLMBAR_DIRS = {
    "llmbar_natural": "Natural",
    "llmbar_neighbor": "Adversarial/Neighbor",
    "llmbar_gptinst": "Adversarial/GPTInst",
    "llmbar_gptout": "Adversarial/GPTOut",
    "llmbar_manual": "Adversarial/Manual",
}


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    # Only our folder: indexing lm-eval's 14000 built-in tasks takes seconds and is not what is tested here.
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def run(model, tasks, task_manager, **kwargs):
    kwargs.setdefault("bootstrap_iters", 0)
    kwargs.setdefault("log_samples", False)
    return simple_evaluate(model=model, tasks=tasks, task_manager=task_manager, **kwargs)


def request(item, continuation: str, doc=None) -> Instance:
    doc = {"id": item.id} if doc is None else doc
    return Instance("loglikelihood", doc, (build_prompt(item), continuation), idx=0)


# -- task files --------------------------------------------------------------------------------------------------------


def test_groups_list_the_tasks_of_every_set(shared_data_dir, task_manager):
    loaded = task_manager.load(["pandalm_judge", "pandalm_judge_both"])
    one = {f"pandalm_judge_{name}" for name in SETS}
    assert set(loaded["group_map"]["pandalm_judge"]) == one
    assert set(loaded["group_map"]["pandalm_judge_both"]) == {f"{name}_both" for name in one}
    for name, (benchmark, size) in SETS.items():
        for task_name in (f"pandalm_judge_{name}", f"pandalm_judge_{name}_both"):
            task = loaded["tasks"][task_name]
            assert len(task.eval_docs) == size, task_name
            assert task.config.metadata["version"] == 1.0
        bench = load_benchmark(benchmark)
        doc = task.eval_docs[size - 1]
        assert doc["id"] == bench.items[-1].id
        assert LABELS[doc["gold"]] is bench.gold[-1] and doc["label"] == bench.gold[-1].value
        assert task.doc_to_text(doc) == build_prompt(bench.items[-1])


def test_requests_are_the_prompt_followed_by_each_verdict(shared_data_dir, task_manager):
    loaded = task_manager.load(["pandalm_judge_llmbar_gptout", "pandalm_judge_llmbar_gptout_both"])
    item = load_benchmark("llmbar-gptout").items[0]
    one = loaded["tasks"]["pandalm_judge_llmbar_gptout"]
    both = loaded["tasks"]["pandalm_judge_llmbar_gptout_both"]
    one.build_all_requests(limit=1)
    both.build_all_requests(limit=1)
    prompt, swapped = build_prompt(item), build_prompt(item.swapped())
    assert [inst.args for inst in one.instances] == [(prompt, c) for c in VERDICT_CONTINUATIONS]
    assert sorted((inst.idx, inst.args) for inst in both.instances) == [
        (i, (p, c)) for i, (p, c) in enumerate((p, c) for p in (prompt, swapped) for c in VERDICT_CONTINUATIONS)
    ]
    assert VERDICT_CONTINUATIONS == ("1\n", "2\n", "Tie\n") and prompt.endswith("### Evaluation:\n")


def test_continuations_are_the_local_judges():
    pandalm_local = pytest.importorskip("lm_eval_pandalm.judges.pandalm_local")
    assert pandalm_local.CONTINUATIONS == VERDICT_CONTINUATIONS


# -- per-doc results and aggregation -----------------------------------------------------------------------------------


DOC = {
    "id": "d",
    "instruction": "Say hi.",
    "input": "",
    "response1": "Hi!",
    "response2": "Hello.",
    "label": "2",
    "gold": 1,
}


def results(*lls):
    return [(ll, False) for ll in lls]


def test_one_order_verdict_is_the_local_judges_rule():
    assert process_results(DOC, results(-3.0, -1.0, -2.0)) == {"acc": 1.0, "f1_macro": (1, 1), "mcc": (1, 1)}
    # Equally likely 1 and 2 cannot be told apart: Tie, as Verdict.from_probs decides (argmax would say 1).
    assert process_results(DOC, results(-1.0, -1.0, -5.0))["mcc"] == (1, 2)
    with pytest.raises(ValueError, match="expected 3"):
        process_results(DOC, results(-1.0, -2.0))
    with pytest.raises(ValueError, match="unusable"):
        process_results(DOC, results(float("nan"), -2.0, -3.0))


def test_both_orders_average_the_mapped_back_probabilities():
    # As given: 2 wins. Swapped: "1" (the original response 2) wins again: the orders agree.
    agree = process_results_both_orders(DOC, results(-3.0, -1.0, -4.0, -1.0, -3.0, -4.0))
    assert agree == {
        "acc": 1.0,
        "f1_macro": (1, 1),
        "mcc": (1, 1),
        "positional_agreement": 1.0,
        "acc_order_avg": 1.0,
    }
    # Position bias: "1" wins in both orders, i.e. each response once. Averaged, 1 and 2 are equal: Tie.
    biased = process_results_both_orders(DOC, results(-1.0, -3.0, -4.0, -1.0, -3.0, -4.0))
    assert biased["f1_macro"] == (1, 2)
    assert biased["positional_agreement"] == 0.0 and biased["acc_order_avg"] == 0.5
    with pytest.raises(ValueError, match="BothOrdersJudgeTask"):
        process_results_both_orders(DOC, results(-1.0, -2.0, -3.0))


def test_swapped_doc_is_the_swapped_pair():
    swapped = swap_doc(DOC)
    assert (swapped["response1"], swapped["response2"], swapped["label"], swapped["gold"]) == ("Hello.", "Hi!", "1", 0)
    assert doc_to_text(swapped) != doc_to_text(DOC) and swap_doc(swapped) == DOC


def test_f1_macro_is_the_meta_reports():
    pairs = [(0, 0), (0, 1), (1, 1), (2, 0), (1, 2), (2, 2)]
    report = classification_report([LABELS[g] for g, _ in pairs], [LABELS[p] for _, p in pairs])
    assert f1_macro(pairs) == report.f1_macro
    # LLMBar sets have no Tie in gold: a Tie prediction is wrong, but Tie is not a class of the macro average.
    assert f1_macro([(0, 0), (1, 2)]) == pytest.approx((1.0 + 0.0) / 2)


# -- acceptance 3: recorded verdicts through lm-eval -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("judge", "unparsed", "figures"),
    [("pandalm-7b", "error", (0.6677, 0.5743)), ("gpt-3.5-turbo", "tie", (0.7107, 0.5755))],
)
def test_testset_task_reproduces_pandalm_meta(shared_data_dir, task_manager, judge, unparsed, figures):
    from sklearn.metrics import matthews_corrcoef

    out = run(PandaLMReplayLM(judge=judge, unparsed=unparsed), ["pandalm_judge_testset"], task_manager)
    got = out["results"]["pandalm_judge_testset"]

    bench = load_benchmark("pandalm")
    meta = evaluate_judge(replay_judge(judge), bench.items, bench.gold, "pandalm-legacy").report
    assert got["acc,none"] == pytest.approx(meta.accuracy, abs=1e-12)
    assert got["f1_macro,none"] == pytest.approx(meta.f1_macro, abs=1e-12)
    assert (round(got["acc,none"], 4), round(got["f1_macro,none"], 4)) == figures
    predicted = [
        "Tie" if not v.ok else v.winner.value for v in replay_judge(judge)(bench.items)
    ]  # pandalm-legacy: unparsed is Tie
    assert got["mcc,none"] == pytest.approx(matthews_corrcoef([g.value for g in bench.gold], predicted), abs=1e-12)
    assert out["n-samples"]["pandalm_judge_testset"]["effective"] == 999


def _percent(text: str) -> float:
    return float(re.search(r"([\d.]+)%\s*$", text).group(1)) / 100


def test_llmbar_both_order_tasks_reproduce_llmbars_statistics(shared_data_dir, task_manager):
    tasks = [f"pandalm_judge_{name}{suffix}" for name in LLMBAR_DIRS for suffix in ("", "_both")]
    out = run(PandaLMReplayLM(judge="GPT-4"), tasks, task_manager)["results"]
    for name, folder in LLMBAR_DIRS.items():
        stats_file = shared_data_dir / "princeton-nlp/LLMBar/Dataset/LLMBar" / folder
        stats = json.loads((stats_file / "evaluators/GPT-4/Vanilla_NoRules/statistics.json").read_text())
        both = out[f"pandalm_judge_{name}_both"]
        assert both["acc_order_avg,none"] == pytest.approx(_percent(stats["correct_average"]), abs=5e-4), name
        assert both["positional_agreement,none"] == pytest.approx(_percent(stats["equal"]), abs=5e-4), name
        assert out[f"pandalm_judge_{name}"]["acc,none"] == pytest.approx(_percent(stats["correct_False"]), abs=5e-4)
        bench = load_benchmark(SETS[name][0])
        meta = evaluate_judge(replay_judge("GPT-4"), bench.items, bench.gold, "both-orders")
        assert both["acc,none"] == pytest.approx(meta.report.accuracy, abs=1e-12)
        assert both["f1_macro,none"] == pytest.approx(meta.report.f1_macro, abs=1e-12)


def test_registered_model_with_bootstrap_stderr(shared_data_dir, task_manager, monkeypatch):
    # Safe order: lm-eval's models and metrics are imported at the top of this module, before this registration.
    if "pandalm-replay" not in registry.model_registry:
        registry.register_model("pandalm-replay")(PandaLMReplayLM)
    monkeypatch.setenv("DISABLE_MULTIPROC", "1")  # bootstrap in-process: a pool costs more than 200 draws
    out = run(
        "pandalm-replay",
        ["pandalm_judge_llmbar_manual"],
        task_manager,
        model_args="judge=GPT-4,strategy=Vanilla_NoRules",
        bootstrap_iters=200,
    )
    got = out["results"]["pandalm_judge_llmbar_manual"]
    bench = load_benchmark("llmbar-manual")
    meta = evaluate_judge(replay_judge("GPT-4"), bench.items, bench.gold, "first-order").report
    assert got["acc,none"] == pytest.approx(meta.accuracy)
    assert got["acc_stderr,none"] == pytest.approx(math.sqrt(meta.accuracy * (1 - meta.accuracy) / (46 - 1)))
    assert isinstance(got["mcc_stderr,none"], float) and got["mcc_stderr,none"] > 0  # lm-eval's bootstrap
    assert got["f1_macro_stderr,none"] == "N/A"  # lm-eval bootstraps only its own aggregations
    assert out["config"]["judge"] == "replay:GPT-4"


# -- the replay model's errors -----------------------------------------------------------------------------------------


def test_replay_model_answers_with_the_recorded_label(shared_data_dir):
    lm = PandaLMReplayLM(judge="human", benchmarks="llmbar-natural")
    bench = load_benchmark("llmbar-natural")
    item, gold = bench.items[0], bench.gold[0]
    out = lm.loglikelihood([request(item, c) for c in VERDICT_CONTINUATIONS])
    assert out == [(0.0, True) if label is gold else (OTHER_LOGLIKELIHOOD, False) for label in LABELS]
    # The swapped pair is recognised too, and humans' label flips with it.
    swapped = lm.loglikelihood([request(item.swapped(), c) for c in VERDICT_CONTINUATIONS])
    assert [ll for ll, _ in swapped] == [ll for ll, _ in reversed(out[:2])] + [out[2][0]]


def test_unparsed_recordings_are_an_error_unless_counted_as_tie(shared_data_dir):
    items = load_benchmark("pandalm").items
    requests = [request(item, "1\n") for item in items]
    with pytest.raises(ReplayRequestError, match=r"25 of 999 .*unparsed.*unparsed=tie"):
        PandaLMReplayLM(judge="gpt-3.5-turbo").loglikelihood(requests)
    assert len(PandaLMReplayLM(judge="gpt-3.5-turbo", unparsed="tie").loglikelihood(requests)) == 999


def test_prompts_shared_by_pairs_with_different_recordings_need_the_doc_id(shared_data_dir):
    judge = replay_judge("gpt-3.5-turbo")
    items = load_benchmark("pandalm").items
    by_prompt = defaultdict(list)
    for item, verdict in zip(items, judge(items), strict=True):
        by_prompt[build_prompt(item)].append((item, verdict.winner, verdict.state))
    shared = next(group for group in by_prompt.values() if len({(w, s) for _, w, s in group}) > 1)
    lm = PandaLMReplayLM(judge="gpt-3.5-turbo", unparsed="tie")
    with pytest.raises(ReplayRequestError, match="several pairs"):
        lm.loglikelihood([request(shared[0][0], "1\n", doc={})])
    answers = [lm.loglikelihood([request(item, c) for c in VERDICT_CONTINUATIONS]) for item, _, _ in shared]
    assert len({tuple(a) for a in answers}) > 1


def test_unknown_contexts_missing_orders_and_bad_requests_are_clear_errors(shared_data_dir):
    lm = PandaLMReplayLM(judge="pandalm-7b")
    item = load_benchmark("pandalm").items[0]
    with pytest.raises(ReplayRequestError, match=r"1 of 1 request contexts are not the PandaLM prompt.*--num_fewshot"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("Question: 2+2?\nAnswer:", "1\n"), idx=0)] * 2)
    with pytest.raises(ReplayRequestError, match="verdict continuations"):
        lm.loglikelihood([request(item, " 4")])
    with pytest.raises(MissingVerdictError, match="recorded only with the responses in the other order"):
        lm.loglikelihood([request(item.swapped(), "1\n")])
    with pytest.raises(NotImplementedError, match="cannot generate"):
        lm.generate_until([Instance("generate_until", {}, ("hi", {}), idx=0)])
    with pytest.raises(NotImplementedError):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("hi",), idx=0)])
    assert lm.loglikelihood([]) == []


def test_verdict_files_are_replayed_and_failed_verdicts_are_errors(shared_data_dir, tmp_path):
    items = load_benchmark("llmbar-gptout").items[:2]
    path = tmp_path / "verdicts.jsonl"
    write_verdicts(
        path,
        items,
        [Verdict.hard("pandalm:x", Label.SECOND), Verdict.failed("pandalm:x", VerdictState.OVER_CONTEXT, "too long")],
    )
    lm = PandaLMReplayLM(judge=str(path))
    assert lm.loglikelihood([request(items[0], c) for c in VERDICT_CONTINUATIONS])[1] == (0.0, True)
    with pytest.raises(ReplayRequestError, match=r"1 over_context.*re-judge them"):
        lm.loglikelihood([request(items[1], "1\n")])


def test_model_args(shared_data_dir):
    lm = PandaLMReplayLM.create_from_arg_string("judge=GPT-4,unparsed=tie", {"batch_size": 8, "device": None})
    assert lm.judge.judge_id == "replay:GPT-4" and lm.unparsed == "tie"
    with pytest.raises(ValueError, match="judge=<name>"):
        PandaLMReplayLM.create_from_arg_string("unparsed=tie")
    with pytest.raises(ValueError, match="unknown model_args pretrained; valid: judge, strategy, unparsed"):
        PandaLMReplayLM.create_from_arg_string("judge=GPT-4,pretrained=x")
    # lm-eval's command line hands model_args over as a dict, and --device as well.
    lm = PandaLMReplayLM.create_from_arg_obj({"judge": "human", "device": "cpu"}, {"device": "cuda", "batch_size": 1})
    assert lm.judge.judge_id == "replay:human"
    with pytest.raises(ValueError, match="unparsed must be one of error, tie"):
        PandaLMReplayLM(judge="GPT-4", unparsed="ignore")
    with pytest.raises(ValueError, match="Did you mean 'GPT-4'"):
        PandaLMReplayLM(judge="GPT4")
    with pytest.raises(ValueError, match="unknown benchmark"):
        PandaLMReplayLM(judge="human", benchmarks="llmbar-natrual")


# -- acceptance 3: a real model through lm-eval's hf backend -----------------------------------------------------------


def test_hf_model_gives_the_local_judges_probabilities(shared_data_dir, task_manager, tiny_judge_dir):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from lm_eval_pandalm.judges.pandalm_local import PandaLMJudge, PandaLMJudgeConfig, continuation_token_ids
    from lm_eval_pandalm.wrappers.both_orders import BothOrdersJudge

    out = run(
        "hf",
        ["pandalm_judge_testset", "pandalm_judge_testset_both"],
        task_manager,
        model_args=f"pretrained={tiny_judge_dir},device=cpu",
        limit=3,
        log_samples=True,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_judge_dir, attn_implementation="sdpa")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_judge_dir)
    judge = PandaLMJudge(PandaLMJudgeConfig(model=str(tiny_judge_dir), show_progress=False), model, tokenizer)
    items = load_benchmark("pandalm").items[:3]

    def softmax(lls):
        top = max(lls)
        weights = [math.exp(ll - top) for ll in lls]
        return [w / sum(weights) for w in weights]

    one = out["samples"]["pandalm_judge_testset"]
    for sample, item, verdict in zip(one, items, judge.score(items), strict=True):
        lls = [resp[0] for resp in sample["filtered_resps"]]
        assert softmax(lls) == pytest.approx([verdict.p_first, verdict.p_second, verdict.p_tie], abs=1e-5)
        # The raw numbers differ by one constant: lm-eval moves the prompt's trailing "\n" into the continuation
        # (it strips whitespace off every context), so it also scores log P("\n" | prompt without it). Both
        # prepend BOS (lm-eval: the tokenizer's default; the judge: always).
        ids = tokenizer(build_prompt(item)).input_ids
        assert ids[0] == tokenizer.bos_token_id
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
            newline = logprobs[len(ids) - 2, ids[-1]].item()
            own = []
            for cont in continuation_token_ids(tokenizer):
                full = torch.tensor([ids + cont])
                lp = torch.log_softmax(model(full).logits[0].float(), dim=-1)
                own.append(sum(lp[len(ids) - 1 + j, t].item() for j, t in enumerate(cont)))
        assert lls == pytest.approx([ll + newline for ll in own], abs=1e-3)
        assert sample["arguments"][0] == (build_prompt(item), "1\n")

    both = out["samples"]["pandalm_judge_testset_both"]
    for sample, judgment in zip(both, BothOrdersJudge(judge).judge_with_orders(items), strict=True):
        lls = [resp[0] for resp in sample["filtered_resps"]]
        assert softmax(lls[:3]) == pytest.approx(
            [judgment.first.p_first, judgment.first.p_second, judgment.first.p_tie], abs=1e-5
        )
        second = softmax(lls[3:])
        assert [second[1], second[0], second[2]] == pytest.approx(
            [judgment.second.p_first, judgment.second.p_second, judgment.second.p_tie], abs=1e-5
        )
        assert LABELS[sample["f1_macro"][1]] is judgment.combined.winner
        assert sample["positional_agreement"] == float(judgment.consistent)


def test_left_truncation_scores_long_prompts_as_lm_evals_hf_model(shared_data_dir, task_manager, tiny_judge_dir):
    """Issue 6, item 8: `pandalm meta --truncation left` equals the lm-eval task on prompts over the context."""
    from lm_eval_pandalm.judges import make_judge

    limit = 12
    items = load_benchmark("llmbar-natural").items[:limit]
    strict = make_judge(f"pandalm:{tiny_judge_dir}", cache=False)(items)
    over = [i for i, verdict in enumerate(strict) if verdict.state.value == "over_context"]
    assert over, "the test needs prompts longer than the tiny judge's 1024 tokens"
    left = make_judge(f"pandalm:{tiny_judge_dir}", cache=False, overrides={"truncation": "left"})(items)
    out = run(
        "hf",
        ["pandalm_judge_llmbar_natural"],
        task_manager,
        model_args=f"pretrained={tiny_judge_dir},device=cpu",
        limit=limit,
        log_samples=True,
    )
    samples = out["samples"]["pandalm_judge_llmbar_natural"]

    def softmax(lls):
        top = max(lls)
        weights = [math.exp(ll - top) for ll in lls]
        return [w / sum(weights) for w in weights]

    for i, (sample, verdict) in enumerate(zip(samples, left, strict=True)):
        probs = softmax([resp[0] for resp in sample["filtered_resps"]])
        assert probs == pytest.approx([verdict.p_first, verdict.p_second, verdict.p_tie], abs=1e-4), i
