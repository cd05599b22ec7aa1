"""Strict loading of nested dataclasses from plain dicts: unknown keys and wrong types are errors."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

from promedical.errors import UserError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{where}: {key}: null is not allowed")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise UserError(f"{where}: {key}={value!r} is not one of {list(allowed)}; set one of those")
        return value
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
        return {_convert(k, key_tp, f"{key}.{k}", where): _convert(v, val_tp, f"{key}.{k}", where)
                for k, v in value.items()}
    if origin in (list, tuple):
        (item_tp, *_rest) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: {key} must be a list, got {type(value).__name__}")
        items = [_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key} must be a mapping of {_type_name(tp)} fields, "
                            f"got {type(value).__name__}")
        return from_dict(tp, value, where=where, prefix=f"{key}.")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: {key}={value!r} must be a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: {key}={value!r} must be an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key}={value!r} must be true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: {key}={value!r} must be a string; quote it, e.g. --set '{key}=\"{value}\"'")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def from_dict(cls: type, data: dict[str, Any], *, where: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`; `where` names the source (file or preset) in errors."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else f"; known keys: {', '.join(fields)}"
            raise UserError(f"{where}: unknown config key {prefix}{key}{hint}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", where)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UserError(f"{where}: missing required config key {prefix}{name}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config dataclass (for writing the resolved config)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply one `--set a.b.c=value` override to nested plain data."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value
