"""How far the scorer's settings can push CSS and CBRS toward the #5 target.

`kp_selection.py` measures the spec defaults. This sweeps the scorer's own
settings (never a strategy's rule: delta, repeats and budget stay the same)
on several simulator seeds, and reports each setting's rollouts relative to
the fixed-k = 8 baseline (run on the same problems) and whether its regret is
at or below the baseline's on *every* seed -- one seed's regret is too noisy
to call parity.

The setting is chosen on some seeds and reported on others: per strategy, the
cheapest setting at parity on every *choice* seed is then run, with the
baseline, on as many fresh *report* seeds, and only those figures count --
a setting picked for its luck on the seeds it was picked on would otherwise
look better than it is. `ratio` is the larger of the two strategies'
held-out rollout ratios: what the target (<= 1/3, at parity on every report
seed) is measured against.
Takes a few minutes; BENCH_PROBLEMS and BENCH_SEEDS (per half) shrink it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402
from kp_selection import TARGET, run  # noqa: E402

PROBLEMS = int(os.environ.get("BENCH_PROBLEMS", "2000"))
CHOOSE_SEEDS = range(int(os.environ.get("BENCH_SEEDS", "3")))
REPORT_SEEDS = range(len(CHOOSE_SEEDS), 2 * len(CHOOSE_SEEDS))
SETTINGS: dict[str, dict] = {
    "defaults": {},
    "batch 1": {"batch": 1},
    "screen 1": {"screen": 1},
    "reference 4": {"rollouts_per_subset": 4},
    "margin 0.35": {"margin": 0.35},
    "margin 0.15": {"margin": 0.15},
    "confidence 0.7": {"confidence": 0.7},
    "confidence 0.9": {"confidence": 0.9},
    "hoeffding": {"bound": "hoeffding"},
    "batch 1, screen 1": {"batch": 1, "screen": 1},
    "batch 1, margin 0.35, confidence 0.7": {"batch": 1, "margin": 0.35, "confidence": 0.7},
}


def compare(ours: list[dict], base: list[dict]) -> tuple[float, bool, str]:
    """(mean rollouts ratio, regret at or below the baseline's on every seed, the regrets side by side)."""
    ratio = statistics.mean(o["rollouts"] / b["rollouts"] for o, b in zip(ours, base, strict=True))
    parity = all(o["regret"] <= b["regret"] + 1e-9 for o, b in zip(ours, base, strict=True))
    regrets = " ".join(f"{o['regret']:.4f}/{b['regret']:.4f}" for o, b in zip(ours, base, strict=True))
    return ratio, parity, regrets


def main() -> None:
    from knowrl.grading import Grader
    from knowrl.kp._simulator import make_problems

    t = time.perf_counter()
    grader = Grader(workers=1)
    figures: dict[tuple[str, str], list[dict]] = {}
    held_out: dict[tuple[str, str], list[dict]] = {}
    rows, chosen = [], {}
    try:
        for seed in CHOOSE_SEEDS:
            problems = make_problems(PROBLEMS, seed=seed)
            for strategy in ("css", "cbrs"):
                figures.setdefault((strategy, "baseline"), []).append(run(strategy, problems, grader, baseline=True))
                for name, settings in SETTINGS.items():
                    r = run(strategy, problems, grader, baseline=False, **settings)
                    figures.setdefault((strategy, name), []).append(r)
        for strategy in ("css", "cbrs"):
            for name in SETTINGS:
                ratio, parity, regrets = compare(figures[(strategy, name)], figures[(strategy, "baseline")])
                rows.append([strategy, name, "choice", f"{ratio:.2f}x", regrets, "yes" if parity else "no"])
                if parity and ratio < chosen.get(strategy, (None, 2.0))[1]:
                    chosen[strategy] = (name, ratio)
        for seed in REPORT_SEEDS:  # fresh problems: only the baseline and each strategy's chosen setting
            problems = make_problems(PROBLEMS, seed=seed)
            for strategy, (name, _) in chosen.items():
                held_out.setdefault((strategy, "baseline"), []).append(run(strategy, problems, grader, baseline=True))
                r = run(strategy, problems, grader, baseline=False, **SETTINGS[name])
                held_out.setdefault((strategy, name), []).append(r)
    finally:
        grader.close()

    reported = {}
    for strategy, (name, _) in chosen.items():
        ratio, parity, regrets = compare(held_out[(strategy, name)], held_out[(strategy, "baseline")])
        rows.append([strategy, name, "report", f"{ratio:.2f}x", regrets, "yes" if parity else "no"])
        reported[strategy] = {"setting": name, "ratio": round(ratio, 3), "parity": parity}
    met = all(s in reported and reported[s]["parity"] and reported[s]["ratio"] <= TARGET for s in ("css", "cbrs"))
    seconds = round(time.perf_counter() - t, 1)
    report(
        f"Scorer settings vs the fixed-k baseline, {PROBLEMS} simulated problems: chosen on seeds "
        f"{list(CHOOSE_SEEDS)}, reported on seeds {list(REPORT_SEEDS)} ({seconds} s)",
        ["strategy", "setting", "seeds", "rollouts vs baseline", "regret ours/baseline per seed", "parity every seed"],
        rows,
        {
            "bench": "kp_frontier",
            "problems": PROBLEMS,
            "choice_seeds": list(CHOOSE_SEEDS),
            "report_seeds": list(REPORT_SEEDS),
            "chosen_on_choice_seeds": {s: [n, round(r, 3)] for s, (n, r) in chosen.items()},
            "reported": reported,
            "ratio": max((reported.get(s, {"ratio": float("inf")})["ratio"] for s in ("css", "cbrs")), default=None),
            "baseline": "the same strategy with fixed k = 8 and no cache, on the same problems",
            "target": "<=0.333 of baseline rollouts at <= its regret on every report seed",
            "met": met,
            "seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
