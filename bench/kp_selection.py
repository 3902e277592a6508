"""KP selection efficiency on a simulator with known truth.

Per strategy: rollouts per problem, selection regret (true accuracy of the
best subset of minimal size minus that of the chosen one), mean #KP, and how
often the pruning interaction paradox fools it (both KPs of a substitute pair
dropped). Each scored strategy runs twice: the baseline (fixed k = 8
rollouts per subset, no cache: every question draws new rollouts) and
knowrl's scorer (adaptive, cached; spec defaults). Target: CSS and CBRS reach
the baseline's regret or better with <= 1/3 of its rollouts.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

PROBLEMS = int(os.environ.get("BENCH_PROBLEMS", "2000"))
TARGET = 1 / 3


def run(strategy: str, problems, grader, *, baseline: bool) -> dict:
    from knowrl.generation import SamplingParams
    from knowrl.kp import RolloutScorer, ScoringConfig, select_kps, strategy_spec
    from knowrl.kp._simulator import SimGenerator

    spec = strategy_spec(strategy) if strategy != "random" else strategy_spec("random", match_mean=2.53)
    config = (
        ScoringConfig(8, adaptive=False)
        if baseline
        else ScoringConfig.from_spec(spec)
        if hasattr(spec, "rollouts_per_subset")
        else None
    )
    scorer = (
        RolloutScorer(SimGenerator(problems), grader, config, SamplingParams(), reuse=not baseline) if config else None
    )
    regret, size, rollouts, fooled = [], [], [], 0
    for sp in problems:
        sel = select_kps(sp.problem, spec, scorer)
        regret.append(sp.best_minimal()[1] - sp.accuracy(sel.indices))
        size.append(len(sel.indices))
        rollouts.append(sel.rollouts)
        fooled += sp.fooled(sel.indices)
    with_pairs = sum(1 for sp in problems if sp.pairs)
    return {
        "rollouts": statistics.mean(rollouts),
        "regret": statistics.mean(regret),
        "kps": statistics.mean(size),
        "fooled": fooled / with_pairs,
        "empty": sum(s == 0 for s in size) / len(size),
    }


def main() -> None:
    from knowrl.grading import Grader
    from knowrl.kp._simulator import make_problems

    t = time.perf_counter()
    problems = make_problems(PROBLEMS, seed=0)
    grader = Grader(workers=1)
    rows, figures = [], {}
    try:
        for strategy in ("none", "all", "random", "max_score", "s_loo", "t_loo", "cbrs", "css"):
            for baseline in (True, False) if strategy not in ("none", "all", "random") else (False,):
                r = run(strategy, problems, grader, baseline=baseline)
                label = "baseline k=8" if baseline else ("knowrl" if strategy not in ("none", "all", "random") else "-")
                figures[f"{strategy}/{'baseline' if baseline else 'knowrl'}"] = r
                rows.append(
                    [
                        strategy,
                        label,
                        f"{r['rollouts']:.1f}",
                        f"{r['regret']:.4f}",
                        f"{r['kps']:.2f}",
                        f"{r['empty']:.0%}",
                        f"{r['fooled']:.0%}",
                    ]
                )
    finally:
        grader.close()
    met = True
    result = {"bench": "kp_selection", "problems": PROBLEMS, "target": "<=0.333 of baseline rollouts at <= its regret"}
    for s in ("css", "cbrs"):
        ours, base = figures[f"{s}/knowrl"], figures[f"{s}/baseline"]
        ratio = ours["rollouts"] / base["rollouts"]
        ok = ratio <= TARGET and ours["regret"] <= base["regret"] + 1e-9
        met &= ok
        result[f"{s}_ratio"] = round(ratio, 3)
        result[f"{s}_regret"] = [round(base["regret"], 4), round(ours["regret"], 4)]
    result["ratio"] = max(result["css_ratio"], result["cbrs_ratio"])
    result["met"] = met
    result["seconds"] = round(time.perf_counter() - t, 1)
    report(
        f"KP selection on {PROBLEMS} simulated problems ({result['seconds']} s)",
        ["strategy", "scorer", "rollouts/problem", "regret", "mean #KP", "empty", "paradox fooled"],
        rows,
        result,
    )


if __name__ == "__main__":
    main()
