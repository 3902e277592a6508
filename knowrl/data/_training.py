"""The training problems of a spec and the KP hints each gets: what every trainer and data job starts from.

Below the backends (which render them into their formats) and the runtime
(whose jobs train on them), so neither reaches into the other for them.
"""

from __future__ import annotations

from pathlib import Path

from knowrl.data._problem import Problem
from knowrl.data._sources import load_problems


def train_problems(spec) -> list[Problem]:
    out: list[Problem] = []
    for source in spec.data.train:
        out += load_problems(source.source, source.format, limit=source.limit, suffix=spec.data.prompt_suffix).problems
    return out


def selections_for(spec, run: Path, problems: list[Problem]) -> dict[str, tuple[int, ...]]:
    """KP indices per problem for training prompts: computed by the kp_select job, or precomputed in the data."""
    h = spec.hints
    if h.source == "compute" and h.strategy != "none":
        selected = {
            p.id: p.selections[h.strategy] for p in load_problems(str(run / "kp_select" / "selections.jsonl")).problems
        }
        return {p.id: selected.get(p.id, ()) for p in problems}
    return {p.id: p.selection(h.field or h.strategy) for p in problems}
