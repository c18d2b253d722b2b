"""A sequence-classification judge: a 3-way head (``1``, ``2``, ``Tie``) over PandaLM's prompt.

Trained by ``pandalm train`` with ``judge_type: classifier`` (:mod:`lm_eval_pandalm.training`); named as
``classifier:<folder>`` or a YAML with ``type: classifier``. The verdict probabilities are the softmax of the
logits divided by a temperature: the one fitted on held-out data at training time (``classifier_calibration.json``
in the folder) unless the config sets one. A prompt longer than the context is ``OVER_CONTEXT`` (or keeps its
latest tokens with ``truncation: left``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..prompt import build_prompt, template_hash
from ..types import PairItem, Verdict, VerdictState

__all__ = ["CALIBRATION_FILE", "ClassifierJudge", "ClassifierJudgeConfig", "scaled_softmax"]

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "classifier_calibration.json"
"""Written beside the weights by training: ``{"temperature": T, ...}``."""


@dataclass
class ClassifierJudgeConfig:
    """Settings of :class:`ClassifierJudge`."""

    model: str = field(
        metadata={"help": "Folder (or Hub id) of a model saved by pandalm train, judge_type classifier."}
    )
    temperature: float | None = field(
        default=None,
        metadata={"help": f"Softmax temperature; None reads {CALIBRATION_FILE} from the folder (1.0 if absent)."},
    )
    device: str | None = field(default=None, metadata={"help": "Device; None picks 'cuda' when available."})
    max_length: int | None = field(
        default=None, metadata={"help": "Context in tokens; None reads the model's max_position_embeddings."}
    )
    truncation: str = field(
        default="none", metadata={"help": "'none': over-long prompts are over_context; 'left': keep the latest tokens."}
    )
    max_batch_size: int = field(default=32, metadata={"help": "Prompts per forward pass."})

    def __post_init__(self) -> None:
        if self.truncation not in ("none", "left"):
            raise ValueError(f"truncation must be 'none' or 'left', got {self.truncation!r}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")


class ClassifierJudge:
    """Satisfies :class:`~lm_eval_pandalm.judge.Judge`; the weights load on the first call."""

    def __init__(self, config: ClassifierJudgeConfig) -> None:
        from transformers import AutoTokenizer

        from .model_files import check_max_length, load_model_config

        self.config = config
        self.judge_id = f"classifier:{config.model}"
        model_config = load_model_config(config.model)
        if getattr(model_config, "num_labels", None) != 3:
            from ..errors import JudgeLoadError

            raise JudgeLoadError(
                f"judge {self.judge_id}: the model has {getattr(model_config, 'num_labels', None)} labels, not the 3 "
                "(1, 2, Tie) of a classifier judge; train one with pandalm train --judge_type classifier"
            )
        self.max_length = check_max_length(self.judge_id, config.max_length, model_config)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.temperature = config.temperature if config.temperature is not None else _saved_temperature(config.model)
        self._model: Any = None

    @classmethod
    def from_config(cls, config: ClassifierJudgeConfig) -> ClassifierJudge:
        """Build from a config (the registry's entry point)."""
        return cls(config)

    @property
    def fingerprint(self) -> str:
        """Weights (folder content hash), temperature, prompt template."""
        from .pandalm_local import _checkpoint_dir_sha256

        folder = Path(self.config.model)
        weights = _checkpoint_dir_sha256(folder) if folder.is_dir() else self.config.model
        payload = {
            "judge": "classifier-v1",
            "weights": weights,
            "temperature": self.temperature,
            "template": template_hash(),
            "max_length": self.max_length,
            "truncation": self.config.truncation,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def model(self) -> Any:
        """The loaded model (loaded on first use)."""
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification

            device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = AutoModelForSequenceClassification.from_pretrained(self.config.model)
            self._model = model.to(device).eval()  # type: ignore[arg-type]
        return self._model

    def logits(self, items: Sequence[PairItem]) -> list[list[float] | None]:
        """Raw logits per item (``None`` where the prompt does not fit and truncation is off)."""
        return self._logits_and_lengths(items)[0]

    def _logits_and_lengths(self, items: Sequence[PairItem]) -> tuple[list[list[float] | None], list[int]]:
        """Raw logits per item (``None`` where the prompt does not fit) and each prompt's length in tokens."""
        import torch

        from .pandalm_local import _special_prefix, plan_batches

        prefix = _special_prefix(self.tokenizer)
        ids = [
            prefix + list(x)
            for x in self.tokenizer([build_prompt(i) for i in items], add_special_tokens=False)["input_ids"]
        ]
        out: list[list[float] | None] = [None] * len(items)
        fits = []
        for i, row in enumerate(ids):
            if len(row) > self.max_length and self.config.truncation == "left":
                ids[i] = prefix + row[len(row) - (self.max_length - len(prefix)) :]
            if len(ids[i]) <= self.max_length:
                fits.append(i)
        model = self.model
        device = next(model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Longest first, at most max_batch_size prompts per forward pass (no token budget).
        batches = plan_batches([len(ids[i]) for i in fits], sys.maxsize, self.config.max_batch_size)
        with torch.inference_mode():
            for positions in batches:
                batch = [fits[p] for p in positions]
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):
                    input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                    mask[r, : len(ids[i])] = 1
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
                for r, i in enumerate(batch):
                    out[i] = logits[r].tolist()
        return out, [len(row) for row in ids]

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """One verdict per item: softmax(logits / temperature) over (1, 2, Tie)."""
        items = list(items)
        if not items:
            return []
        start = time.perf_counter()
        rows, lengths = self._logits_and_lengths(items)
        latency = (time.perf_counter() - start) / len(items)
        verdicts = []
        for row, n in zip(rows, lengths, strict=True):
            if row is None:
                verdicts.append(
                    Verdict.failed(
                        self.judge_id,
                        VerdictState.OVER_CONTEXT,
                        error=f"prompt needs {n} tokens but the judge's context is {self.max_length}; use "
                        "truncation: left",
                        prompt_tokens=n,
                    )
                )
                continue
            probs = scaled_softmax(row, self.temperature)
            verdicts.append(
                Verdict.from_probs(self.judge_id, *probs, prompt_tokens=n, completion_tokens=0, latency_s=latency)
            )
        return verdicts


def scaled_softmax(logits: Sequence[float], temperature: float) -> list[float]:
    """``softmax(logits / temperature)``: the classifier judge's verdict probabilities.

    >>> [round(p, 3) for p in scaled_softmax([2.0, 0.0, 0.0], 2.0)]
    [0.576, 0.212, 0.212]
    """
    scaled = [v / temperature for v in logits]
    top = max(scaled)
    weights = [math.exp(v - top) for v in scaled]
    total = sum(weights)
    return [w / total for w in weights]


def _saved_temperature(model: str) -> float:
    path = Path(model) / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    value = json.loads(path.read_text(encoding="utf-8")).get("temperature", 1.0)
    if not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{path}: temperature must be a positive number, got {value!r}")
    return float(value)
