"""KP selection strategies: which subset of a problem's KPs goes into its hint.

Notation: F is the full KP list, a(S) the rollout accuracy with the hint S,
F-i the full list without KP i, and delta the strategy's tolerance.

- none       -> {}
- all        -> F
- random     -> a seeded random subset; |S| = `size`, or floor(m) + Bernoulli(frac(m)) with m = `match_mean`
- max_score  -> argmax a(S) over S in {{}, F, F-i for each i}; ties go to fewer KPs, then to the earlier candidate
- s_loo      -> F minus every i with a(F-i) >= a(F), all dropped at once
- t_loo      -> F minus every i with a(F-i) >= a(F) - delta, all dropped at once
- cbrs       -> {} if a({}) >= solved_threshold; otherwise F-i* for the single i whose removal is harmless
                (a(F-i) >= a(F) - delta) in each of `repeats` independent estimates, choosing the one with the
                highest a(F-i) (ties: lower index; see `RolloutScorer.best`); F if no KP is consistently
                harmless
- css        -> {} if a({}) >= solved_threshold; otherwise screen R = {i : a(F-i) >= a(F) - delta}, then try
                removal sets T from R, largest first (lexicographic within a size), and return the first F-T
                whose joint accuracy still satisfies a(F-T) >= a(F) - delta; KPs removable one by one can hurt
                together (the pruning interaction paradox), so every set is re-checked jointly -- single
                removals included, since the screen only rules out KPs whose removal visibly hurts. The
                joint checks are `strict` (see `RolloutScorer.not_worse`). When the rollout `budget` runs
                out before a set passes, F is returned: no smaller subset has been verified.

Scored strategies ask their scorer four questions -- point estimates, "is
a(S) >= t?", "is a(S) >= a(R) - delta?" and "which S has the highest a(S)?"
-- so unit tests can drive them with exact accuracies.
"""

from __future__ import annotations

import math
import random
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import combinations
from typing import Protocol

from knowrl.data import Problem

Subset = tuple[int, ...]


class Scorer(Protocol):
    spent: dict[str, int]

    def accuracies(self, problem: Problem, subsets: list[Subset], repeat: int = 0) -> list[float]: ...

    def at_least(self, problem: Problem, queries: list[tuple[Subset, float]], repeat: int = 0) -> list[bool]: ...

    def not_worse(
        self, problem: Problem, subsets: list[Subset], reference: Subset, delta: float, repeat: int = 0, **how
    ) -> list[bool]: ...

    def best(self, problem: Problem, subsets: list[Subset], repeat: int) -> int: ...

    def selecting(self, problem: Problem) -> AbstractContextManager: ...

    def estimate(self, problem: Problem, subset: Subset) -> float: ...


@dataclass
class Selection:
    """The outcome of selecting KPs for one problem."""

    indices: Subset
    rollouts: int = 0
    trace: list[dict] = field(default_factory=list)
    estimated: float | None = None
    """Estimated accuracy of the chosen subset (None when the strategy never scored it)."""
    empty: float | None = None
    full: float | None = None


def _without(full: Subset, drop) -> Subset:
    drop = set(drop)
    return tuple(i for i in full if i not in drop)


class _Run:
    """One problem's selection: the scorer plus a trace of every question asked."""

    def __init__(self, problem: Problem, scorer: Scorer) -> None:
        self.problem, self.scorer, self.trace = problem, scorer, []
        self.start = scorer.spent.get(problem.id, 0)

    def _log(self, step: str, repeat: int, subsets, answers, before: int, **common) -> None:
        """One trace entry per subset asked about; the last carries the rollouts the question cost."""
        self.trace += [
            {"step": step, "subset": list(s), "repeat": repeat, **common, **answer}
            for s, answer in zip(subsets, answers, strict=True)
        ]
        self.trace[-1]["rollouts"] = self.spent - before

    def acc(self, subsets: list[Subset], step: str, repeat: int = 0) -> list[float]:
        before = self.spent
        accs = self.scorer.accuracies(self.problem, subsets, repeat)
        self._log(step, repeat, subsets, [{"accuracy": a} for a in accs], before)
        return accs

    def test(self, queries: list[tuple[Subset, float]], step: str, repeat: int = 0) -> list[bool]:
        before = self.spent
        answers = self.scorer.at_least(self.problem, queries, repeat)
        rows = [{"threshold": t, "passed": ok} for (_, t), ok in zip(queries, answers, strict=True)]
        self._log(step, repeat, [s for s, _ in queries], rows, before)
        return answers

    def compare(self, subsets: list[Subset], reference: Subset, delta: float, step: str, repeat: int = 0, **how):
        """Is a(S) >= a(reference) - delta, for each S (`how`: the scorer's `screen` / `strict`)."""
        before = self.spent
        answers = self.scorer.not_worse(self.problem, subsets, reference, delta, repeat, **how)
        ref = {"reference": list(reference), "reference_estimate": self.scorer.estimate(self.problem, reference)}
        self._log(step, repeat, subsets, [{"passed": ok} for ok in answers], before, **ref, delta=delta, **how)
        return answers

    def best(self, subsets: list[Subset], step: str, repeat: int) -> int:
        """The index of the subset with the highest accuracy."""
        before = self.spent
        j = self.scorer.best(self.problem, subsets, repeat)
        rows = [{"accuracy": self.scorer.estimate(self.problem, s), "chosen": k == j} for k, s in enumerate(subsets)]
        self._log(step, repeat, subsets, rows, before)
        return j

    @property
    def spent(self) -> int:
        return self.scorer.spent.get(self.problem.id, 0) - self.start

    def done(self, chosen: Subset, full: Subset) -> Selection:
        est = self.scorer.estimate

        def known(s: Subset) -> float | None:
            v = est(self.problem, s)
            return None if math.isnan(v) else v

        return Selection(chosen, self.spent, self.trace, known(chosen), known(()), known(full))


def select_kps(problem: Problem, hints, scorer: Scorer | None) -> Selection:
    """Apply the strategy `hints` (a spec `hints` model) to one problem."""
    n, name = len(problem.kps), hints.strategy
    full: Subset = tuple(range(n))
    if name == "none" or n == 0:
        return Selection(())
    if name == "all":
        return Selection(full)
    if name == "random":
        rng = random.Random(f"{hints.seed}/{problem.id}")
        if hints.size is not None:
            size = min(hints.size, n)
        else:
            m = min(hints.match_mean, n)
            size = int(m) + (rng.random() < m - int(m))
        return Selection(tuple(sorted(rng.sample(range(n), min(size, n)))))
    if scorer is None:
        raise ValueError(f"strategy {name} scores subsets with rollouts and needs a scorer")
    rule = {"max_score": _max_score, "s_loo": _loo, "t_loo": _loo, "cbrs": _cbrs, "css": _css}[name]
    with scorer.selecting(problem):
        return rule(_Run(problem, scorer), hints, full)


def _max_score(run: _Run, hints, full: Subset) -> Selection:
    candidates = list(dict.fromkeys([(), full, *(_without(full, [i]) for i in full)]))
    accs = run.acc(candidates, "candidate")
    best = max(range(len(candidates)), key=lambda j: (accs[j], -len(candidates[j]), -j))
    return run.done(candidates[best], full)


def _loo(run: _Run, hints, full: Subset) -> Selection:
    delta = getattr(hints, "delta", 0.0)
    ok = run.compare([_without(full, [i]) for i in full], full, delta, "leave-one-out")
    return run.done(_without(full, [i for i, keep in zip(full, ok, strict=True) if keep]), full)


def _solved(run: _Run, hints) -> bool:
    return run.test([((), hints.solved_threshold)], "solved-without-hints")[0]


def _cbrs(run: _Run, hints, full: Subset) -> Selection:
    if _solved(run, hints):
        return run.done((), full)
    harmless = list(full)
    for r in range(hints.repeats):
        ok = run.compare([_without(full, [i]) for i in harmless], full, hints.delta, "leave-one-out", repeat=r)
        harmless = [i for i, keep in zip(harmless, ok, strict=True) if keep]
        if not harmless:
            return run.done(full, full)
    best = harmless[run.best([_without(full, [i]) for i in harmless], "highest", repeat=hints.repeats)]
    return run.done(_without(full, [best]), full)


def _css(run: _Run, hints, full: Subset) -> Selection:
    if _solved(run, hints):
        return run.done((), full)
    ok = run.compare([_without(full, [i]) for i in full], full, hints.delta, "screen", screen=True)
    removable = [i for i, keep in zip(full, ok, strict=True) if keep]
    for size in range(len(removable), 0, -1):
        for drop in combinations(removable, size):
            if run.spent >= hints.budget:
                run.trace.append({"step": "budget-exhausted", "spent": run.spent})
                return run.done(full, full)
            candidate = _without(full, drop)
            if run.compare([candidate], full, hints.delta, f"joint-remove-{size}", strict=True)[0]:
                return run.done(candidate, full)
    return run.done(full, full)
