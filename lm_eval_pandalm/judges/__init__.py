"""Judge backends (one module each, imported lazily) and the SPEC registry that builds them."""

from .registry import BACKENDS, ReplayJudgeConfig, make_judge

__all__ = ["BACKENDS", "ReplayJudgeConfig", "make_judge"]
