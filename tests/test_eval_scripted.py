"""Metrics, confidence intervals and KP selection end to end on a generator whose answers are known.

Each figure below is worked out by hand from the script, then compared with
what generation -> grading -> metrics (or selection, or the paired bootstrap)
computes: the tiny random model, which scores 0 everywhere, cannot tell a
right formula from a wrong one.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datafiles import write_jsonl
from scripted import ScriptedGenerator, answers_by_index

from knowrl.data import Problem
from knowrl.eval import AVG, EvalRequest, resolve_suite, run_eval
from knowrl.kp import make_selector, select_kps, strategy_spec

KPS = ["Halving a number.", "Counting sides.", "Doubling a number."]


def suite(tmp_path: Path, benchmarks: dict[str, list[dict]], samples: int):
    lines = []
    for name, records in benchmarks.items():
        data = write_jsonl(tmp_path / f"{name}.jsonl", records)
        lines.append(f"  - {{name: {name}, source: {data}, format: plain, samples: {samples}}}")
    (tmp_path / "suite.yaml").write_text("name: scripted\nbenchmarks:\n" + "\n".join(lines) + "\n")
    return resolve_suite(str(tmp_path / "suite.yaml"))


# Four samples each. p1: right twice (two spellings of 1/2), "7" twice -- a tie for the majority;
# p2: right once against three different wrong answers -- a four-way tie; p3: no answer twice, "9" twice.
ANSWERS = {
    "p1 problem": ["1/2", "0.5", "7", "7"],
    "p2 problem": ["3", "4", "5", "6"],
    "p3 problem": [None, None, "9", "9"],
    "q1 problem": ["2", "2", "2", "2"],
}
GOLDS = {"p1 problem": "\\frac{1}{2}", "p2 problem": "6", "p3 problem": "1", "q1 problem": "2"}


def records(names):
    return [{"id": n.split()[0], "problem": n, "answer": GOLDS[n], "kp_list": KPS} for n in names]


def test_avg_pass_and_maj_at_n_match_the_hand_computed_values(tmp_path):
    s = suite(tmp_path, {"P": records(["p1 problem", "p2 problem", "p3 problem"]), "Q": records(["q1 problem"])}, 4)
    hinted = {k: [GOLDS[k]] * 4 for k in ANSWERS}  # with every KP shown, every sample is right
    gen = ScriptedGenerator(answers_by_index(ANSWERS, hinted=hinted))
    result = run_eval(gen, EvalRequest(s, ["none", "all"]), tmp_path / "out")
    m = result.scores[("P", "none")]
    correct = [2, 1, 0]  # per problem, of n = 4
    assert m["accuracy"] == m["avg@4"] == pytest.approx(3 / 12)
    assert m["pass@1"] == pytest.approx(3 / 12)
    pass2 = [1 - comb(4 - c, 2) / comb(4, 2) for c in correct]  # 5/6, 1/2, 0
    assert pass2 == pytest.approx([5 / 6, 1 / 2, 0]) and m["pass@2"] == pytest.approx(4 / 9)
    assert m["pass@4"] == pytest.approx(2 / 3)
    # maj@4: p1 ties 2 right (1/2 and 0.5 vote together) with 2 x "7": 1/2; p2 ties four ways: 1/4;
    # p3's "9" wins (no answer abstains): 0
    assert m["maj"] == m["maj@4"] == pytest.approx((1 / 2 + 1 / 4 + 0) / 3)
    assert (m["zero_correct"], m["all_correct"], m["mean_kps"]) == (pytest.approx(1 / 3), 0.0, 0.0)
    assert result.distribution[("P", "none")] == {0: 1, 1: 1, 2: 1, 3: 0, 4: 0}
    assert result.scores[("P", "all")]["accuracy"] == 1.0 and result.scores[("P", "all")]["mean_kps"] == 3.0
    # the suite's Avg. is the plain mean over benchmarks: (3/12 + 1) / 2, not over problems (3 + 4) / 16
    assert result.scores[(AVG, "none")]["accuracy"] == pytest.approx((3 / 12 + 1) / 2)
    rows = pq.read_table(tmp_path / "out/samples/P/none.parquet").to_pylist()
    assert [r["correct"] for r in rows if r["problem_id"] == "p1"] == [True, True, False, False]
    assert [r["reason"] for r in rows if r["problem_id"] == "p3"] == ["no_answer", "no_answer", "mismatch", "mismatch"]


def needs(*kps: str):
    """A script that answers right exactly when every one of `kps` is in the hint."""

    def script(problem: str, shown: tuple[str, ...], j: int, seed: int) -> str:
        return GOLDS.get(problem, "6") if set(kps) <= set(shown) else "41"

    return script


def problem(pid: str) -> Problem:
    return Problem(id=pid, benchmark="t", problem="p2 problem", answer="6", kps=tuple(KPS))


def scorer_for(script, tmp_path: Path, strategy: str):
    from knowrl.grading import Grader
    from knowrl.kp import make_scorer

    grader = Grader(require_think_close=True, workers=1)
    hints = strategy_spec(strategy, rollouts_per_subset=4, max_rollouts_per_subset=8)
    return make_scorer(ScriptedGenerator(script), grader, hints, cache_dir=tmp_path / strategy), hints, grader


@pytest.mark.parametrize(
    ("script", "css", "cbrs"),
    [
        (needs("Doubling a number."), (2,), (1, 2)),  # CBRS drops one harmless KP: of the tie, the lower index
        (needs("Halving a number.", "Counting sides."), (0, 1), (0, 1)),  # both needed; Doubling is harmless
        (needs(), (), ()),  # solved without a hint: nothing is shown
    ],
)
def test_selection_keeps_exactly_what_the_script_needs(tmp_path, script, css, cbrs):
    for strategy, want in (("css", css), ("cbrs", cbrs)):
        scorer, hints, grader = scorer_for(script, tmp_path, strategy)
        try:
            sel = select_kps(problem("x"), hints, scorer)
        finally:
            grader.close()
        assert sel.indices == want, (strategy, sel.trace)
        if not want:  # solved bare: the check for it is all that was drawn, and no hinted prompt was ever made
            assert sel.rollouts == solved_after() and not any("## Hint" in t for t in scorer.generator.prompts)


def wilson_low(c: int, n: int, z: float) -> float:
    p = c / n
    return (p + z * z / (2 * n) - z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)


def solved_after(batch: int = 2, confidence: float = 0.8, margin: float = 0.25) -> int:
    """Rollouts until "solved without hints" (threshold 1) passes when every one is right: the first n, in steps of
    `batch`, whose Wilson lower bound reaches 1 - margin (n = 2: 0.55, 4: 0.71, 6: 0.79 -- six)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return next(n for n in range(batch, 100, batch) if wilson_low(n, n, z) >= 1 - margin)


def test_the_hand_computed_stopping_point():
    assert solved_after() == 6


def test_test_time_selection_in_eval_scores_the_selected_prompts(tmp_path):
    """`select:css` picks Doubling for each problem, so every sample is right and one KP is shown."""
    s = suite(tmp_path, {"P": records(["p1 problem", "p2 problem"])}, 2)
    gen = ScriptedGenerator(needs("Doubling a number."))
    selector = make_selector(gen, like=strategy_spec("css", rollouts_per_subset=4))  # rollouts graded by the eval
    result = run_eval(gen, EvalRequest(s, ["none", "select:css"]), tmp_path / "out", selector=selector)
    assert result.scores[("P", "none")]["accuracy"] == 0.0
    assert result.scores[("P", "select:css")]["accuracy"] == 1.0
    assert result.scores[("P", "select:css")]["mean_kps"] == 1.0
    shown = [p for p in gen.prompts if "## Hint" in p and p.startswith("p1 problem")]
    assert shown and shown[-1].endswith(f"## Hint\n1. {KPS[2]}\n\n" + EvalRequest(s, []).suffix)


def paired_ci(db: Path, deltas: dict[str, list[int]], seed: int = 0) -> dict:
    """The registry's paired bootstrap on two arms whose per-problem accuracies differ by `deltas` (0 or 1)."""
    import duckdb

    from knowrl.registry._compare import Arm, paired_arms

    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE eval_samples (run_id TEXT, checkpoint TEXT, hint_mode TEXT, benchmark TEXT, problem_id TEXT,"
        " correct BOOLEAN)"
    )
    rows = []
    for bench, ds in deltas.items():
        for i, d in enumerate(ds):
            pid = f"{bench}{i}"
            rows += [("r", "base", "none", bench, pid, False), ("r", "final", "none", bench, pid, bool(d))]
    con.executemany("INSERT INTO eval_samples VALUES (?, ?, ?, ?, ?, ?)", rows)
    return paired_arms(con, Arm("r", "base", "none"), Arm("r", "final", "none"), seed=seed)


def binomial_quantile(n: int, p: float, q: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q."""
    total = 0.0
    for k in range(n + 1):
        total += comb(n, k) * p**k * (1 - p) ** (n - k)
        if total >= q - 1e-12:
            return k
    return n


def test_paired_bootstrap_ci_matches_the_hand_computed_interval(tmp_path):
    # Every problem 1 point better in one benchmark, none in the other: the Avg. moves 50 points on every resample.
    flat = paired_ci(tmp_path / "a.duckdb", {"A": [1] * 10, "B": [0] * 10})
    assert flat["avg_delta"] == 50.0 and flat["ci95"] == [50.0, 50.0] and flat["problems"] == 20
    # 40 problems, half of them solved only by B: a resample's mean is Binomial(40, 1/2) / 40, so the 95% CI is that
    # binomial's 2.5% and 97.5% quantiles, in points (+-1 problem: 2,000 resamples, interpolated percentiles).
    mixed = paired_ci(tmp_path / "b.duckdb", {"A": [1, 0] * 20})
    lo, hi = (100 * binomial_quantile(40, 0.5, q) / 40 for q in (0.025, 0.975))
    assert mixed["avg_delta"] == 50.0 and (lo, hi) == (35.0, 65.0)
    assert mixed["ci95"][0] == pytest.approx(lo, abs=2.5) and mixed["ci95"][1] == pytest.approx(hi, abs=2.5)
    # Benchmarks are resampled apart and averaged unweighted: adding a benchmark with no change halves the CI.
    halved = paired_ci(tmp_path / "c.duckdb", {"A": [1, 0] * 20, "B": [0] * 5})
    assert halved["avg_delta"] == 25.0
    assert halved["ci95"] == [pytest.approx(lo / 2, abs=1.25), pytest.approx(hi / 2, abs=1.25)]
