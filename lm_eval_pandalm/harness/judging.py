"""Judge candidate responses against baseline responses, in one batch, and summarise each judgment.

This is the core that the lm-eval judge filter (:mod:`.judge_filter`) and the ``pandalm score`` command share. Each
candidate response is paired with a baseline response to the same instruction as a
:class:`~lm_eval_pandalm.types.PairItem` (``response1`` = candidate, ``response2`` = baseline) and the whole list goes
to the judge at once, in both orders when the protocol asks for it
(:class:`~lm_eval_pandalm.wrappers.both_orders.BothOrdersJudge`: one call of the inner judge on ``2 * n`` items).

Each judgment becomes a :class:`JudgmentSummary`, seen from the candidate's side: ``win``, ``tie`` or ``loss``, or
no outcome at all when the judgment failed (a failed judgment is never a tie or a loss). :func:`summary_metrics`
turns a summary into the numbers lm-eval averages.

Judges are expensive to load, so a judge named by a SPEC string is built once per process and shared by every call
that names the same SPEC under the same settings (:func:`judge_for_spec`); it is built only when first needed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..judge import Judge, check_verdicts
from ..types import Label, PairItem, Verdict

__all__ = [
    "DEFAULT_JUDGE",
    "DEFAULT_PROTOCOL",
    "OUTCOMES",
    "PROTOCOLS",
    "JudgmentSummary",
    "check_protocol",
    "clear_judge_cache",
    "judge_against_baseline",
    "judge_for_spec",
    "judging_record",
    "summary_metrics",
    "validate_judge_spec",
]

logger = logging.getLogger(__name__)

DEFAULT_JUDGE = "pandalm:WeOpenML/PandaLM-7B-v1"
"""The judge SPEC used when none is given."""
PROTOCOLS = ("both-orders", "paper", "first-order")
"""How a pair is judged: ``both-orders`` (both orders, probabilities averaged), ``paper`` (both orders, PandaLM's
published rule: a conflict between the orders is a tie) or ``first-order`` (once, candidate shown first)."""
DEFAULT_PROTOCOL = "both-orders"
OUTCOMES = ("win", "tie", "loss")
"""The candidate's outcome against the baseline, when the judgment did not fail."""

_OUTCOME_OF_LABEL = {Label.FIRST: "win", Label.SECOND: "loss", Label.TIE: "tie"}
_WIN_RATE_CREDIT = {"win": 1.0, "tie": 0.5, "loss": 0.0}
# Environment settings that change what make_judge builds (cache location and switch, data mirror): a judge built
# under other settings is not reused.
_SETTINGS_ENV = ("PANDALM_CACHE_PATH", "PANDALM_CACHE_DIR", "XDG_CACHE_HOME", "PANDALM_NO_CACHE", "PANDALM_DATA_DIR")


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it is one of :data:`PROTOCOLS`, else raise ``ValueError`` listing them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown judging protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    return protocol


@dataclass(frozen=True)
class JudgmentSummary:
    """One candidate response judged against its baseline, from the candidate's side.

    Serialised by :meth:`to_json` into the string that the judge filter hands to lm-eval, so it is also what
    ``--log_samples`` shows per document (``filtered_resps``).
    """

    outcome: str | None
    """``win``, ``tie`` or ``loss`` for the candidate; ``None`` when the judgment failed (see :attr:`state`)."""
    state: str
    """The combined verdict's :class:`~lm_eval_pandalm.types.VerdictState` value: ``ok`` or why it failed."""
    p_candidate: float | None
    """Probability that the candidate is better (combined over the orders); ``None`` when failed."""
    p_baseline: float | None
    """Probability that the baseline is better; ``None`` when failed."""
    p_tie: float | None
    """Probability of a tie; ``None`` when failed."""
    consistent: bool | None
    """Both orders named the same winner; ``None`` for ``first-order`` or when an order failed."""
    outcome_candidate_first: str | None
    """The candidate's outcome in the order (candidate, baseline); ``None`` when that order failed."""
    outcome_candidate_second: str | None
    """The candidate's outcome in the order (baseline, candidate); ``None`` for ``first-order`` or when it failed."""
    reason: str | None
    """The judge's explanation (candidate-first order), when it was asked to explain."""
    error: str | None
    """What went wrong, for a failed judgment."""
    judge: str
    """The judge's id (e.g. ``pandalm:WeOpenML/PandaLM-7B-v1``)."""
    protocol: str
    """One of :data:`PROTOCOLS`."""
    response: str
    """The candidate response that was judged."""
    stage: str | None = None
    """Cascade judges: the stage whose verdict decided; ``None`` for other judges."""
    escalated: bool | None = None
    """Cascade judges: the pair reached the cascade's last stage; ``None`` for other judges."""
    decision: str | None = None
    """Cascade judges: why the deciding stage's verdict was kept (or why the pair was not escalated)."""
    api_calls: int | None = None
    """Cascade judges: paid judgments the pair took (both orders, every stage); ``None`` when not known."""
    cost_usd: float | None = None
    """Dollars the judgment cost, when the judge reports or estimates it; ``None`` when not known."""

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"JudgmentSummary.outcome must be one of {OUTCOMES} or None, got {self.outcome!r}")
        if (self.outcome is None) != (self.state != "ok"):
            raise ValueError(
                f"JudgmentSummary: outcome {self.outcome!r} does not fit state {self.state!r} (ok needs an outcome, a "
                "failed state has none)"
            )

    @property
    def failed(self) -> bool:
        """True when the judgment produced no outcome."""
        return self.outcome is None

    def to_json(self) -> str:
        """Compact JSON object; :meth:`from_json` reads it back."""
        # Every field is a scalar: no need for asdict()'s deep copy.
        data = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> JudgmentSummary:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: ``text`` is not a JSON object with exactly the fields of a summary.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"not a judgment summary (invalid JSON: {exc}): {_preview(text)}") from None
        if not isinstance(data, dict) or not set(_REQUIRED_FIELDS) <= set(data) <= set(_SUMMARY_FIELDS):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"not a judgment summary (expected the fields {list(_SUMMARY_FIELDS)}, got {got}): {_preview(text)}"
            )
        return cls(**data)

    @classmethod
    def from_verdicts(
        cls, combined: Verdict, first: Verdict, second: Verdict | None, *, judge: str, protocol: str, response: str
    ) -> JudgmentSummary:
        """Summarise the verdicts on one (candidate, baseline) pair.

        Args:
            combined: The verdict that decides the outcome (the only verdict for ``first-order``).
            first: The verdict in the order (candidate, baseline).
            second: The verdict in the order (baseline, candidate), mapped back so that ``FIRST`` still means the
                candidate; ``None`` for ``first-order``.
            judge: The judge's id.
            protocol: One of :data:`PROTOCOLS`.
            response: The candidate response.
        """
        consistent = None
        if second is not None and first.ok and second.ok:
            consistent = first.winner == second.winner
        return cls(
            outcome=_outcome(combined),
            state=combined.state.value,
            p_candidate=combined.p_first,
            p_baseline=combined.p_second,
            p_tie=combined.p_tie,
            consistent=consistent,
            outcome_candidate_first=_outcome(first),
            outcome_candidate_second=_outcome(second) if second is not None else None,
            reason=combined.reason,
            error=combined.error,
            judge=judge,
            protocol=protocol,
            response=response,
            cost_usd=combined.cost_usd,
        )


_SUMMARY_FIELDS = tuple(f.name for f in fields(JudgmentSummary))
# Fields added after the first release have defaults, so summaries logged by an earlier version still read back.
_REQUIRED_FIELDS = tuple(f.name for f in fields(JudgmentSummary) if f.default is MISSING)


def _outcome(verdict: Verdict) -> str | None:
    return _OUTCOME_OF_LABEL[verdict.winner] if verdict.ok and verdict.winner is not None else None


def _preview(text: object, limit: int = 120) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def summary_metrics(summary: JudgmentSummary) -> dict[str, float]:
    """The per-document numbers lm-eval averages, as floats.

    ``win_rate`` (win 1, tie 0.5, loss 0), ``win``, ``tie`` and ``loss`` are NaN for a failed judgment, so that an
    average that skips NaN (lm-eval's ``nanmean``) is taken over the judged documents only; ``failed`` is 1.0 or
    0.0 and never NaN. ``consistency`` is 1.0 or 0.0 when both orders were judged, NaN otherwise.

    >>> s = JudgmentSummary("tie", "ok", 0.3, 0.3, 0.4, False, "win", "tie", None, None, "j", "both-orders", "Hi")
    >>> summary_metrics(s)
    {'win_rate': 0.5, 'win': 0.0, 'tie': 1.0, 'loss': 0.0, 'failed': 0.0, 'consistency': 0.0}
    """
    nan = math.nan
    if summary.outcome is None:
        rates = {"win_rate": nan, "win": nan, "tie": nan, "loss": nan}
    else:
        rates = {"win_rate": _WIN_RATE_CREDIT[summary.outcome]}
        rates.update({name: float(summary.outcome == name) for name in OUTCOMES})
    rates["failed"] = float(summary.failed)
    rates["consistency"] = nan if summary.consistent is None else float(summary.consistent)
    return rates


# -- judges named by SPEC -------------------------------------------------------------------------------------------

_JUDGES: dict[tuple[str, str | None, str | bool | None, tuple[str | None, ...]], Judge] = {}
_JUDGES_LOCK = threading.Lock()


def validate_judge_spec(spec: str, data_dir: str | Path | None = None) -> None:
    """Check that a judge SPEC can be built and run, without loading weights or judging anything.

    Use it to fail before an expensive generation run rather than after it: see
    :func:`~lm_eval_pandalm.judges.registry.preflight_spec` for what is checked (names, model files, model config,
    recorded-verdict files).

    Raises:
        lm_eval_pandalm.config.ConfigError: The SPEC is not understood, or a YAML judge config has unknown keys or
            values of the wrong type.
        lm_eval_pandalm.errors.PandaLMError: The model or the recordings cannot be found.
        ValueError: Another bad value in the SPEC.
    """
    from ..judges.registry import preflight_spec

    preflight_spec(spec, data_dir=data_dir)


def judge_for_spec(spec: str, data_dir: str | Path | None = None, cache: str | Path | bool | None = None) -> Judge:
    """The judge a SPEC names, built on first use and shared afterwards.

    The judge comes from :func:`~lm_eval_pandalm.judges.registry.make_judge` with the judgment cache ``cache`` (a
    path, ``False`` for none, ``None`` for the default, which is on unless ``PANDALM_NO_CACHE`` says otherwise). It is
    kept for the life of the process and reused by every call with the same SPEC, data directory and cache settings,
    so several lm-eval tasks judged in one run share one model.

    Raises:
        lm_eval_pandalm.config.ConfigError: The SPEC is not understood.
    """
    from ..judges.registry import make_judge

    key = (
        spec,
        None if data_dir is None else str(data_dir),
        cache if isinstance(cache, bool) or cache is None else str(cache),
        tuple(os.environ.get(name) for name in _SETTINGS_ENV),
    )
    with _JUDGES_LOCK:
        judge = _JUDGES.get(key)
        if judge is None:
            logger.info("building judge %s", spec)
            judge = make_judge(spec, data_dir=data_dir, cache=cache)
            _JUDGES[key] = judge
    return judge


def clear_judge_cache() -> None:
    """Forget every judge built by :func:`judge_for_spec` (their memory is freed once nothing else holds them)."""
    with _JUDGES_LOCK:
        for judge in _JUDGES.values():
            close = getattr(judge, "close", None)
            if callable(close):
                close()
        _JUDGES.clear()


# -- judging --------------------------------------------------------------------------------------------------------


def judge_against_baseline(
    judge: Judge | str,
    *,
    instructions: Sequence[str],
    inputs: Sequence[str],
    responses: Sequence[str],
    baselines: Sequence[str],
    protocol: str = DEFAULT_PROTOCOL,
    ids: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    cache: str | Path | bool | None = None,
) -> list[JudgmentSummary]:
    """Judge each candidate response against the baseline response to the same instruction, in one batch.

    Args:
        judge: A :class:`~lm_eval_pandalm.judge.Judge`, or a judge SPEC (built once per process, see
            :func:`judge_for_spec`).
        instructions: The instruction of each pair.
        inputs: The optional input of each pair (``""`` for none).
        responses: The candidate's response to each instruction.
        baselines: The baseline response to each instruction.
        protocol: One of :data:`PROTOCOLS`.
        ids: Optional id of each pair (carried on the :class:`~lm_eval_pandalm.types.PairItem` s).
        data_dir: Data mirror for judges that read data (replay judges); default ``$PANDALM_DATA_DIR``.
        cache: Judgment cache for a judge given as a SPEC: a path, ``False`` for none, ``None`` for the default.

    Returns:
        One :class:`JudgmentSummary` per pair, in order. A judgment that fails is a summary in a failed state, never
        an exception.

    Raises:
        ValueError: The sequences differ in length, a field is not a string, or ``protocol`` is unknown.
        lm_eval_pandalm.config.ConfigError: ``judge`` is a SPEC that is not understood.
    """
    check_protocol(protocol)
    columns: Mapping[str, Sequence[Any]] = {
        "instructions": instructions,
        "inputs": inputs,
        "responses": responses,
        "baselines": baselines,
    }
    if ids is not None:
        columns = {**columns, "ids": ids}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"judge_against_baseline: sequences of different lengths: {lengths}")
    items = []
    for i in range(len(responses)):
        row = {name: values[i] for name, values in columns.items()}
        for name, value in row.items():
            if not isinstance(value, str):
                raise ValueError(
                    f"judge_against_baseline: {name}[{i}] must be a string, got {type(value).__name__}: "
                    f"{_preview(value)}"
                )
        items.append(
            PairItem(
                instruction=row["instructions"],
                input=row["inputs"],
                response1=row["responses"],
                response2=row["baselines"],
                id=row.get("ids", ""),
            )
        )
    if not items:
        return []

    inner = judge_for_spec(judge, data_dir, cache) if isinstance(judge, str) else judge
    logger.info("judging %d responses against their baselines with %s (%s)", len(items), inner.judge_id, protocol)
    if protocol == "first-order":
        verdicts = check_verdicts(inner, items, inner(items))
        summaries = [
            JudgmentSummary.from_verdicts(v, v, None, judge=inner.judge_id, protocol=protocol, response=item.response1)
            for item, v in zip(items, verdicts, strict=True)
        ]
    else:
        from ..wrappers.both_orders import BothOrdersJudge

        rule = "paper" if protocol == "paper" else "average"
        judgments = BothOrdersJudge(inner, rule=rule).judge_with_orders(items)
        summaries = [
            JudgmentSummary.from_verdicts(
                j.combined, j.first, j.second, judge=inner.judge_id, protocol=protocol, response=item.response1
            )
            for item, j in zip(items, judgments, strict=True)
        ]
    from ..wrappers.cascade.report import summary_fields  # imports no heavy dependency

    extras = [summary_fields(inner, item) for item in items]
    if any(extras):  # a cascade: which stage decided each pair, why, and what it cost
        summaries = [replace(s, **extra) for s, extra in zip(summaries, extras, strict=True)]
    counts = Counter(s.outcome or f"failed ({s.state})" for s in summaries)
    logger.info("judged %d responses with %s: %s", len(summaries), inner.judge_id, dict(sorted(counts.items())))
    return summaries


def judging_record(
    spec: str, protocol: str, judge: Judge, summaries: Sequence[JudgmentSummary], baseline: Any = None
) -> dict[str, Any]:
    """What judged a set of documents, for the results JSON: the SPEC, the resolved judge (id, fingerprint and its
    sha256), protocol, baseline, prompt template hash, package version, counts and the one-line failure summary."""
    import hashlib

    from .. import __version__
    from ..failures import failure_summary
    from ..prompt import template_hash

    fingerprint = judge.fingerprint
    failed: dict[str, int] = {}
    for summary in summaries:
        if summary.failed:
            failed[summary.state] = failed.get(summary.state, 0) + 1
    return {
        "judge": spec,
        "judge_id": judge.judge_id,
        "fingerprint": fingerprint,
        "fingerprint_sha256": hashlib.sha256(fingerprint.encode("utf-8")).hexdigest(),
        "protocol": protocol,
        "baseline": baseline,
        "prompt_template_sha256": template_hash(),
        "lm_eval_pandalm_version": __version__,
        "judged": len(summaries),
        "failed_by_state": failed,
        "summary": failure_summary((s.state, s.error) for s in summaries),
    }
