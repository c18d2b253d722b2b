"""Judge meta-evaluation as lm-eval tasks: any model lm-eval can score becomes a pairwise judge to check.

The tasks in ``task_configs/pandalm_judge/`` ask a model PandaLM's question
(:func:`~lm_eval_pandalm.prompt.build_prompt`) about every human-labelled pair of a benchmark, as an lm-eval
``multiple_choice`` task whose three choices are what PandaLM writes first: ``"1\\n"``, ``"2\\n"`` and
``"Tie\\n"``. The prompt ends in a newline, so the target delimiter is empty and the scored continuations are exactly
the ones :class:`~lm_eval_pandalm.judges.pandalm_local.PandaLMJudge` scores. ``--model hf``, ``vllm`` or
``local-completions`` can thus meta-evaluate any judge model, and ``--model pandalm-replay`` (:mod:`.replay_model`)
replays recorded verdicts through the same tasks.

Tasks (``pandalm_judge_<set>``, one order; ``pandalm_judge_<set>_both``, both orders), for the sets ``testset``
(PandaLM's 999 pairs), ``autoj`` (Auto-J, 1392 pairs, ties in gold) and ``llmbar_natural``, ``llmbar_neighbor``,
``llmbar_gptinst``, ``llmbar_gptout``, ``llmbar_manual`` (no ties in gold). Groups: ``pandalm_judge`` (one order)
and ``pandalm_judge_both``.

The model's verdict on a pair is read from the three log-likelihoods as the local judge reads it: they are
normalised into probabilities and the most probable label wins, except that exactly equal probabilities for ``1``
and ``2`` give ``Tie`` (:meth:`~lm_eval_pandalm.types.Verdict.from_probs`). Metrics per task:

* ``acc``: share of pairs whose verdict equals the human label (``mean``: closed-form stderr).
* ``f1_macro``: per-class F1 averaged over the classes present in the gold labels of the evaluated pairs, computed by
  :func:`lm_eval_pandalm.metrics.classification_report` as ``pandalm meta`` does. lm-eval computes no stderr for an
  aggregation it does not know (it bootstraps only a fixed list of its own), so this one is reported with ``N/A``.
* ``mcc``: Matthews correlation over the three classes, lm-eval's own ``matthews_corrcoef`` aggregation, so it gets
  a bootstrap stderr. lm-eval draws 100000 bootstrap samples (``simple_evaluate(bootstrap_iters=...)``; the 0.4.13
  command line has no flag for it) and sklearn's MCC costs about 3 ms per draw on 1000 pairs: some 5 CPU-minutes
  per task of that size, spread over lm-eval's process pool.

Both-order tasks ask each pair as given and with the responses swapped (six requests per pair). The swapped order's
probabilities are mapped back and averaged with the first's (the ``average`` rule of
:mod:`lm_eval_pandalm.wrappers.both_orders`, same code), and they add:

* ``positional_agreement``: share of pairs whose two orders give the same verdict (LLMBar's ``equal``).
* ``acc_order_avg``: accuracy over every (pair, order) judgment (LLMBar's ``correct_average``).

``acc_norm`` is not reported: it divides by the continuation's length in characters, which only penalises ``Tie``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from ..data.benchmarks import load_benchmark
from ..metrics import classification_report
from ..prompt import build_prompt
from ..types import Label, PairItem, Verdict
from ..wrappers.both_orders import combine_orders

__all__ = [
    "AGGREGATIONS",
    "LABELS",
    "VERDICT_CONTINUATIONS",
    "BothOrdersJudgeTask",
    "JudgeTask",
    "doc_to_choice",
    "doc_to_item",
    "doc_to_text",
    "f1_macro",
    "load_judge_dataset",
    "process_results",
    "process_results_both_orders",
    "swap_doc",
]

logger = logging.getLogger(__name__)

LABELS: tuple[Label, Label, Label] = (Label.FIRST, Label.SECOND, Label.TIE)
"""The labels in choice order: a doc's ``gold`` is an index into this tuple."""
VERDICT_CONTINUATIONS: tuple[str, str, str] = ("1\n", "2\n", "Tie\n")
"""The choices: what PandaLM writes first for each of :data:`LABELS` (the local judge's ``CONTINUATIONS``)."""
_JUDGE_ID = "lm-eval"
_SPLIT = "test"


# -- dataset --------------------------------------------------------------------------------------------------------


def load_judge_dataset(benchmark: str, data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """The ``custom_dataset`` of the judge tasks: one benchmark as a ``test`` split of pair docs.

    lm-eval calls it with the task's ``metadata`` merged with ``--metadata`` and the model's ``model_args`` (so the
    keyword arguments include ``version`` and whatever the model takes), then the task's ``dataset_kwargs``; the
    keywords it does not know are ignored.

    Args:
        benchmark: A name :func:`~lm_eval_pandalm.data.benchmarks.load_benchmark` knows (``pandalm``, ``autoj``,
            ``llmbar-natural``...), from the task's ``dataset_kwargs``.
        data_dir: Offline data mirror (``--metadata '{"data_dir": ...}'``, or ``data_dir=`` in ``model_args``);
            default ``$PANDALM_DATA_DIR``, else the pinned upstream files.

    Returns:
        ``{"test": Dataset}`` whose rows have ``id``, ``benchmark``, ``instruction``, ``input``, ``response1``,
        ``response2``, ``label`` (the human label: ``1``, ``2`` or ``Tie``) and ``gold`` (its index in
        :data:`LABELS`, the index of the right choice).
    """
    bench = load_benchmark(benchmark, data_dir)
    rows = [
        {
            "id": item.id,
            "benchmark": bench.name,
            "instruction": item.instruction,
            "input": item.input,
            "response1": item.response1,
            "response2": item.response2,
            "label": gold.value,
            "gold": LABELS.index(gold),
        }
        for item, gold in zip(bench.items, bench.gold, strict=True)
    ]
    logger.debug("judge task dataset %s: %d pairs from %s", bench.name, len(rows), bench.source)
    return datasets.DatasetDict({_SPLIT: datasets.Dataset.from_list(rows)})


def doc_to_item(doc: Mapping[str, Any]) -> PairItem:
    """The :class:`~lm_eval_pandalm.types.PairItem` a doc describes (same content key as the benchmark's item)."""
    return PairItem(
        instruction=doc["instruction"],
        input=doc["input"],
        response1=doc["response1"],
        response2=doc["response2"],
        id=doc["id"],
    )


def swap_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The same doc with the two responses exchanged, and its human label flipped to match.

    >>> swap_doc({"response1": "a", "response2": "b", "label": "1", "gold": 0})
    {'response1': 'b', 'response2': 'a', 'label': '2', 'gold': 1}
    """
    swapped = dict(doc)
    swapped["response1"], swapped["response2"] = doc["response2"], doc["response1"]
    label = Label(doc["label"]).flipped()
    swapped["label"] = label.value
    swapped["gold"] = LABELS.index(label)
    return swapped


def doc_to_text(doc: Mapping[str, Any]) -> str:
    """PandaLM's prompt for the doc's pair, byte for byte (it ends in a newline)."""
    return build_prompt(doc_to_item(doc))


def doc_to_choice(doc: Mapping[str, Any]) -> list[str]:
    """The three verdict continuations, :data:`VERDICT_CONTINUATIONS`, in :data:`LABELS` order."""
    return list(VERDICT_CONTINUATIONS)


# -- per-doc results ------------------------------------------------------------------------------------------------


def _loglikelihoods(results: Sequence[Any], expected: int, doc: Mapping[str, Any]) -> list[float]:
    """The log-likelihoods from lm-eval's ``(loglikelihood, is_greedy)`` results of one doc."""
    if len(results) != expected:
        raise ValueError(
            f"doc {doc.get('id')!r}: expected {expected} log-likelihood results (3 choices per order), got "
            f"{len(results)}; the both-order metrics need the task class BothOrdersJudgeTask"
        )
    return [float(result[0]) for result in results]


def _verdict(lls: Sequence[float], doc: Mapping[str, Any]) -> Verdict:
    """Probabilities of ``1``, ``2``, ``Tie`` from their log-likelihoods (softmax), as the local judge makes them."""
    top = max(lls)
    if not math.isfinite(top) or any(math.isnan(ll) for ll in lls):
        raise ValueError(f"doc {doc.get('id')!r}: the model returned unusable log-likelihoods {list(lls)}")
    return Verdict.from_probs(_JUDGE_ID, *(math.exp(ll - top) for ll in lls))


def _scores(verdict: Verdict, gold: Label) -> dict[str, Any]:
    winner = verdict.winner
    assert winner is not None  # from_probs always sets it
    # Choice indices, as lm-eval's own multiple_choice "mcc" and "f1" pass them.
    pair = (LABELS.index(gold), LABELS.index(winner))
    return {"acc": float(winner is gold), "f1_macro": pair, "mcc": pair}


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Per-doc scores of a one-order judge task.

    Args:
        doc: A row of :func:`load_judge_dataset`.
        results: lm-eval's ``(loglikelihood, is_greedy)`` for ``1\\n``, ``2\\n``, ``Tie\\n``.

    Returns:
        ``acc`` (0 or 1), and ``f1_macro`` and ``mcc`` as ``(gold, predicted)`` pairs of indices into
        :data:`LABELS`, for the aggregations.
    """
    verdict = _verdict(_loglikelihoods(results, len(LABELS), doc), doc)
    return _scores(verdict, Label(doc["label"]))


def process_results_both_orders(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Per-doc scores of a both-order judge task (requests built by :class:`BothOrdersJudgeTask`).

    Args:
        doc: A row of :func:`load_judge_dataset`.
        results: Six ``(loglikelihood, is_greedy)``: the three choices for the pair as given, then for the pair
            with the responses swapped.

    Returns:
        What :func:`process_results` returns for the averaged verdict, plus ``positional_agreement`` (1 when both
        orders give the same verdict once the swapped one is mapped back) and ``acc_order_avg`` (the mean
        correctness of the two orders).
    """
    lls = _loglikelihoods(results, 2 * len(LABELS), doc)
    first = _verdict(lls[:3], doc)
    second = _verdict(lls[3:], doc).flipped()  # judged on the swapped pair: back into the doc's frame
    combined = combine_orders(first, second, rule="average", judge_id=_JUDGE_ID)
    gold = Label(doc["label"])
    scores = _scores(combined, gold)
    scores["positional_agreement"] = float(first.winner is second.winner)
    scores["acc_order_avg"] = (float(first.winner is gold) + float(second.winner is gold)) / 2
    return scores


# -- aggregation ----------------------------------------------------------------------------------------------------


def f1_macro(items: Sequence[Sequence[int]]) -> float:
    """Macro F1 over the classes present in the gold labels, from ``(gold, predicted)`` indices into :data:`LABELS`.

    >>> f1_macro([(0, 0), (1, 0), (1, 1)])  # gold 1, 2, 2; predicted 1, 1, 2
    0.6666666666666666
    """
    gold = [LABELS[pair[0]] for pair in items]
    predicted = [LABELS[pair[1]] for pair in items]
    return classification_report(gold, predicted).f1_macro


AGGREGATIONS: dict[str, Callable[[Sequence[Sequence[int]]], float]] = {"pandalm_f1_macro": f1_macro}
"""Aggregations to register with lm-eval by name (the task YAMLs name them by ``!function`` path instead)."""


# -- both orders ----------------------------------------------------------------------------------------------------


class JudgeTask(ConfigurableTask):
    """A one-order judge task: lm-eval's ``ConfigurableTask``, whose dumped config names its metric functions.

    lm-eval would dump ``aggregation: !function ...f1_macro`` as the function's source, which its W&B and Zeno
    loggers cannot read (:func:`~lm_eval_pandalm.harness.registration.dump_config_with_names`). Named in the judge
    tasks' template with ``class: !function lm_eval_pandalm.harness.meta_tasks.JudgeTask``.
    """

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = dict(config or {})
        # lm-eval's task factory passes the YAML as is, including the key that named this class.
        config.pop("class", None)
        super().__init__(config=config, **kwargs)

    def dump_config(self) -> dict[str, Any]:
        """lm-eval's dump of the config, with the metric functions named rather than quoted."""
        from .registration import dump_config_with_names

        return dump_config_with_names(self.config)


class BothOrdersJudgeTask(JudgeTask):
    """A judge task that asks every pair in both orders: three choices for the pair as given, three swapped.

    Named in a task YAML with ``class: !function lm_eval_pandalm.harness.meta_tasks.BothOrdersJudgeTask``; the rest
    of the YAML configures it as any ``multiple_choice`` task, with
    ``process_results: !function lm_eval_pandalm.harness.meta_tasks.process_results_both_orders``.

    The swapped request's context is the original context with the doc's prompt replaced by the swapped pair's
    prompt, so whatever lm-eval put around the prompt (a system instruction, a chat template) stays the same.
    """

    def construct_requests(self, doc: dict[str, Any], ctx: str | list[str], **kwargs: Any) -> list[Instance]:
        """Six ``loglikelihood`` requests: ``idx`` 0-2 for the pair as given, 3-5 for the swapped pair."""
        if not isinstance(ctx, str):
            raise TypeError(f"{self.config.task}: expected one context string per doc, got {type(ctx).__name__}")
        prompt = self.doc_to_text(doc)
        swapped_prompt = self.doc_to_text(swap_doc(doc))
        if ctx.count(prompt) != 1:
            raise ValueError(
                f"{self.config.task}: doc {doc.get('id')!r}: the prompt occurs {ctx.count(prompt)} times in the "
                "context lm-eval built, so the swapped context cannot be made from it; the both-order tasks need the "
                "prompt in the context verbatim, once"
            )
        swapped_ctx = ctx.replace(prompt, swapped_prompt)
        first = super().construct_requests(doc, ctx, **kwargs)
        second = super().construct_requests(doc, swapped_ctx, **kwargs)
        if not isinstance(first, list) or not isinstance(second, list):
            raise TypeError(f"{self.config.task}: BothOrdersJudgeTask needs output_type multiple_choice")
        for offset, instance in enumerate(second):
            instance.idx = len(first) + offset
        return [*first, *second]
