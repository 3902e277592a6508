"""Honest metrics: avg@N, unbiased pass@k, maj@N, lengths, truncation, sparsity.

A suite's headline number is the unweighted mean of its per-benchmark scores
(the paper's "Avg."), never a mean over problems, so MATH-500's 500 problems
do not drown AIME's 30.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), computed stably."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def ks_for(n: int) -> list[int]:
    """1, 2, 4, ... up to n (n itself included)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n]


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> float:
    """maj@N: the expected correctness of the majority answer, ties broken uniformly at random.

    Every correct answer is equivalent to the gold, so correct samples vote
    together whatever their spelling; wrong answers vote by normalised text;
    samples without an answer abstain.
    """
    from knowrl.grading import normalize

    votes: Counter[str] = Counter()
    for answer, ok in zip(answers, correct, strict=True):
        if ok:
            votes["\0correct"] += 1
        elif answer is not None:
            votes[normalize(answer)] += 1
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [a for a, v in votes.items() if v == top]
    return ("\0correct" in tied) / len(tied)


@dataclass(frozen=True)
class Sample:
    """The fields of one graded sample that metrics need."""

    problem_id: str
    correct: bool
    answer: str | None
    tokens: int
    truncated: bool
    kps: int


def shard_metrics(samples: Iterable[Sample]) -> dict[str, float]:
    """Metrics of one (benchmark, hint mode) shard; every problem must have the same number of samples."""
    by_problem: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_problem[s.problem_id].append(s)
    if not by_problem:
        raise ValueError("no samples")
    sizes = {len(v) for v in by_problem.values()}
    if len(sizes) != 1:
        raise ValueError(f"problems have different sample counts: {sorted(sizes)}")
    n = sizes.pop()
    rows = list(by_problem.values())
    flat = [s for r in rows for s in r]
    counts = [sum(s.correct for s in r) for r in rows]
    out = {
        "problems": float(len(rows)),
        "samples": float(n),
        "accuracy": sum(counts) / (n * len(rows)),
        "maj": sum(majority_correct([s.answer for s in r], [s.correct for s in r]) for r in rows) / len(rows),
        "mean_length": sum(s.tokens for s in flat) / len(flat),
        "truncation_rate": sum(s.truncated for s in flat) / len(flat),
        "mean_kps": sum(r[0].kps for r in rows) / len(rows),
        "zero_correct": sum(c == 0 for c in counts) / len(rows),
        "all_correct": sum(c == n for c in counts) / len(rows),
    }
    out[f"avg@{n}"], out[f"maj@{n}"] = out["accuracy"], out["maj"]
    for k in ks_for(n):
        out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in counts) / len(rows)
    return out


def correct_count_distribution(samples: Iterable[Sample]) -> dict[int, int]:
    """Problems per number of correct samples (0..N): the paper's reward-sparsity figure."""
    by_problem: dict[str, int] = defaultdict(int)
    n_per: dict[str, int] = defaultdict(int)
    for s in samples:
        by_problem[s.problem_id] += s.correct
        n_per[s.problem_id] += 1
    n = max(n_per.values(), default=0)
    hist = dict.fromkeys(range(n + 1), 0)
    for c in by_problem.values():
        hist[c] += 1
    return hist


def suite_means(per_benchmark: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The suite level: the plain mean over benchmarks of every metric that all of them report.

    `accuracy` (avg@N whatever N is) and `maj` are common to all; pass@k only
    for the k every benchmark has.
    """
    if not per_benchmark:
        return {}
    common = set.intersection(*(set(m) for m in per_benchmark.values())) - {"problems", "samples"}
    return {k: sum(m[k] for m in per_benchmark.values()) / len(per_benchmark) for k in sorted(common)}
