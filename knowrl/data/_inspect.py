"""`knowrl data inspect`: what a dataset holds, in the paper's terms."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from knowrl.data._sources import LoadResult


@dataclass
class SelectionStats:
    name: str
    problems: int
    """Problems that carry this selection."""
    mean_size: float
    empty: int


@dataclass
class DataStats:
    source: str
    format: str
    records: int
    skipped: int
    benchmarks: dict[str, int]
    mean_kps: float
    selections: list[SelectionStats]

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_result(result: LoadResult) -> DataStats:
    problems = result.problems
    names = sorted({name for p in problems for name in p.selections})
    selections = []
    for name in names:
        sizes = [len(p.selections[name]) for p in problems if name in p.selections]
        selections.append(SelectionStats(name, len(sizes), sum(sizes) / len(sizes), sum(s == 0 for s in sizes)))
    return DataStats(
        source=result.source,
        format=result.format,
        records=len(problems),
        skipped=len(result.skipped),
        benchmarks=dict(sorted(Counter(p.benchmark for p in problems).items())),
        mean_kps=sum(len(p.kps) for p in problems) / len(problems) if problems else 0.0,
        selections=selections,
    )
