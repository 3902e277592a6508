"""Grading throughput: knowrl's Grader vs a naive `math_verify.parse` + `verify` loop.

Builds 50,000 realistic responses (long reasoning, `</think>`, a boxed final
answer; 8-32 samples per problem sharing a few answers; mostly integer golds
with a realistic share of symbolic ones), grades all of them with the Grader
and with the naive loop (BENCH_NAIVE=K grades a random K of them naively, for
a quicker run). Throughputs are compared per response; verdicts must agree
exactly.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

N = int(os.environ.get("BENCH_RESPONSES", "50000"))
NAIVE = int(os.environ.get("BENCH_NAIVE", str(N)))
TARGET = 10.0

# (gold, equivalent spellings, wrong answers)
SYMBOLIC = [
    ("\\frac{1}{2}", ["\\frac{1}{2}", "0.5", "\\dfrac{1}{2}"], ["\\frac{1}{3}", "2"]),
    ("\\frac{3}{4}", ["\\frac{3}{4}", "0.75", "\\frac{6}{8}"], ["\\frac{4}{3}", "\\frac{1}{4}"]),
    ("2\\sqrt{3}", ["2\\sqrt{3}", "\\sqrt{12}", "2 \\sqrt{3}"], ["3\\sqrt{2}", "\\sqrt{6}"]),
    ("\\frac{\\sqrt{2}}{2}", ["\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"], ["\\sqrt{2}", "\\frac{1}{2}"]),
    ("\\pi", ["\\pi"], ["2\\pi", "\\frac{\\pi}{2}"]),
    ("\\frac{\\pi}{4}", ["\\frac{\\pi}{4}", "\\pi/4"], ["\\frac{\\pi}{2}", "45"]),
    ("(1,2)", ["(1,2)", "(1, 2)"], ["(2,1)", "(1,3)"]),
    ("[0,1)", ["[0,1)", "[0, 1)"], ["(0,1)", "[0,1]"]),
    ("\\{1,2,3\\}", ["\\{1,2,3\\}", "\\{3,2,1\\}"], ["\\{1,2\\}"]),
    ("3+2\\sqrt{2}", ["3+2\\sqrt{2}", "2\\sqrt{2}+3"], ["3-2\\sqrt{2}", "5"]),
    ("x^2+1", ["x^2+1", "1+x^{2}"], ["x^2-1", "x+1"]),
    ("-\\frac{5}{2}", ["-\\frac{5}{2}", "-2.5"], ["\\frac{5}{2}", "-2"]),
]
WORDS = [
    "we",
    "consider",
    "the",
    "case",
    "where",
    "the",
    "sum",
    "is",
    "fixed",
    "so",
    "the",
    "remaining",
    "terms",
    "must",
    "balance",
    "and",
    "by",
    "symmetry",
    "the",
    "expression",
    "simplifies;",
    "substituting",
    "back",
    "gives",
    "a",
    "consistent",
    "value",
    "which",
    "we",
    "verify",
]


def make_problem(rng: random.Random) -> tuple[str, list[str], list[str]]:
    if rng.random() < 0.7:  # AIME/AMC-style integer answers dominate the knowrl8 suite
        gold = rng.randrange(0, 1000)
        return str(gold), [str(gold)], [str(gold + d) for d in (1, -1, 10) if gold + d >= 0]
    gold, right, wrong = rng.choice(SYMBOLIC)
    return gold, right, wrong


def make_response(rng: random.Random, answer: str) -> str:
    n = rng.randrange(300, 900)
    reasoning = " ".join(rng.choice(WORDS) for _ in range(n))
    return (
        f"<think>\nOkay, let me solve this. {reasoning} Let me double-check: $x = {rng.randrange(9)}$.\n</think>\n"
        f"Summing up the cases above, the answer is $\\boxed{{{answer}}}$."
    )


def build(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    items: list[tuple[str, str]] = []
    while len(items) < n:
        gold, right, wrong = make_problem(rng)
        p_correct = rng.random()
        pool = [rng.choice(right) if rng.random() < p_correct else rng.choice(wrong) for _ in range(4)]
        for _ in range(rng.choice((8, 16, 32))):  # samples share a handful of answers
            items.append((gold, make_response(rng, rng.choice(pool))))
    return items[:n]


def naive(items: list[tuple[str, str]]) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse("\\boxed{" + gold + "}"), parse(response))) for gold, response in items]


def main() -> None:
    from knowrl.grading import Grader

    items = build(N)
    subset = random.Random(1).sample(range(N), min(NAIVE, N))
    chars = sum(len(r) for _, r in items) / len(items)

    t = time.perf_counter()
    grader = Grader(require_think_close=True, timeout_s=5)
    verdicts = grader.grade_many(items)
    ours_s = time.perf_counter() - t
    grader.close()

    t = time.perf_counter()
    naive_verdicts = naive([items[i] for i in subset])
    naive_s = time.perf_counter() - t

    differ = sum(verdicts[i].correct != v for i, v in zip(subset, naive_verdicts, strict=True))
    ours_rate, naive_rate = N / ours_s, len(subset) / naive_s
    ratio = ours_rate / naive_rate
    accuracy = sum(v.correct for v in verdicts) / N
    rows = [
        ["knowrl Grader (2 cores)", N, f"{ours_s:.1f}", f"{ours_rate:,.0f}"],
        ["naive parse+verify loop", len(subset), f"{naive_s:.1f}", f"{naive_rate:,.0f}"],
    ]
    report(
        f"Grading {N:,} responses ({chars:,.0f} chars on average, accuracy {accuracy:.1%}); "
        f"{differ} of {len(subset):,} verdicts differ from the naive loop",
        ["grader", "responses", "seconds", "responses/s"],
        rows,
        {
            "bench": "grading",
            "ratio": round(ratio, 1),
            "target": f">={TARGET:g}",
            "met": ratio >= TARGET and differ == 0,
            "responses": N,
            "naive_subset": len(subset),
            "verdicts_differ": differ,
            "ours_per_s": round(ours_rate),
            "naive_per_s": round(naive_rate, 1),
        },
    )


if __name__ == "__main__":
    main()
