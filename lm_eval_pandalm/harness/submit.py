"""Leaderboard submission: per candidate an lm-eval results JSON carrying a judge card, written (and pushed) by
lm-eval's own :class:`~lm_eval.loggers.EvaluationTracker`.

The input is what ``pandalm compare --json`` printed (its last line, saved to a file). Each candidate gets a
results file in lm-eval's layout for a task ``pandalm_compare``: its Bradley-Terry rating (with a stderr read off
the bootstrap interval as ``width / (2 z)``), its rank, its win rate (ties half) and, when the comparison had a
baseline, its length-controlled win rate with stderr. The *judge card* (judge SPEC, id, fingerprint with the weights
revision or hash and the prompt template hash, protocol and schedule, bootstrap settings, the judge's ``pandalm meta``
figures on human benchmarks, the judge config such as a cascade's settings, and spend) goes into the same file
(top-level ``pandalm_judge_card`` and the task config's metadata), so the one file the tracker pushes carries it.

``dry_run`` writes exactly those files with the tracker's own writer and pushes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PandaLMError

__all__ = ["SubmitInputError", "judge_card", "submit"]

TASK = "pandalm_compare"
FILTER = "pandalm"
HIGHER_IS_BETTER = {
    "pandalm_bt_rating": True,
    "pandalm_rank": False,
    "pandalm_win_rate": True,
    "pandalm_lc_win_rate": True,
}


class SubmitInputError(PandaLMError, ValueError):
    """A comparison or meta file that cannot be submitted."""


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        data = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError) as exc:
        raise SubmitInputError(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise SubmitInputError(f"{path}: expected {what} as one JSON object on the last line")
    return data


def _fingerprint_parts(fingerprint: str | None) -> dict[str, Any]:
    """Weights and template identity from a local judge's JSON fingerprint (other judges: none)."""
    try:
        data = json.loads(fingerprint or "")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in ("model", "revision", "weights", "template") if k in data}


def judge_card(summary: Mapping[str, Any], meta: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The judge card of a comparison: how it was judged, and how well the judge agrees with humans."""
    import hashlib

    from .. import __version__
    from ..prompt import template_hash

    spec = summary.get("judge_spec")
    fingerprint = summary.get("judge_fingerprint")
    config = None
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        import yaml

        config = yaml.safe_load(Path(spec).read_text(encoding="utf-8"))
    return {
        "judge_spec": spec,
        "judge_id": summary.get("judge"),
        "fingerprint": fingerprint,
        "fingerprint_sha256": hashlib.sha256(fingerprint.encode("utf-8")).hexdigest() if fingerprint else None,
        **_fingerprint_parts(fingerprint),
        "prompt_template_sha256": template_hash(),
        "judge_config": config,
        "protocol": summary.get("protocol"),
        "schedule": summary.get("schedule"),
        "confidence": summary.get("confidence"),
        "bootstrap_rounds": summary.get("bootstrap_rounds"),
        "seed": summary.get("seed"),
        "games": summary.get("games"),
        "judgments": summary.get("judgments"),
        "failed": summary.get("failed"),
        "spend_usd": summary.get("spend_usd"),
        "meta": [dict(m) for m in meta],
        "candidates": summary.get("candidates"),
        "lm_eval_pandalm_version": __version__,
    }


def _results(summary: Mapping[str, Any], rating: Mapping[str, Any], card: Mapping[str, Any]) -> dict[str, Any]:
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - float(summary["confidence"])) / 2))
    metrics: dict[str, Any] = {
        f"pandalm_bt_rating,{FILTER}": rating["rating"],
        f"pandalm_bt_rating_stderr,{FILTER}": (rating["ci_high"] - rating["ci_low"]) / (2 * z),
        f"pandalm_rank,{FILTER}": rating["rank"],
        f"pandalm_rank_stderr,{FILTER}": "N/A",
        f"pandalm_win_rate,{FILTER}": rating["win_rate"],
        f"pandalm_win_rate_stderr,{FILTER}": "N/A",
    }
    for row in summary.get("length_controlled") or []:
        if row["name"] == rating["name"]:
            metrics[f"pandalm_lc_win_rate,{FILTER}"] = row["lc_win_rate"]
            metrics[f"pandalm_lc_win_rate_stderr,{FILTER}"] = row["lc_stderr"]
    return {
        "results": {TASK: {"alias": TASK, **metrics}},
        "group_subtasks": {TASK: []},
        "configs": {TASK: {"task": TASK, "metadata": {"version": 1.0, "pandalm_judge_card": dict(card)}}},
        "versions": {TASK: 1.0},
        "n-shot": {TASK: 0},
        "higher_is_better": {TASK: dict(HIGHER_IS_BETTER)},
        "n-samples": {TASK: {"original": rating["games"], "effective": rating["games"]}},
        "config": {"model": rating["name"], "model_args": None, "bootstrap_iters": summary.get("bootstrap_rounds")},
        "pandalm_judge_card": dict(card),
    }


def submit(
    compare_json: str | Path,
    output_dir: str | Path,
    *,
    meta_files: Sequence[str | Path] = (),
    dry_run: bool = True,
    hub_org: str | None = None,
    hub_repo: str | None = None,
    public: bool = False,
) -> list[Path]:
    """Write (and unless ``dry_run``, push) one results JSON per candidate; returns the files written.

    Raises:
        SubmitInputError: The comparison or a meta file cannot be read, or a push was asked without ``hub_org``.
    """
    from lm_eval.loggers import EvaluationTracker

    summary = _read_json(Path(compare_json), "pandalm compare --json output")
    for key in ("ratings", "confidence", "judge"):
        if key not in summary:
            raise SubmitInputError(f"{compare_json}: field {key!r}: missing (is this pandalm compare --json output?)")
    meta = [_read_json(Path(p), "pandalm meta --json output") for p in meta_files]
    if not dry_run and not hub_org:
        raise SubmitInputError("pushing needs --hub-org (and HF_TOKEN in the environment); or pass --dry-run")
    card = judge_card(summary, meta)
    out = Path(output_dir)
    written = []
    for rating in summary["ratings"]:
        tracker = EvaluationTracker(
            output_path=str(out),
            hub_results_org=hub_org or "",
            results_repo_name=hub_repo or "",
            push_results_to_hub=not dry_run,
            public_repo=public,
        )
        tracker.general_config_tracker.log_experiment_args(
            model_source="pandalm-compare",
            model_args={"pretrained": rating["name"]},
            system_instruction=None,
            chat_template=None,
            fewshot_as_multiturn=False,
        )
        before = set(out.rglob("results_*.json")) if out.exists() else set()
        tracker.save_results_aggregated(results=_results(summary, rating, card), samples=None)
        written.extend(sorted(set(out.rglob("results_*.json")) - before))
    return written
