"""PandaLM-style pairwise judging for EleutherAI's lm-evaluation-harness.

Importing the package is cheap: judges that need torch, transformers or network access import them only when built.
"""

from __future__ import annotations

from .judge import Judge
from .prompt import build_prompt, clean_response, parse_output
from .types import Label, PairItem, Verdict, VerdictState

__version__ = "0.1.0"

__all__ = [
    "Judge",
    "Label",
    "PairItem",
    "Verdict",
    "VerdictState",
    "__version__",
    "build_prompt",
    "clean_response",
    "parse_output",
]
