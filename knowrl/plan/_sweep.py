"""Sweeps: grid x zip x random axes over dotted keys, expanded into concrete, validated, hashed specs.

Points are applied to the spec's plain data (before validation), each point is
validated on its own, named by the values it changes, and points that hash
the same are merged (reported, never silently dropped).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import random
from dataclasses import dataclass

from knowrl._errors import SpecError


@dataclass
class SweepPoint:
    name: str
    changes: dict
    spec: object
    spec_hash: str
    duplicates: list[str]


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace(" ", "")


def point_changes(sweep) -> list[dict]:
    """The changes of every point, in a stable order: grid (row-major) x zip x random draws."""
    grid_keys = list(sweep.grid)
    grid = [dict(zip(grid_keys, combo, strict=True)) for combo in itertools.product(*sweep.grid.values())] or [{}]
    zipped = [dict(zip(sweep.zip, values, strict=True)) for values in zip(*sweep.zip.values(), strict=True)] or [{}]
    draws = [{}]
    if sweep.random is not None:
        rng = random.Random(sweep.random.seed)
        draws = []
        for _ in range(sweep.random.n):
            point = {}
            for key, axis in sweep.random.params.items():
                if hasattr(axis, "choices"):
                    point[key] = rng.choice(axis.choices)
                else:
                    lo, hi = axis.low, axis.high
                    v = math.exp(rng.uniform(math.log(lo), math.log(hi))) if axis.log else rng.uniform(lo, hi)
                    point[key] = round(v) if axis.integer else v
            draws.append(point)
    return [{**g, **z, **d} for g in grid for z in zipped for d in draws]


def expand(spec, data: dict) -> list[SweepPoint]:
    """Concrete specs for a sweep spec (`data` is its merged plain data, e.g. from `load_data`)."""
    from knowrl.spec import spec_hash, validate
    from knowrl.spec._load import set_dotted

    base = {k: v for k, v in data.items() if k != "sweep"}
    points: dict[str, SweepPoint] = {}
    issues = []
    with _no_cycle_collection():
        for changes in point_changes(spec.sweep):
            d = dict(base)  # a point writes copies of what it changes, and shares the rest (set_dotted's `owned`)
            owned = {id(d)}
            for key, value in changes.items():
                if not set_dotted(d, key, value, owned=owned):
                    raise SpecError([], source=f"sweep key {key}: no list item at that index")
            name = f"{spec.name}/" + ",".join(f"{_short(k)}={_fmt(v)}" for k, v in changes.items())
            d["name"] = spec.name
            try:
                point_spec = validate(d, source=name)
            except SpecError as e:
                issues += e.problems
                continue
            h = spec_hash(point_spec)
            if h in points:
                points[h].duplicates.append(name)
            else:
                points[h] = SweepPoint(name, changes, point_spec, h, [])
    if issues:
        raise SpecError(issues, source=f"sweep of {spec.name}")
    return list(points.values())


@contextlib.contextmanager
def _no_cycle_collection():
    """Python's cycle collector paused while the points are built.

    Every point keeps a validated spec alive, thousands of objects each, so the
    collector's full passes walk an ever larger heap: 3 of the 7 CPU seconds
    of a 10,000-point sweep. Expansion makes no cycles to speak of; reference
    counting frees the rest, and the collector runs again afterwards.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
