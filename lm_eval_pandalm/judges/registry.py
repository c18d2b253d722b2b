"""From a judge SPEC string to a ready judge.

A SPEC is one of:

* ``pandalm:<model id or path>``: a local PandaLM-format judge run with transformers;
* ``replay:<name>``: recorded verdicts (``pandalm-7b``, ``gpt-3.5-turbo``, ``human``, ``GPT-4``, ``ChatGPT``,
  ``LLaMA2``, optionally ``GPT-4/<LLMBar strategy>``, or a verdict JSONL written by ``pandalm judge``);
* ``openai:<model>``: a chat model behind the OpenAI API (key in ``$OPENAI_API_KEY``), with default settings;
* ``classifier:<path>``: a 3-way classification judge trained by ``pandalm train --judge_type classifier``;
* a path to a YAML judge config whose ``type`` key names the backend and whose other keys are fields of that
  backend's config dataclass (``type: openai`` for any OpenAI-compatible server, chat or completions;
  ``type: cascade`` builds an escalation cascade whose stages are SPECs themselves);
* the same mapping given directly (how a cascade's stages may be written inline).

Backends are imported only when used, so naming a replay judge never imports torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, dataclass_from_mapping, load_yaml_mapping
from ..judge import Judge

__all__ = ["BACKENDS", "ReplayJudgeConfig", "check_spec", "make_judge", "preflight_spec"]


@dataclass
class ReplayJudgeConfig:
    """Recorded verdicts served as a judge (YAML ``type: replay``)."""

    name: str = dataclasses.field(metadata={"help": "Recorded judge: pandalm-7b, gpt-3.5-turbo, human, GPT-4, ..."})
    strategy: str = dataclasses.field(
        default="Vanilla_NoRules", metadata={"help": "LLMBar prompting strategy directory (LLMBar judges only)."}
    )
    benchmarks: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "Benchmarks whose recordings to search; default: all that carry the judge."}
    )


def _build_replay(config: ReplayJudgeConfig, data_dir: str | Path | None) -> Judge:
    from .replay import replay_judge

    return replay_judge(config.name, strategy=config.strategy, benchmarks=config.benchmarks, data_dir=data_dir)


def _preflight_replay(config: ReplayJudgeConfig, data_dir: str | Path | None) -> None:
    from .replay import ReplayJudge

    judge = _build_replay(config, data_dir)  # checks the name; reads nothing but a verdict .jsonl
    assert isinstance(judge, ReplayJudge)
    judge.check_available(data_dir)


def _cascade_config_cls() -> type:
    from ..wrappers.cascade.config import CascadeConfig

    return CascadeConfig


def _build_cascade(config: Any, data_dir: str | Path | None, cache: str | Path | bool | None = None) -> Judge:
    from ..wrappers.cascade.build import build_cascade

    return build_cascade(config, data_dir=data_dir, cache=cache)


def _preflight_cascade(config: Any, data_dir: str | Path | None) -> None:
    """Every stage's judge is checked as if it were named on its own."""
    for stage in config.stage_configs:
        preflight_spec(stage.judge, data_dir=data_dir)


def _pandalm_config_cls() -> type:
    from .pandalm_local import PandaLMJudgeConfig

    return PandaLMJudgeConfig


def _build_pandalm(config: Any, data_dir: str | Path | None) -> Judge:
    from .pandalm_local import PandaLMJudge

    return PandaLMJudge.from_config(config)


def _preflight_pandalm(config: Any, data_dir: str | Path | None) -> None:
    from .model_files import check_max_length, load_model_config

    model_config = load_model_config(config.model, config.revision)
    check_max_length(f"pandalm:{config.model}", config.max_length, model_config)


def _classifier_config_cls() -> type:
    from .classifier import ClassifierJudgeConfig

    return ClassifierJudgeConfig


def _preflight_classifier(config: Any, data_dir: str | Path | None) -> None:
    from .model_files import check_max_length, load_model_config

    model_config = load_model_config(config.model)
    check_max_length(f"classifier:{config.model}", config.max_length, model_config)


def _build_classifier(config: Any, data_dir: str | Path | None) -> Judge:
    from .classifier import ClassifierJudge

    return ClassifierJudge.from_config(config)


def _build_fake(config: Any, data_dir: str | Path | None) -> Judge:
    from ..testing.fakes import fake_judge_from_config

    return fake_judge_from_config(config)


def _fake_config_cls() -> type:
    from ..testing.fakes import FakeJudgeConfig

    return FakeJudgeConfig


def _no_preflight(config: Any, data_dir: str | Path | None) -> None:
    """Nothing to check beyond the config itself."""


def _openai_config_cls() -> type:
    from .openai_api import OpenAIJudgeConfig

    return OpenAIJudgeConfig


def _build_openai(config: Any, data_dir: str | Path | None) -> Judge:
    from .openai_api import OpenAIJudge

    return OpenAIJudge.from_config(config)


def _ledger_beside_cache(config: Any, cache_path: Path) -> Any:
    """An API judge's config with its spend ledger beside an explicitly given judgment cache (unless it names one)."""
    if config.ledger is not None:
        return config
    from ..ledger import LEDGER_ENV, ledger_beside

    if os.environ.get(LEDGER_ENV, "").strip():
        return config
    return dataclasses.replace(config, ledger=str(ledger_beside(cache_path)))


def _preflight_openai(config: Any, data_dir: str | Path | None) -> None:
    """The key's environment variable must be set (its value is never read here beyond that)."""
    from ..errors import JudgeLoadError

    name = getattr(config, "api_key_env", None)
    if name and not os.environ.get(name, "").strip():
        raise JudgeLoadError(
            f"judge openai:{config.model}: the environment variable {name} that should hold the API key is not set; "
            "export it, or set api_key_env: null in the judge YAML for a server without authentication"
        )


@dataclass(frozen=True)
class Backend:
    """How to configure and build one kind of judge."""

    config_cls: Callable[[], type]
    """Returns the backend's config dataclass (a callable so the backend module is imported lazily)."""
    build: Callable[..., Judge]
    """Builds the judge from a config instance and the data directory (and the cache setting, when ``wraps``)."""
    positional: str
    """The config field that the part after ``<backend>:`` in a SPEC fills."""
    cacheable: bool
    """Whether verdicts cost something to compute, so the judgment cache should sit in front of it."""
    preflight: Callable[[Any, str | Path | None], None]
    """Checks, without loading weights or judging, that the judge can be built and run (model files, data)."""
    beside_cache: Callable[[Any, Path], Any] | None = None
    """Given the config and an explicitly chosen judgment cache file, the config with the files that live beside the
    cache filled in (an API judge's spend ledger); ``None`` when the backend keeps no such files."""
    wraps: bool = False
    """The judge is built from other judges (a cascade): ``build`` also receives the cache setting, for them."""


BACKENDS: dict[str, Backend] = {
    "pandalm": Backend(
        config_cls=_pandalm_config_cls,
        build=_build_pandalm,
        positional="model",
        cacheable=True,
        preflight=_preflight_pandalm,
    ),
    "replay": Backend(
        config_cls=lambda: ReplayJudgeConfig,
        build=_build_replay,
        positional="name",
        cacheable=False,
        preflight=_preflight_replay,
    ),
    "openai": Backend(
        config_cls=_openai_config_cls,
        build=_build_openai,
        positional="model",
        cacheable=True,
        preflight=_preflight_openai,
        beside_cache=_ledger_beside_cache,
    ),
    # Its stages are cached one by one; the cascade's own verdicts depend on its policy and budget, so it is not.
    "cascade": Backend(
        config_cls=_cascade_config_cls,
        build=_build_cascade,
        positional="stages",
        cacheable=False,
        preflight=_preflight_cascade,
        wraps=True,
    ),
    # A 3-way classification head trained by `pandalm train --judge_type classifier` (judges/classifier.py).
    "classifier": Backend(
        config_cls=_classifier_config_cls,
        build=_build_classifier,
        positional="model",
        cacheable=True,
        preflight=_preflight_classifier,
    ),
    # A deterministic stand-in (lm_eval_pandalm.testing.fakes): whole runs without a model, for tests and dry runs.
    "fake": Backend(
        config_cls=_fake_config_cls,
        build=_build_fake,
        positional="name",
        cacheable=True,
        preflight=_no_preflight,
    ),
}


def _parse_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any], str]:
    """Backend name, config mapping and a description of where it came from."""
    if isinstance(spec, Mapping):
        data = dict(spec)
        backend = data.pop("type", None)
        if backend not in BACKENDS:
            raise ConfigError(
                f"judge config {dict(spec)!r:.120}: key 'type' must be one of {', '.join(BACKENDS)} (got {backend!r})"
            )
        return backend, data, f"judge config (type {backend})"
    if not isinstance(spec, str):
        raise ConfigError(f"a judge SPEC must be a string or a mapping with a 'type' key, got {type(spec).__name__}")
    if spec.endswith((".yaml", ".yml")) and not spec.startswith(tuple(f"{name}:" for name in BACKENDS)):
        data = load_yaml_mapping(spec)
        backend = data.pop("type", None)
        if backend not in BACKENDS:
            raise ConfigError(
                f"{spec}: key 'type' must be one of {', '.join(BACKENDS)} (got {backend!r}); it names the judge backend"
            )
        return backend, data, spec
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in BACKENDS or not rest or backend == "cascade":
        raise ConfigError(
            f"judge spec {spec!r} not understood; use pandalm:<model id or path>, replay:<name>, openai:<model>, "
            f"classifier:<path>, or a YAML judge config file (*.yaml) with a 'type' key ({', '.join(BACKENDS)})"
        )
    return backend, {BACKENDS[backend].positional: rest}, f"judge spec {spec!r}"


def check_spec(spec: str | Mapping[str, Any]) -> None:
    """Check a SPEC (and a YAML judge config's keys and value types) without building the judge.

    No model is loaded and no data is read, so callers can fail before an expensive run rather than after it.

    Raises:
        ConfigError: The SPEC is not understood, or the config has unknown keys or values of the wrong type.
    """
    _config_for(spec)


def preflight_spec(
    spec: str | Mapping[str, Any], *, data_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> None:
    """Check everything a SPEC needs before any expensive work: the SPEC and its config, the backend's names, the
    model's files (a local folder, or a Hub id that is in the local cache when offline) and loadable model config,
    the recorded-verdict files of a replay judge. No weights are loaded and nothing is judged.

    Raises:
        ConfigError: The SPEC or its config is not understood.
        lm_eval_pandalm.errors.JudgeLoadError: The model cannot be found or its config cannot be loaded.
        lm_eval_pandalm.data.DataUnavailableError: A replay judge's recordings are not available.
        ValueError: Another bad value (e.g. an unknown replay name, with the closest valid one).
    """
    backend, config = _config_for(spec, overrides)
    backend.preflight(config, data_dir)


def _config_for(spec: str | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> tuple[Backend, Any]:
    """The backend a SPEC names and its validated config dataclass (``overrides`` replace config fields)."""
    backend_name, data, source = _parse_spec(spec)
    backend = BACKENDS[backend_name]
    if overrides:
        fields = {f.name for f in dataclasses.fields(backend.config_cls())}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(f"{source}: a {backend_name} judge has no setting {', '.join(map(repr, unknown))}")
        data = {**data, **overrides}
        source = f"{source} with {', '.join(f'{k}={v!r}' for k, v in overrides.items())}"
    return backend, dataclass_from_mapping(backend.config_cls(), data, source=source)


def make_judge(
    spec: str | Mapping[str, Any],
    *,
    data_dir: str | Path | None = None,
    cache: str | Path | bool | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Judge:
    """Build the judge a SPEC names.

    Args:
        spec: ``pandalm:<id or path>``, ``replay:<name>``, ``openai:<model>``, a YAML judge config path, or such a
            config as a mapping (see module docs).
        data_dir: Local mirror of the benchmark data (replay judges read recorded verdicts from it).
        cache: Judgment cache for judges that cost something: a path, ``False`` to disable, ``None`` or ``True``
            for the default (``PANDALM_CACHE_PATH`` / ``PANDALM_NO_CACHE``, see :mod:`lm_eval_pandalm.wrappers.cache`).
            An API judge keeps its spend ledger beside an explicitly given cache file unless its config names one.
        overrides: Config fields to set over the SPEC's (e.g. ``{"truncation": "left"}`` from a command-line flag).

    Returns:
        A judge; model judges come wrapped in the judgment cache unless it is disabled.
    """
    backend, config = _config_for(spec, overrides)
    path = None if cache is None or cache is True or cache is False else cache
    if backend.beside_cache is not None and path is not None:
        config = backend.beside_cache(config, Path(path))
    judge = backend.build(config, data_dir, cache) if backend.wraps else backend.build(config, data_dir)
    if not backend.cacheable or cache is False:
        return judge

    from ..wrappers.cache import maybe_cached

    return maybe_cached(judge, path=path, enabled=True if path is not None or cache is True else None)
