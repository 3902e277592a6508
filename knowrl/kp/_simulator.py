"""A simulator with known truth, for measuring selection strategies without a model.

Each problem's true accuracy for every KP subset is known: a few critical KPs
unlock it, substitute pairs need at least one member present (each alone is
removable, both together are not: the pruning interaction paradox), harmful
KPs cost accuracy when present, the rest are redundant. About half of the
problems are solved without hints. `SimGenerator` answers prompts with
Bernoulli rollouts at the true accuracy of the hint it reads back from the
prompt, so strategies run through the real render -> generate -> grade path.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from knowrl.data import Problem
from knowrl.generation import Completion, Messages, SamplingParams

_KP = re.compile(r"^\d+\. KP (\d+):", re.M)


@dataclass(frozen=True)
class SimProblem:
    problem: Problem
    critical: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    harmful: tuple[int, ...]
    p_locked: float
    p_unlocked: float
    harm: float = 0.15

    def accuracy(self, subset: Sequence[int]) -> float:
        s = set(subset)
        unlocked = set(self.critical) <= s and all(a in s or b in s for a, b in self.pairs)
        p = (self.p_unlocked if unlocked else self.p_locked) - self.harm * len(s & set(self.harmful))
        return min(1.0, max(0.0, p))

    def best_minimal(self, delta: float = 0.0) -> tuple[tuple[int, ...], float]:
        """The smallest subsets within `delta` of the full set's accuracy; the most accurate of them."""
        n = len(self.problem.kps)
        target = self.accuracy(range(n)) - delta
        for size in range(n + 1):
            feasible = [c for c in combinations(range(n), size) if self.accuracy(c) >= target - 1e-12]
            if feasible:
                best = max(feasible, key=self.accuracy)
                return best, self.accuracy(best)
        raise AssertionError("the full set is always feasible")

    def fooled(self, subset: Sequence[int]) -> bool:
        """Did a selection drop both KPs of a substitute pair (each removable alone, not together)?"""
        s = set(subset)
        return any(a not in s and b not in s for a, b in self.pairs)


def make_problems(count: int, seed: int = 0) -> list[SimProblem]:
    rng = random.Random(seed)
    out = []
    for k in range(count):
        n = rng.randint(3, 8)
        kps = tuple(f"KP {i}: fact number {i} about problem {k}." for i in range(n))
        problem = Problem(id=f"sim{k}", benchmark="sim", problem=f"Simulated problem {k}.", answer=str(k), kps=kps)
        if rng.random() < 0.45:  # solved without hints
            out.append(SimProblem(problem, (), (), (), 1.0, 1.0))
            continue
        order = list(range(n))
        rng.shuffle(order)
        critical = tuple(sorted(order[: rng.randint(1, min(2, n - 1))]))
        rest = order[len(critical) :]
        pairs = ()
        if len(rest) >= 2 and rng.random() < 0.5:
            pairs, rest = ((min(rest[0], rest[1]), max(rest[0], rest[1])),), rest[2:]
        harmful = (rest.pop(),) if rest and rng.random() < 0.3 else ()
        out.append(SimProblem(problem, critical, pairs, harmful, rng.uniform(0.0, 0.15), rng.uniform(0.7, 1.0)))
    return out


class SimGenerator:
    """Bernoulli rollouts at the true accuracy of the hint in the prompt, seeded by the sample seed."""

    model_id = "simulator"

    def __init__(self, problems: list[SimProblem]) -> None:
        self.by_text = {p.problem.problem: p for p in problems}
        self.calls = 0

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        self.calls += 1
        out = []
        for messages, row in zip(prompts, seeds, strict=True):
            text = messages[-1]["content"]
            sim = self.by_text[text.split("\n\n", 1)[0]]
            acc = sim.accuracy([int(i) for i in _KP.findall(text)])
            gold = sim.problem.answer
            out.append(
                [
                    Completion(
                        f"</think> \\boxed{{{gold if random.Random(s).random() < acc else gold + '1'}}}", 4, "stop", s
                    )
                    for s in row
                ]
            )
        return out

    def close(self) -> None:
        pass
