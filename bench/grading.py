"""Grading throughput: knowrl's Grader vs a naive `math_verify.parse` + `verify` loop.

Builds 50,000 realistic responses (long reasoning, then `</think>` and the
final answer; 8-32 samples per problem; mostly integer golds with a realistic
share of symbolic ones) and grades all of them with the Grader and with the
naive loop (BENCH_NAIVE=K grades a random K of them naively, for a quicker
run). Every sample draws its own answer -- one of the gold's spellings with
the problem's accuracy, else a wrong answer from a wide range -- and its own
form: mostly boxed, some cut off before `</think>` (truncated), some answered
in words with no box, some boxed inside `$...$` or with `\text{}`; so samples
of one problem share answers only as often as chance makes them. Throughputs
are compared per response (the naive loop, run in the same process, is the
baseline); verdicts must agree exactly.

A second table times pathological answers (towers of powers, deep nesting)
against the grading timeout: each must come back within the timeout plus a
worker restart (3x the timeout).
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
        near = {gold + d for d in range(-60, 61) if d and gold + d >= 0}
        return str(gold), [str(gold), f"{gold}.0"], sorted(map(str, near))
    gold, right, wrong = rng.choice(SYMBOLIC)
    return gold, right, [*wrong, *(str(rng.randrange(-20, 100)) for _ in range(20))]


def make_response(rng: random.Random, answer: str) -> str:
    n = rng.randrange(300, 900)
    reasoning = " ".join(rng.choice(WORDS) for _ in range(n))
    head = f"<think>\nOkay, let me solve this. {reasoning} Let me double-check: $x = {rng.randrange(9)}$.\n"
    form = rng.random()
    if form < 0.05:  # cut off at the length limit, inside the reasoning
        return head
    if form < 0.10:  # answered in words, no box: math-verify's own extraction on the end of the text
        return head + f"</think>\nPutting it together, the final answer is {answer}."
    if form < 0.18:
        boxed = f"$\\boxed{{{answer}}}$" if rng.random() < 0.5 else f"\\boxed{{\\text{{{answer}}}}}"
        return head + f"</think>\nSo we get {boxed}."
    return head + f"</think>\nSumming up the cases above, the answer is $\\boxed{{{answer}}}$."


def build(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    items: list[tuple[str, str]] = []
    while len(items) < n:
        gold, right, wrong = make_problem(rng)
        p_correct = rng.random()
        for _ in range(rng.choice((8, 16, 32))):  # each sample draws its own answer and form
            answer = rng.choice(right) if rng.random() < p_correct else rng.choice(wrong)
            items.append((gold, make_response(rng, answer)))
    return items[:n]


def naive(items: list[tuple[str, str]]) -> list[bool]:
    """The reward as a plain loop: no `</think>`, no reward; else math-verify on what follows it."""
    from math_verify import parse, verify

    out = []
    for gold, response in items:
        final = response.rsplit("</think>", 1)[1] if "</think>" in response else None
        out.append(final is not None and bool(verify(parse("\\boxed{" + gold + "}"), parse(final))))
    return out


PATHOLOGICAL_TIMEOUT_S = 2.0
PATHOLOGICAL = ["2^{10^{10}}", "10^{10^{10^{10}}}", "9^{9^{9^{9}}}-1", "(" * 400 + "1" + ")" * 400]


def pathological(timeout_s: float) -> list[tuple[str, float, str]]:
    """(answer, seconds, reason) for answers built to stall a checker, each graded alone by a fresh grader."""
    from knowrl.grading import Grader

    grader = Grader(timeout_s=timeout_s, workers=2)
    out = []
    try:
        grader.grade("1", "<think>warm</think> \\boxed{\\frac{2}{2}}")  # the pool is up before the clock starts
        for answer in PATHOLOGICAL:
            t = time.perf_counter()
            v = grader.grade("\\frac{3}{7}", f"<think>x</think> \\boxed{{{answer}}}")
            out.append((answer if len(answer) < 24 else answer[:21] + "...", time.perf_counter() - t, v.reason))
    finally:
        grader.close()
    return out


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
    distinct = len({(gold, response.rsplit("</think>", 1)[-1]) for gold, response in items}) / N
    stalls = pathological(PATHOLOGICAL_TIMEOUT_S)
    worst = max(seconds for _, seconds, _ in stalls) / PATHOLOGICAL_TIMEOUT_S
    rows = [
        ["knowrl Grader (2 cores)", N, f"{ours_s:.1f}", f"{ours_rate:,.0f}"],
        ["naive parse+verify loop (baseline)", len(subset), f"{naive_s:.1f}", f"{naive_rate:,.0f}"],
        *[
            [f"pathological {a} ({reason})", 1, f"{sec:.1f}", f"{sec / PATHOLOGICAL_TIMEOUT_S:.1f}x the timeout"]
            for a, sec, reason in stalls
        ],
    ]
    report(
        f"Grading {N:,} responses ({chars:,.0f} chars on average, accuracy {accuracy:.1%}, {distinct:.0%} of "
        f"final answers distinct per gold); {differ} of {len(subset):,} verdicts differ from the naive loop",
        ["grader", "responses", "seconds", "responses/s"],
        rows,
        {
            "bench": "grading",
            "ratio": round(ratio, 1),
            "baseline": "a naive math_verify parse + verify loop over the same responses, same run",
            "target": f">={TARGET:g}x, verdicts identical, a pathological answer within 3x the timeout",
            "met": ratio >= TARGET and differ == 0 and worst <= 3,
            "responses": N,
            "naive_subset": len(subset),
            "verdicts_differ": differ,
            "distinct_final_answers": round(distinct, 3),
            "ours_per_s": round(ours_rate),
            "naive_per_s": round(naive_rate, 1),
            "pathological_worst_over_timeout": round(worst, 2),
        },
    )


if __name__ == "__main__":
    main()
