"""Mapping YAML / dict configuration onto dataclasses, strictly.

Configuration lives in dataclasses; YAML only fills them. An unknown key is an error that names the file, the key,
the closest valid key and every valid key, because a misspelt option that is silently ignored produces results
that look right and are not.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import PandaLMError

__all__ = ["ConfigError", "dataclass_from_mapping", "load_yaml_mapping", "refuse_unknown_keys"]

T = TypeVar("T")


class ConfigError(PandaLMError, ValueError):
    """A configuration file or mapping does not fit its dataclass."""


def _strict_loader() -> type:
    """A YAML SafeLoader that refuses a key given twice in one mapping (the plain loader keeps the last silently)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise ConfigError(
                    f"key {key!r} is given twice (lines {seen[key]} and {key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line + 1
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must contain a mapping at top level; a key given twice is an error."""
    import yaml

    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_strict_loader())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at top level, got {type(data).__name__}")
    return data


def _check_type(value: Any, annotation: Any) -> bool:
    """Loose runtime check of YAML scalars against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, typing.Sequence, collections.abc.Sequence):
        args = typing.get_args(annotation)
        element = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_check_type(item, element) for item in value)
    if origin in (dict, typing.Mapping, collections.abc.Mapping):
        args = typing.get_args(annotation)
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(_check_type(k, args[0]) and _check_type(v, args[1]) for k, v in value.items())
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def refuse_unknown_keys(
    data: Mapping[str, Any], valid: Collection[str], source: str, *, owner: str | None = None
) -> None:
    """Raise :class:`ConfigError` for the first key of ``data`` not in ``valid``, with the closest valid key and the
    full list (``owner``, e.g. the config class, is named in the message)."""
    for key in data:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            where = f" for {owner}" if owner else ""
            raise ConfigError(
                f"{source}: unknown option {key!r}{where}.{hint} Valid options: {', '.join(sorted(valid))}"
            )


def dataclass_from_mapping(cls: type[T], data: Mapping[str, Any], *, source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and values of the wrong type.

    Args:
        cls: A dataclass type.
        data: Option name to value.
        source: Where ``data`` came from (a file path), for error messages.

    Raises:
        ConfigError: Unknown key (with the closest valid key and the full list) or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    refuse_unknown_keys(data, fields, source, owner=cls.__name__)
    for key, value in data.items():
        if not _check_type(value, hints[key]):
            raise ConfigError(f"{source}: option {key!r} = {value!r} is not of type {hints[key]}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
