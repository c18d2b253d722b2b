"""Fine-tune PandaLM-style judges: a generative judge (SFT on PandaLM's output format) or a classifier judge.

Optional extra ``train`` (peft, for LoRA); torch, transformers and accelerate are core dependencies. Nothing here is
imported by ``import lm_eval_pandalm``. Entry points: ``pandalm train`` and ``python -m lm_eval_pandalm.training``,
both reading :class:`~lm_eval_pandalm.training.config.JudgeTrainingConfig` from flags and/or ``--config FILE.yaml``.

Modules: :mod:`.data` (sources, audit, leak-free split, swap augmentation), :mod:`.encoding` (prompt + target
tokens, loss mask, truncation policy), :mod:`.config`, :mod:`.train` (the run), :mod:`.packed_attention` (attention
per example in padding-free batches), :mod:`.calibration` (temperature scaling, ECE).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Train a judge from command-line arguments (see :func:`lm_eval_pandalm.training.train.main`)."""
    from .train import main as _main

    return _main(argv)
