"""Where a judge model's files are, checked before any work: a local folder, or a Hub id (in the local cache when
offline), with a loadable model config.

Nothing here loads weights. :func:`locate_model` and :func:`load_model_config` raise
:class:`~lm_eval_pandalm.errors.JudgeLoadError` with one line that names the model and the fix, instead of the
transformers ``OSError`` ("Repo id must use alphanumeric chars...") that a missing path gives after a whole
generation run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.sources import is_offline
from ..errors import JudgeLoadError

__all__ = ["ModelLocation", "check_max_length", "load_model_config", "locate_model"]

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_config.json",  # a LoRA adapter: the base model is named inside it
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


@dataclass(frozen=True)
class ModelLocation:
    """Where a model's files are."""

    model: str
    """The model as given (folder or Hub id)."""
    local_dir: Path | None
    """The folder, for a local model; ``None`` for a Hub id."""
    cached: bool
    """For a Hub id: whether its config and weights are in the local Hugging Face cache."""


def locate_model(model: str, revision: str | None = None) -> ModelLocation:
    """Find a model's files without loading them.

    Args:
        model: A local folder or a Hub id (``owner/name``).
        revision: Hub revision.

    Raises:
        JudgeLoadError: The folder does not exist or holds no model (config, weights, tokenizer); the name is neither
            a folder nor a Hub id; or offline mode is on and the Hub id is not in the local cache.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        _check_local_dir(model, path)
        return ModelLocation(model, path, cached=True)
    if path.exists():
        raise JudgeLoadError(f"judge model {model!r} is a file; give the folder that holds config.json and the weights")
    if not _HUB_ID.match(model):
        raise JudgeLoadError(
            f"judge model {model!r}: no such folder, and not a Hugging Face Hub id (owner/name); check the path"
        )
    cached = _hub_files_cached(model, revision)
    if not cached and is_offline():
        raise JudgeLoadError(
            f"judge model {model!r} is not in the local Hugging Face cache and offline mode is on (HF_HUB_OFFLINE or "
            f"PANDALM_OFFLINE); download it first (huggingface-cli download {model}), or give a local folder"
        )
    return ModelLocation(model, None, cached=cached)


def _check_local_dir(model: str, path: Path) -> None:
    names = {p.name for p in path.iterdir()}
    if "adapter_config.json" in names:
        return  # a LoRA adapter folder: its base model is checked when the adapter is loaded
    if "config.json" not in names:
        raise JudgeLoadError(f"judge model folder {model!r} has no config.json; is it a saved transformers model?")
    if not any(name.endswith(_WEIGHT_SUFFIXES) for name in names):
        raise JudgeLoadError(f"judge model folder {model!r} has no weights (*.safetensors or *.bin)")
    if not names & set(_TOKENIZER_FILES):
        raise JudgeLoadError(
            f"judge model folder {model!r} has no tokenizer (tokenizer.json or tokenizer.model); save the tokenizer "
            "beside the model"
        )


def _hub_files_cached(model: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False

    def cached(name: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(model, name, revision=revision), str)
        except Exception:  # an invalid id or revision: treated as not cached
            return False

    return (
        cached("config.json")
        and any(cached(name) for name in _WEIGHT_FILES)
        and any(cached(name) for name in _TOKENIZER_FILES)
    )


def load_model_config(model: str, revision: str | None = None) -> Any:
    """The model's transformers config (``config.json`` only; no weights), checked to be loadable.

    Raises:
        JudgeLoadError: The model cannot be found (see :func:`locate_model`) or its config cannot be read.
    """
    location = locate_model(model, revision)
    from transformers import AutoConfig

    try:
        if location.local_dir is not None and (location.local_dir / "adapter_config.json").is_file():
            return _adapter_base_config(location.local_dir)
        return AutoConfig.from_pretrained(model, revision=revision)
    except (OSError, ValueError, KeyError) as exc:
        detail = " ".join(str(exc).split())
        raise JudgeLoadError(f"judge model {model!r}: its config cannot be loaded: {detail[:400]}") from exc


def _adapter_base_config(folder: Path) -> Any:
    import json

    from transformers import AutoConfig

    adapter = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    base = adapter.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise JudgeLoadError(f"adapter folder {str(folder)!r}: adapter_config.json names no base_model_name_or_path")
    locate_model(base, adapter.get("revision"))
    return AutoConfig.from_pretrained(base, revision=adapter.get("revision"))


def check_max_length(judge_id: str, max_length: int | None, model_config: Any) -> int:
    """The judge's context length: ``max_length`` if set, else the model's ``max_position_embeddings``.

    Raises:
        JudgeLoadError: ``max_length`` is more than the model's context, or neither is known.
    """
    context = getattr(model_config, "max_position_embeddings", None)
    if max_length is not None and context and max_length > context:
        raise JudgeLoadError(
            f"judge {judge_id}: max_length {max_length} is more than the model's context of {context} tokens "
            "(max_position_embeddings); lower max_length or leave it unset"
        )
    length = max_length or context
    if not length:
        raise JudgeLoadError(
            f"judge {judge_id}: the model's config has no max_position_embeddings; set max_length in a judge YAML"
        )
    return int(length)
