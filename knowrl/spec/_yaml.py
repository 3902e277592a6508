"""Read one YAML file into plain data plus the line of every key in it.

OmegaConf merges and interpolates well but forgets where a value came from;
errors must say `file:line`, so each file is composed with PyYAML first and
its node marks are kept per dotted key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from knowrl._errors import SpecIssue

# YAML 1.1 (PyYAML) reads `1e-6` as a string; YAML 1.2 and OmegaConf read a float.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


# libyaml's parser when present (5x faster than PyYAML's pure-Python one); same events, same marks.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))

MAX_EXPANDED_NODES = 100_000
"""A spec is a few hundred nodes; aliases may repeat parts, but not expand it past this ("billion laughs")."""

Locations = dict[str, str]
"""Dotted key -> `file:line` of the YAML (or override) that set it."""


def parse_yaml(text: str, where: str) -> tuple[Any, Locations, list[SpecIssue]]:
    """Parse `text`; return (data, key locations, problems). `where` names the source in messages."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        bomb = _alias_bomb(node, where) if node is not None else None
        if bomb:
            return None, {}, [bomb]
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        what = " ".join(x for x in (e.context, e.problem) if x)
        return (
            None,
            {},
            [
                SpecIssue(
                    "",
                    f"malformed YAML: {what}",
                    where=f"{where}{line}",
                    hint="check indentation, quotes and brackets on or just before this line",
                )
            ],
        )
    except yaml.YAMLError as e:
        return None, {}, [SpecIssue("", f"malformed YAML: {e}", where=where)]
    finally:
        loader.dispose()
    locations: Locations = {}
    problems: list[SpecIssue] = []
    if node is not None:
        _walk(node, "", where, locations, problems)
    return data, locations, problems


def _alias_bomb(root: yaml.Node, where: str) -> SpecIssue | None:
    """A located issue when aliases expand the document past MAX_EXPANDED_NODES, counted without expanding it.

    PyYAML shares an aliased node rather than copying it, so composing is cheap;
    it is every later walk over the expanded tree that is exponential.
    """
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []  # children before parents, each node once
    stack, seen = [(root, False)], set()
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in seen:
                stack.append((child, False))
    for node in order:
        sizes[id(node)] = min(MAX_EXPANDED_NODES + 1, 1 + sum(sizes.get(id(c), 1) for c in _children(node)))
        if sizes[id(node)] > MAX_EXPANDED_NODES:
            return SpecIssue(
                "",
                f"aliases expand this document past {MAX_EXPANDED_NODES:,} values (an alias bomb?)",
                where=f"{where}:{node.start_mark.line + 1}",
                hint="a spec needs few aliases; use `extends` or `${...}` interpolation to share settings",
            )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _walk(node: yaml.Node, prefix: str, where: str, out: Locations, problems: list[SpecIssue]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{prefix}.{key}" if prefix else key
            at = f"{where}:{key_node.start_mark.line + 1}"
            if key in seen:
                problems.append(
                    SpecIssue(
                        dotted,
                        "key is given twice in the same mapping",
                        where=at,
                        hint="keep one; YAML would silently use the last",
                    )
                )
            seen.add(key)
            out[dotted] = at
            _walk(value_node, dotted, where, out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            dotted = f"{prefix}.{i}" if prefix else str(i)
            out[dotted] = f"{where}:{item.start_mark.line + 1}"
            _walk(item, dotted, where, out, problems)


def read_yaml(path: Path) -> tuple[Any, Locations, list[SpecIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        return None, {}, [SpecIssue("", f"cannot read the file: {e.strerror or e}", where=str(path))]
    except UnicodeDecodeError as e:
        line = text_line_of(path.read_bytes(), e.start)
        return (
            None,
            {},
            [
                SpecIssue(
                    "",
                    f"not UTF-8 text (byte {e.object[e.start]:#x})",
                    where=f"{path}:{line}",
                    hint="save the file as UTF-8",
                )
            ],
        )
    return parse_yaml(text, str(path))


def text_line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
