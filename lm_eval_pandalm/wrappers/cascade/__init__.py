"""The escalation cascade: a judge made of stages, cheapest first, escalating per item when a stage is unsure.

* :mod:`.config`: the YAML config (``type: cascade``) as dataclasses;
* :mod:`.stages`: a stage's judge and what its judgments cost;
* :mod:`.signals`: confidence, out-of-domain and judge-behaviour signals recorded per item and stage;
* :mod:`.policies`: threshold, budget, router and calibrated policies;
* :mod:`.judge`: :class:`CascadeJudge` itself; :mod:`.records`: its per-pair :class:`Decision` records and counts;
* :mod:`.calibration`: Trust-or-Escalate thresholds and the learned router (scikit-learn, scipy);
* :mod:`.report`: the figures ``pandalm meta``/``judge`` print, the dry-run estimate and the per-document fields of
  lm-eval's logged samples.

Importing this package imports no scikit-learn, scipy or matplotlib.
"""

from __future__ import annotations

from .build import build_cascade
from .config import CascadeConfig, PolicyConfig, StageConfig
from .judge import CascadeJudge, Decision
from .signals import SIGNALS

__all__ = ["SIGNALS", "CascadeConfig", "CascadeJudge", "Decision", "PolicyConfig", "StageConfig", "build_cascade"]
