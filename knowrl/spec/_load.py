"""YAML -> validated `ExperimentSpec`: `extends`, `${...}` interpolation, dotlist overrides.

Every problem in every stage is collected and raised together as one
`SpecError`, each located at the file:line (through `extends`) or the
override that set the offending key.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from knowrl._errors import SpecError, SpecIssue
from knowrl.spec._yaml import Locations, parse_yaml, read_yaml

EXTENDS = "extends"
REPLACE = "_replace_"
"""Inside a mapping, `_replace_: true` replaces the inherited mapping instead of merging into it."""

_OVERRIDE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*(?:\.[\w-]+)*)=(?P<value>.*)$", re.S)


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()):  # -> ExperimentSpec
    """Load, merge, interpolate, override and validate one spec file; every problem is reported at once."""
    problems: list[SpecIssue] = []
    data, locations, broken = _resolve(Path(path), overrides, problems)
    if data is None:
        raise SpecError(problems, source=str(path))
    try:
        spec = validate(data, locations, source=str(path))
    except SpecError as e:
        # A key whose interpolation failed is already reported; its placeholder's type error is noise.
        problems += [p for p in e.problems if p.key not in broken or p.message == "unknown key"]
        raise SpecError(problems, source=str(path)) from None
    if problems:
        raise SpecError(problems, source=str(path))
    return spec


def load_data(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], Locations]:
    """The merged, interpolated plain data of a spec and where each key was set (not yet validated)."""
    problems: list[SpecIssue] = []
    data, locations, _ = _resolve(Path(path), overrides, problems)
    if data is None or problems:
        raise SpecError(problems, source=str(path))
    return data, locations


def _resolve(path: Path, overrides, problems: list[SpecIssue]) -> tuple[dict | None, Locations, set[str]]:
    data, locations = _load_tree(path, problems, stack=())
    if data is None:
        return None, locations, set()
    _apply_overrides(data, locations, overrides, problems)
    data, broken = _interpolate(data, locations, problems)
    return data, locations, broken


def _load_tree(path: Path, problems: list[SpecIssue], stack: tuple[Path, ...]) -> tuple[dict | None, Locations]:
    """One file merged over everything it extends, in order (later wins)."""
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        problems.append(SpecIssue(EXTENDS, f"`extends` cycle: {chain}", where=str(path)))
        return None, {}
    if not path.is_file():
        problems.append(
            SpecIssue(
                "",
                "spec file not found",
                where=str(path),
                hint="check the path; `extends` paths are relative to the file that names them",
            )
        )
        return None, {}
    data, locations, found = read_yaml(path)
    problems += found
    if found:
        return None, {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(
            SpecIssue("", f"the document must be a mapping of keys, got a {type(data).__name__}", where=f"{path}:1")
        )
        return None, {}
    bases = data.pop(EXTENDS, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        problems.append(SpecIssue(EXTENDS, "must be a file path or a list of file paths", where=locations.get(EXTENDS)))
        return None, {}
    merged: dict[str, Any] = {}
    merged_at: Locations = {}
    for i, base in enumerate(bases):
        base_path = path.parent / base
        if not base_path.is_file():
            problems.append(
                SpecIssue(
                    EXTENDS,
                    f"base file '{base}' not found (looked for {base_path})",
                    where=locations.get(f"{EXTENDS}.{i}", locations.get(EXTENDS)),
                    hint="paths in `extends` are relative to the file that names them",
                )
            )
            continue
        sub, sub_at = _load_tree(base_path, problems, (*stack, resolved))
        if sub is not None:
            merged, merged_at = _merge(merged, merged_at, sub, sub_at)
    locations = {k: v for k, v in locations.items() if not k.startswith(EXTENDS)}
    return _merge(merged, merged_at, data, locations)


def _merge(base: dict, base_at: Locations, top: dict, top_at: Locations) -> tuple[dict, Locations]:
    """Deep-merge `top` over `base` (OmegaConf's rules: mappings merge, lists and scalars replace).

    Written out rather than `OmegaConf.merge`, which costs ~100 ms on the paper's
    spec and would double `knowrl validate`'s start-up; `_replace_` marks a
    mapping that replaces the inherited one instead.
    """
    for prefix in _replaced_prefixes(top):
        base_at = {k: v for k, v in base_at.items() if not (k == prefix or k.startswith(prefix + "."))}
    return _deep_merge(base, top), {**base_at, **top_at}


def _deep_merge(base: Any, top: Any) -> Any:
    if not isinstance(top, dict):
        return top
    if not isinstance(base, dict) or top.get(REPLACE) is True:
        base = {}
    out = dict(base)
    for k, v in top.items():
        if k != REPLACE:
            out[k] = _deep_merge(base.get(k), v)
    return out


def _replaced_prefixes(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return []
    out = [prefix] if tree.get(REPLACE) is True and prefix else []
    for k, v in tree.items():
        out += _replaced_prefixes(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _apply_overrides(
    data: dict, locations: Locations, overrides: list[str] | tuple[str, ...], problems: list[SpecIssue]
) -> None:
    """Apply `key=value` overrides (OmegaConf dotlist syntax; values are YAML: `[a,b]`, `{k: v}`, `2e-6`)."""
    for i, item in enumerate(overrides):
        where = f"override #{i + 1} '{item}'"
        m = _OVERRIDE.match(item)
        if not m:
            problems.append(
                SpecIssue(
                    "",
                    "bad override syntax",
                    where=where,
                    hint="write key=value with a dotted key, e.g. algorithm.learning_rate=2e-6",
                )
            )
            continue
        value, _, found = parse_yaml(m["value"] or "null", where)
        if found:
            problems += [
                SpecIssue(
                    m["key"],
                    f"cannot parse the value: {p.message}",
                    where=where,
                    hint="quote strings with special characters, e.g. key='a: b'",
                )
                for p in found
            ]
            continue
        if not set_dotted(data, m["key"], value):
            problems.append(
                SpecIssue(
                    m["key"],
                    "no list item at this index",
                    where=where,
                    hint="an index must name an existing item; replace the whole list instead",
                )
            )
            continue
        prefix = m["key"]
        for k in [k for k in locations if k.startswith(prefix + ".")]:
            del locations[k]
        locations[prefix] = where
        for k in _leaf_keys(value, prefix):
            locations[k] = where


def set_dotted(data: dict, key: str, value: Any, *, owned: set[int] | None = None) -> bool:
    """Set `a.b.0.c` in nested dicts/lists, creating missing mappings; False if a list index does not exist.

    With `owned` (the ids of the containers the caller may write, `data`'s among them), every other container on
    the path is copied and the copy put in its place first, so data shared with others is never written: a sweep's
    points share their base spec this way instead of deep-copying it each.
    """
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return False
            part = int(part)  # type: ignore[assignment]
        elif not isinstance(node, dict):
            return False
        if last:
            node[part] = value
        else:
            child = node[part] if isinstance(node, list) else node.get(part)
            if not isinstance(child, dict | list):
                child = node[part] = {}
            elif owned is not None and id(child) not in owned:
                child = node[part] = dict(child) if isinstance(child, dict) else list(child)
            if owned is not None:
                owned.add(id(child))
            node = child
    return True


def _leaf_keys(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict):
        return [k2 for k, v in value.items() for k2 in [f"{prefix}.{k}", *_leaf_keys(v, f"{prefix}.{k}")]]
    if isinstance(value, list):
        return [k2 for i, v in enumerate(value) for k2 in [f"{prefix}.{i}", *_leaf_keys(v, f"{prefix}.{i}")]]
    return []


def _interpolate(data: dict, locations: Locations, problems: list[SpecIssue]) -> tuple[dict, set[str]]:
    """Resolve `${...}` everywhere; report each key whose interpolation fails and null it out."""
    keys = _string_leaves(data, "")
    if not keys:  # OmegaConf is only needed, and only imported, when something interpolates
        return data, set()
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.create(data)
    broken: set[str] = set()
    for key in keys:
        try:
            OmegaConf.select(cfg, key, throw_on_missing=True)
        except OmegaConfBaseException as e:
            msg = str(e).splitlines()[0]
            problems.append(
                SpecIssue(
                    key,
                    f"interpolation failed: {msg}",
                    where=where_of(key, locations),
                    hint="refer to an existing key with ${dotted.key}, or ${oc.env:VAR,default}",
                )
            )
            OmegaConf.update(cfg, key, None, force_add=True)
            broken.add(key.replace("[", ".").replace("]", ""))
    return OmegaConf.to_container(cfg, resolve=True), broken  # type: ignore[return-value]


def _string_leaves(tree: Any, prefix: str) -> list[str]:
    if isinstance(tree, dict):
        return [k for key, v in tree.items() for k in _string_leaves(v, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(tree, list):
        return [k for i, v in enumerate(tree) for k in _string_leaves(v, f"{prefix}[{i}]")]
    return [prefix] if isinstance(tree, str) and "${" in tree else []


def where_of(key: str, locations: Locations) -> str | None:
    """The location of `key`, else of a key inside it (an override `foo.bar=1` creates `foo`), else of its nearest
    ancestor that has one."""
    key = key.replace("[", ".").replace("]", "")
    inside = next((at for k, at in locations.items() if k.startswith(key + ".")), None)
    if key not in locations and inside:
        return inside
    parts = key.split(".")
    while parts:
        at = locations.get(".".join(parts))
        if at:
            return at
        parts.pop()
    return None


def validate(data: dict[str, Any], locations: Locations | None = None, *, source: str | None = None, model=None):
    """Validate plain data into `model` (default `ExperimentSpec`), every pydantic error a located `SpecIssue`."""
    from pydantic import ValidationError

    from knowrl.spec._experiment import ExperimentSpec
    from knowrl.spec._problems import issues_from

    model = model or ExperimentSpec
    first = not model.__pydantic_complete__  # spec models build their validators when first used
    try:
        with _without_pydantic_plugins() if first else contextlib.nullcontext():
            return model.model_validate(data)
    except ValidationError as e:
        raise SpecError(issues_from(e, locations or {}, default_where=source, root=model), source=source) from None


@contextlib.contextmanager
def _without_pydantic_plugins():
    """The spec models' validators build with pydantic's plugin discovery off, as typer's parameters do.

    The discovery reads the entry points of every installed distribution, looking for plugins that observe
    validation (logfire's, say): 20-40 ms in a training environment, paid by every `knowrl validate` for a spec
    validated once. Models outside the spec still find the plugins when they build.
    """
    import os

    before = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = before


def load_data_file(path: Path, model):
    """Any YAML the spec loader understands (`extends`, `${...}`), validated into `model` (e.g. a suite)."""
    data, locations = load_data(path)
    return validate(data, locations, source=str(path), model=model)
