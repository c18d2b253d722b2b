"""Judge backends (one module each, imported lazily) and the SPEC registry that builds them."""

from .registry import BACKENDS, ReplayJudgeConfig, check_spec, make_judge, preflight_spec

__all__ = ["BACKENDS", "ReplayJudgeConfig", "check_spec", "make_judge", "preflight_spec"]
