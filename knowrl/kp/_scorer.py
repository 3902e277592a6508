"""Score a KP subset with policy rollouts: render, sample, grade -- cached and adaptive.

Every rollout is identified by (problem, subset, trial index) and seeded from
it, so a cached rollout and a fresh one are the same draw: the cache (keyed
by model, sampling and prompt settings, persisted as append-only JSONL) makes
"no subset is rolled out twice" exact across strategies and runs.

Adaptive decisions draw rollouts in small batches and stop as soon as a
confidence bound settles "is the accuracy of S at least t?", up to a
per-subset maximum; without `adaptive` each decision uses exactly
`rollouts_per_subset` rollouts.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from knowrl.data import Problem
from knowrl.generation import Generator, SamplingParams, user_prompt
from knowrl.kp._render import render_prompt
from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX

Subset = tuple[int, ...]


def wilson(correct: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Wilson score interval for a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def hoeffding(correct: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Hoeffding interval: p +- sqrt(ln(2/alpha) / 2n)."""
    if n == 0:
        return 0.0, 1.0
    half = math.sqrt(math.log(2 / (1 - confidence)) / (2 * n))
    p = correct / n
    return max(0.0, p - half), min(1.0, p + half)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


class RolloutCache:
    """(problem id, subset) -> per-trial outcomes, for one model + sampling + prompt setting."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._data: dict[tuple[str, Subset], dict[int, bool]] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a torn last line after a crash: everything before it stands
                    continue
                trials = self._data.setdefault((rec["p"], tuple(rec["s"])), {})
                trials.update({rec["i"] + k: bool(o) for k, o in enumerate(rec["o"])})

    def get(self, pid: str, subset: Subset) -> dict[int, bool]:
        return self._data.get((pid, subset), {})

    def put(self, pid: str, trials: Sequence[tuple[Subset, int, bool]]) -> None:
        """Record (subset, trial index, outcome) triples of one problem; one append to the file per call."""
        with self._lock:
            for subset, index, outcome in trials:
                self._data.setdefault((pid, subset), {})[index] = bool(outcome)
            if self.path is not None and trials:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lines = "".join(
                    json.dumps({"p": pid, "s": list(s), "i": i, "o": [int(o)]}) + "\n" for s, i, o in trials
                )
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(lines)


@dataclass(frozen=True)
class ScoringConfig:
    rollouts_per_subset: int = 8
    adaptive: bool = True
    max_rollouts_per_subset: int = 32
    confidence: float = 0.8
    bound: str = "wilson"
    margin: float = 0.25
    """Indifference zone: a subset passes once it is confidently no worse than threshold - margin."""
    batch: int = 2
    """Rollouts per adaptive step."""
    screen: int = 2
    """Rollouts after which a screening question without evidence of harm passes."""

    @classmethod
    def from_spec(cls, hints) -> ScoringConfig:
        """The spec's scoring fields, which carry the same names."""
        return cls(**{f.name: getattr(hints, f.name) for f in fields(cls)})


class RolloutScorer:
    """Scores subsets of one problem at a time; counts the rollouts each problem costs."""

    def __init__(
        self,
        generator: Generator,
        grader,
        config: ScoringConfig,
        sampling: SamplingParams,
        *,
        seed: int = 0,
        suffix: str = DEFAULT_PROMPT_SUFFIX,
        cache_dir: Path | None = None,
        reuse: bool = True,
    ) -> None:
        self.generator, self.grader, self.config, self.sampling = generator, grader, config, sampling
        self.seed, self.suffix = seed, suffix
        self.reuse = reuse
        """False: every question draws new rollouts, as a strategy without a cache would (a baseline)."""
        self._fresh: dict[tuple[str, Subset], int] = {}
        self._references: dict[tuple[str, Subset, int], int] = {}
        """(problem, reference, repeat) -> first trial index of the reference's estimate."""
        self._seen: dict[str, dict[Subset, set[int]]] = {}
        """Per problem: the trials its current selection has looked at, per subset (see `selecting`)."""
        key = json.dumps(
            [
                generator.model_id,
                sampling.temperature,
                sampling.top_p,
                sampling.top_k,
                sampling.max_tokens,
                seed,
                suffix,
            ]
        )
        self.cache_key = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.cache = RolloutCache(cache_dir / f"rollouts-{self.cache_key}.jsonl" if cache_dir else None)
        self.spent: dict[str, int] = {}
        """New rollouts drawn per problem id (cache hits are free)."""

    @contextmanager
    def selecting(self, problem: Problem) -> Iterator[None]:
        """One selection for `problem`: its estimates pool only the trials that this selection looks at.

        So a strategy chooses the same whatever else shares the cache: trials
        that another strategy drew are reused when asked for, never pooled
        uninvited.
        """
        self._seen[problem.id] = {}
        try:
            yield
        finally:
            del self._seen[problem.id]

    # -- drawing -----------------------------------------------------------------------------------------
    def _seed(self, pid: str, subset: Subset, index: int) -> int:
        key = f"{self.seed}/{pid}/{','.join(map(str, subset))}/{index}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> 1

    def _ensure(self, problem: Problem, wants: Sequence[tuple[Subset, int, int]]) -> None:
        """Make trials [start, stop) exist for each (subset, start, stop), in one generate call."""
        jobs: list[tuple[Subset, list[int]]] = []
        for subset, start, stop in wants:
            have = self.cache.get(problem.id, subset)
            missing = [i for i in range(start, stop) if i not in have]
            if missing:
                jobs.append((subset, missing))
        if not jobs:
            return
        # One prompt per trial: every trial has its own seed, and a batch mixes subsets.
        flat = [(subset, i) for subset, missing in jobs for i in missing]
        prompts = [user_prompt(render_prompt(problem, subset, self.suffix)) for subset, _ in flat]
        seeds = [[self._seed(problem.id, subset, i)] for subset, i in flat]
        completions = self.generator.generate(prompts, self.sampling, 1, seeds)
        verdicts = self.grader.grade_many((problem.answer, row[0].text) for row in completions)
        self.cache.put(problem.id, [(subset, i, v.correct) for (subset, i), v in zip(flat, verdicts, strict=True)])
        self.spent[problem.id] = self.spent.get(problem.id, 0) + len(flat)

    def _window(self, pid: str, subset: Subset, repeat: int, size: int) -> int:
        """First trial index of a question's rollouts: fixed per repeat, or new ones when not reusing."""
        if self.reuse:
            return repeat * size
        start = self._fresh.get((pid, subset), 0)
        self._fresh[(pid, subset)] = start + size
        return start

    def _count(self, pid: str, subset: Subset, start: int, stop: int) -> tuple[int, int]:
        have = self.cache.get(pid, subset)
        self._seen.setdefault(pid, {}).setdefault(subset, set()).update(range(start, stop))
        return sum(have[i] for i in range(start, stop)), stop - start

    def _pooled(self, pid: str, subset: Subset) -> tuple[int, int]:
        """(correct, trials) over every trial of `subset` the current selection has looked at."""
        seen, have = self._seen.get(pid, {}).get(subset, ()), self.cache.get(pid, subset)
        return sum(have[i] for i in seen), len(seen)

    # -- what strategies ask -----------------------------------------------------------------------------
    def accuracies(
        self, problem: Problem, subsets: Sequence[Subset], repeat: int = 0, trials: int | None = None
    ) -> list[float]:
        """Point estimates from a fixed number of rollouts; `repeat` r uses its own, independent trials."""
        k = trials or self.config.rollouts_per_subset
        starts = [self._window(problem.id, s, repeat, k) for s in subsets]
        self._ensure(problem, [(s, a, a + k) for s, a in zip(subsets, starts, strict=True)])
        return [self._count(problem.id, s, a, a + k)[0] / k for s, a in zip(subsets, starts, strict=True)]

    def at_least(self, problem: Problem, queries: Sequence[tuple[Subset, float]], repeat: int = 0) -> list[bool]:
        """For each (subset, threshold): is the subset's accuracy >= threshold?

        Adaptive (a sequential test with an indifference zone): rollouts until
        the confidence interval is wholly below t (no), or wholly above
        t - margin (yes: not meaningfully worse), or the maximum is reached
        (then the point estimate against t - margin/2 decides).
        Fixed: exactly `rollouts_per_subset` rollouts and the point estimate.
        """
        cfg = self.config
        if not cfg.adaptive:
            accs = self.accuracies(problem, [s for s, _ in queries], repeat)
            return [a >= t - 1e-12 for a, (_, t) in zip(accs, queries, strict=True)]
        bound = self._bound

        def decide(i: int, c: int, m: int) -> bool | None:
            t = queries[i][1]
            lo, hi = bound(c, m, cfg.confidence)
            if hi < t:  # (for t = 1, "always correct", a single failure refutes)
                return False
            if lo >= t - cfg.margin:
                return True
            return c / m >= t - cfg.margin / 2 if m >= cfg.max_rollouts_per_subset else None

        return self._sequential(problem, [s for s, _ in queries], repeat, decide)

    def not_worse(
        self,
        problem: Problem,
        subsets: Sequence[Subset],
        reference: Subset,
        delta: float = 0.0,
        repeat: int = 0,
        *,
        screen: bool = False,
        strict: bool = False,
    ) -> list[bool]:
        """For each subset S: is a(S) >= a(reference) - delta?

        The reference is estimated once per `repeat` from `rollouts_per_subset`
        rollouts, shared by every question about it. Fixed: each S gets as
        many, and the point estimates decide. Adaptive: S draws rollouts until
        it is *worse* (hi(S) < a_ref - delta) or *not worse* (lo(S) >=
        a_ref - delta - margin), with a_ref the reference's point estimate --
        or, for a `strict` question, its upper confidence bound, so that
        passing also survives the reference's own noise: the price of a wrong
        pass there is a dropped KP that the problem needs. A `screen` question
        only looks for evidence of harm: after `screen` rollouts without it
        whose point estimate is within the margin, S passes, and a later
        strict question is what confirms.
        """
        cfg, k = self.config, self.config.rollouts_per_subset
        key = (problem.id, reference, repeat)
        if key not in self._references:  # once, as a strategy computing its threshold would
            self._references[key] = self._window(problem.id, reference, repeat, k)
        start = self._references[key]
        self._ensure(problem, [(reference, start, start + k)])  # (drawn once: later calls find them cached)
        p_ref = self._count(problem.id, reference, start, start + k)[0] / k
        if not cfg.adaptive:
            return [a >= p_ref - delta - 1e-12 for a in self.accuracies(problem, list(subsets), repeat)]
        bound = self._bound
        accept_at = (bound(round(p_ref * k), k, cfg.confidence)[1] if strict else p_ref) - delta - cfg.margin

        def decide(_: int, c: int, m: int) -> bool | None:
            lo, hi = bound(c, m, cfg.confidence)
            if hi < p_ref - delta:
                return False
            if lo >= accept_at or (screen and m >= cfg.screen and c / m >= p_ref - delta - cfg.margin):
                return True
            return c / m >= p_ref - delta - cfg.margin / 2 if m >= cfg.max_rollouts_per_subset else None

        return self._sequential(problem, list(subsets), repeat, decide)

    @property
    def _bound(self):
        return wilson if self.config.bound == "wilson" else hoeffding

    def _sequential(self, problem: Problem, subsets: list[Subset], repeat: int, decide) -> list[bool]:
        """Draw `batch` rollouts for every open question at once until `decide(j, correct, trials)` answers each.

        (Smaller steps stop some questions a rollout earlier but look more
        often, and on the simulator the extra looks cost more regret than
        the rollouts they save.)
        """
        cfg, pid = self.config, problem.id
        cap = cfg.max_rollouts_per_subset
        base = [self._window(pid, s, repeat, cap) for s in subsets]
        n = [0] * len(subsets)
        decided: dict[int, bool] = {}
        while len(decided) < len(subsets):
            todo = [j for j in range(len(subsets)) if j not in decided]
            for j in todo:
                n[j] = min(cap, n[j] + cfg.batch)
            self._ensure(problem, [(subsets[j], base[j], base[j] + n[j]) for j in todo])
            for j in todo:
                if (verdict := decide(j, *self._count(pid, subsets[j], base[j], base[j] + n[j]))) is not None:
                    decided[j] = verdict
        return [decided[j] for j in range(len(subsets))]

    def best(self, problem: Problem, subsets: Sequence[Subset], repeat: int) -> int:
        """Which subset has the highest accuracy (ties: the earlier)?

        Fixed: the pooled estimates decide. Adaptive: a race between the two
        leaders on everything the selection has seen of them plus new trials
        from window `repeat`, until their confidence intervals part or both
        have `max_rollouts_per_subset` trials -- the estimates a sequential
        test leaves behind are too short to rank near-equal candidates by.
        """
        cfg, pid = self.config, problem.id
        cap = cfg.max_rollouts_per_subset
        base = [self._window(pid, s, repeat, cap) for s in subsets]
        drawn = [0] * len(subsets)
        while True:
            pooled = [self._pooled(pid, s) for s in subsets]
            order = sorted(range(len(subsets)), key=lambda j: (-pooled[j][0] / max(pooled[j][1], 1), j))
            if not cfg.adaptive or len(order) < 2:
                return order[0]
            a, b = order[:2]
            if self._bound(*pooled[a], cfg.confidence)[0] > self._bound(*pooled[b], cfg.confidence)[1]:
                return a
            grow = [j for j in (a, b) if pooled[j][1] < cap and drawn[j] < cap]
            if not grow:
                return a
            for j in grow:
                drawn[j] = min(cap, drawn[j] + cfg.batch)
            self._ensure(problem, [(subsets[j], base[j], base[j] + drawn[j]) for j in grow])
            for j in grow:
                self._count(pid, subsets[j], base[j], base[j] + drawn[j])

    def estimate(self, problem: Problem, subset: Subset) -> float:
        """The accuracy over every trial of this subset the current selection has looked at (NaN: none)."""
        correct, n = self._pooled(problem.id, subset)
        return correct / n if n else float("nan")
