"""Field docstrings -> descriptions, read from source only when they are needed.

Pydantic's `use_attribute_docstrings` reads every class's source at import
time (~25 ms of `knowrl validate`'s budget); the docstrings are only needed
for the JSON Schema and help text, so they are parsed here, once per module,
on demand.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from typing import Any

from pydantic import BaseModel


@functools.cache
def _module_docs(module: str) -> dict[str, dict[str, str]]:
    """class name -> {field: docstring} for one module."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    out: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        docs: dict[str, str] = {}
        body = node.body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
        out[node.name] = docs
    return out


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """Docstring of every field of `cls`, inherited ones included (nearest class wins)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if isinstance(base, type) and issubclass(base, BaseModel) and base is not BaseModel:
            docs.update(_module_docs(base.__module__).get(base.__name__, {}))
    return {k: v for k, v in docs.items() if k in cls.model_fields}


def models_under(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from `root`, by class name."""
    from knowrl.spec._paths import _children

    seen: dict[str, type[BaseModel]] = {}
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, type) and issubclass(node, BaseModel):
            if node.__name__ in seen:
                continue
            seen[node.__name__] = node
            stack += [c for f in node.model_fields.values() for c in _children(f.annotation)]
        else:  # list[...] / dict[...]
            import typing

            stack += [c for arg in typing.get_args(node) for c in _children(arg)]
    return seen
