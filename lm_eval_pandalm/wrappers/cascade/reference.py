"""Distance of items to a reference set, for the out-of-domain signals ``tfidf_distance`` and ``hidden_distance``.

A local judge is strong on data like its training data and unreliable elsewhere. Its training data is rarely at
hand; a benchmark in its style is (``reference: pandalm`` — PandaLM's own test set, the same kind of instructions as
its training set). The distance of an item is ``1 −`` its highest cosine similarity to any reference item:

* ``tfidf_distance``: over TF-IDF vectors of the instruction and input (scikit-learn), fitted on the reference set;
* ``hidden_distance``: over the local judge's final hidden state at the end of its prompt (judges with an ``embed``
  method, e.g. :meth:`~lm_eval_pandalm.judges.pandalm_local.PandaLMJudge.embed`), on at most
  :data:`HIDDEN_REFERENCE_LIMIT` reference pairs.

scikit-learn and numpy are imported only when a reference signal is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...types import PairItem

__all__ = ["HIDDEN_REFERENCE_LIMIT", "HiddenReference", "TfidfReference", "load_reference_items", "require"]

logger = logging.getLogger(__name__)

HIDDEN_REFERENCE_LIMIT = 256
"""Reference pairs embedded for ``hidden_distance`` (the first ones of the reference set)."""


def require(module: str) -> Any:
    """Import ``module`` (scikit-learn, scipy, matplotlib), or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = {"sklearn": "scikit-learn"}.get(top, top)
        raise ImportError(
            f"the cascade's calibration, reference signals and plots need {package}: "
            "pip install 'lm_eval_pandalm[cascade]'"
        ) from None


def load_reference_items(reference: str, data_dir: str | Path | None) -> list[PairItem]:
    """The items of the reference benchmark (a built-in name or ``file:PATH``)."""
    from ...data.benchmarks import load_benchmark

    return list(load_benchmark(reference, data_dir=data_dir).items)


def _task_text(instruction: str, input: str) -> str:
    return f"{instruction}\n{input}" if input else instruction


class TfidfReference:
    """TF-IDF distance to a reference set of instructions, fitted when first used."""

    def __init__(self, items: Sequence[PairItem]) -> None:
        self._texts = list(dict.fromkeys(_task_text(item.instruction, item.input) for item in items))
        self._vectorizer: Any = None
        self._matrix: Any = None

    def _fit(self) -> None:
        if not self._texts:
            raise ValueError("the reference set of tfidf_distance is empty")
        text = require("sklearn.feature_extraction.text")
        self._vectorizer = text.TfidfVectorizer(sublinear_tf=True, stop_words="english")
        self._matrix = self._vectorizer.fit_transform(self._texts)
        logger.debug("tfidf reference: %d texts, %d terms", len(self._texts), self._matrix.shape[1])

    def distances(self, tasks: Sequence[tuple[str, str]]) -> list[float]:
        """``1 −`` the highest cosine similarity of each ``(instruction, input)`` to the reference set."""
        if not tasks:
            return []
        if self._vectorizer is None:
            self._fit()
        vectors = self._vectorizer.transform([_task_text(*task) for task in tasks])
        best = (vectors @ self._matrix.T).max(axis=1).toarray().ravel()
        return [float(max(0.0, 1.0 - b)) for b in best]


class HiddenReference:
    """Hidden-state distance to a reference set of pairs, through a judge's ``embed`` method."""

    def __init__(self, judge: Any, items: Sequence[PairItem]) -> None:
        if not callable(getattr(judge, "embed", None)):
            raise ValueError(
                f"signal hidden_distance needs a stage whose judge can embed items (a local pandalm judge); "
                f"{getattr(judge, 'judge_id', judge)!r} cannot"
            )
        self.judge = judge
        self._items = list(items)[:HIDDEN_REFERENCE_LIMIT]
        self._matrix: Any = None

    def distances(self, items: Sequence[PairItem]) -> list[float]:
        """``1 −`` the highest cosine similarity of each item's embedding to the reference embeddings."""
        if not items:
            return []
        np = require("numpy")
        if self._matrix is None:
            self._matrix = np.asarray(self.judge.embed(self._items), dtype=float)
        vectors = np.asarray(self.judge.embed(list(items)), dtype=float)
        best = (vectors @ self._matrix.T).max(axis=1)
        return [float(max(0.0, 1.0 - b)) for b in best]
