"""`knowrl explain KEY`: the documentation of any spec key, from the field docstrings."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from knowrl._errors import UsageError


def _type_name(annotation: Any) -> str:
    """A short, readable name for an annotation: `float | None`, `list[ClipChange]`, `'a' | 'b'`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", repr(annotation))


def explain(key: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for every field directly under `key`."""
    from knowrl.spec._docs import field_docs
    from knowrl.spec._experiment import ExperimentSpec
    from knowrl.spec._paths import _children, unknown_key_problem

    if key and (problem := unknown_key_problem(ExperimentSpec, key)):
        raise UsageError(f"unknown spec key '{key}': {problem}", hint="`knowrl explain` lists the top-level keys")
    nodes: list[Any] = [ExperimentSpec]
    for part in key.split(".") if key else []:
        nxt = []
        for n in nodes:
            if isinstance(n, type) and issubclass(n, BaseModel) and part in n.model_fields:
                nxt += _children(n.model_fields[part].annotation)
            elif typing.get_origin(n) in (list, dict):
                nxt += _children(typing.get_args(n)[-1])
        nodes = nxt
    rows: dict[str, tuple[str, str, str, str]] = {}
    for n in nodes:
        if not (isinstance(n, type) and issubclass(n, BaseModel)):
            continue
        docs = field_docs(n)
        for name, field in n.model_fields.items():
            if field.default is not PydanticUndefined:
                default = repr(field.default)
            elif field.default_factory is not None:
                default = "(section)" if isinstance(field.default_factory, type) else "(computed)"
            else:
                default = "(required)"
            full = f"{key}.{name}" if key else name
            row = (full, _type_name(field.annotation), default, docs.get(name, ""))
            if full in rows and rows[full] != row:  # the same key in several variants of a union
                old = rows[full]
                kinds = " | ".join(dict.fromkeys([*old[1].split(" | "), *row[1].split(" | ")]))
                doc = old[3] if old[3] == row[3] else "Which variant (each accepts only its own keys)."
                row = (full, kinds, old[2] if old[2] == row[2] else "(varies)", doc)
            rows[full] = row
    return list(rows.values())
