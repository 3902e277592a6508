"""Walk the spec models by dotted key: which keys exist, and what was probably meant.

Pydantic reports an unknown key without the keys that were allowed; sweeps and
overrides name keys as strings. Both need the model tree, so it is walked here.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel


def _children(annotation: Any) -> list[Any]:
    """The model classes, or list/dict containers, an annotation can hold (empty for a leaf)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _children(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _children(arg)]
    if origin in (list, dict):
        return [annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _step(node: Any, part: str | int) -> tuple[list[Any], list[str]]:
    """Children of `node` reached by `part`, plus the names that were allowed there."""
    origin = typing.get_origin(node)
    if origin is list:
        return (_children(typing.get_args(node)[0]) if str(part).isdigit() else []), ["<index>"]
    if origin is dict:
        return _children(typing.get_args(node)[1]) or [None], ["<any key>"]
    fields = node.model_fields
    if part in fields:
        return (_children(fields[part].annotation) or [None]), list(fields)
    return [], list(fields)


def _tag_members(nodes: list[Any], part: Any) -> list[Any]:
    """Members of a discriminated union selected by `part`, which pydantic puts in error locations."""
    return [
        n
        for n in nodes
        if isinstance(n, type) and any(typing.get_args(f.annotation) == (part,) for f in n.model_fields.values())
    ]


def _walk_loc(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], list[str]]:
    """Follow a pydantic location; return the nodes reached and the user's dotted parts (tags skipped)."""
    nodes: list[Any] = [root]
    parts: list[str] = []
    for part in loc:
        if len(nodes) > 1 and (tagged := _tag_members(nodes, part)):
            nodes = tagged
            continue
        parts.append(str(part))
        nodes = [c for n in nodes if n is not None for c in _step(n, part)[0]]
    return nodes, parts


def user_key(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The dotted key a user wrote, from a pydantic location (which inserts union tags)."""
    return ".".join(_walk_loc(root, loc)[1])


def allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Keys allowed inside the object at pydantic location `loc`."""
    names: list[str] = []
    for n in _walk_loc(root, loc)[0]:
        if isinstance(n, type) and issubclass(n, BaseModel):
            names += [k for k in n.model_fields if k not in names]
    return names


def did_you_mean(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def unknown_key_problem(root: type[BaseModel], dotted: str) -> str | None:
    """None if `dotted` names a field somewhere in the spec, else what is wrong with it."""
    nodes: list[Any] = [root]
    walked: list[str] = []
    for part in dotted.split("."):
        nxt: list[Any] = []
        allowed: list[str] = []
        for n in nodes:
            if n is None:
                return f"'{'.'.join(walked)}' is a value and has no key '{part}'"
            kids, names = _step(n, part)
            nxt += kids
            allowed += [a for a in names if a not in allowed]
        if not nxt:
            hint = did_you_mean(part, allowed)
            where = f"'{'.'.join(walked)}'" if walked else "the spec"
            return f"{where} has no key '{part}'" + (f"; {hint}" if hint else "")
        nodes, walked = nxt, [*walked, part]
    return None
