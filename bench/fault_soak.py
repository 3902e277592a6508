"""Fault soak: the quickstart killed N times at random points, resumed each time, ends as if never killed.

One uninterrupted `knowrl run` of the quickstart is the baseline. The soak
starts the same spec in another storage and registry, SIGKILLs the driver's
whole process group at a random moment (uniform over the baseline's wall
time) N times, resuming after each kill, then lets it finish. The registries
are then compared table by table: the same rows (jobs and their states,
every metric step once, every eval sample, every KP selection) and the same
values. Run ids match because storage is not part of a run's identity.
Target: every table identical after N >= 5 kills.

    python bench/fault_soak.py            # N=5; KNOWRL_SOAK_KILLS=10 for more
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("KNOWRL_SOAK_KILLS", "5"))
TABLES = {
    "jobs": "SELECT job_id, kind, phase, status FROM jobs",
    "metrics": "SELECT job_id, step, name, round(value, 6) FROM metrics WHERE name NOT LIKE '%runtime%' "
    "AND name NOT LIKE '%per_second%' AND name NOT LIKE '%time%'",
    "eval_samples": "SELECT job_id, checkpoint, benchmark, problem_id, hint_mode, sample_index, correct, "
    "extracted_answer FROM eval_samples",
    "eval_scores": "SELECT job_id, checkpoint, benchmark, hint_mode, metric, round(value, 9) FROM eval_scores",
    "kp_selections": "SELECT problem_id, strategy, kept_kp_index FROM kp_selections",
}


def command(root: Path, model: Path, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "knowrl.cli",
        "run",
        str(ROOT / "experiments" / "quickstart.yaml"),
        f"model.path={model}",
        f"resources.storage={root / name}",
        f"registry.path={root / name / 'registry.duckdb'}",
        "tracking.backend=none",
    ]


def rows(registry: Path) -> dict[str, list]:
    from knowrl.registry import reader

    with reader(registry) as con:
        return {t: sorted(map(tuple, con.execute(q).fetchall()), key=repr) for t, q in TABLES.items()}


def main() -> None:
    from knowrl.generation import build_tiny_model

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "tiny", seed=0)
        t0 = time.perf_counter()
        subprocess.run(command(root, model, "baseline"), cwd=ROOT, check=True, capture_output=True)
        baseline_s = time.perf_counter() - t0
        kills, t0 = [], time.perf_counter()
        for _ in range(KILLS):
            proc = subprocess.Popen(
                command(root, model, "soak"),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            at = rng.uniform(1.0, baseline_s)
            try:
                proc.wait(timeout=at)
                kills.append(f"finished before {at:.1f} s")  # nothing left to kill: the rest resume a done run
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills.append(f"{at:.1f} s")
        final = subprocess.run(command(root, model, "soak"), cwd=ROOT, capture_output=True, text=True)
        soak_s = time.perf_counter() - t0
        if final.returncode:
            sys.exit(f"the resumed run failed:\n{final.stdout[-3000:]}\n{final.stderr[-3000:]}")
        want, got = rows(root / "baseline" / "registry.duckdb"), rows(root / "soak" / "registry.duckdb")
    table = []
    for t in TABLES:
        same = sum(a == b for a, b in zip(want[t], got[t], strict=False))
        table.append([t, len(want[t]), len(got[t]), same, "yes" if want[t] == got[t] else "NO"])
    identical = all(want[t] == got[t] for t in TABLES)
    report(
        f"fault soak: quickstart killed {KILLS} times at random points ({', '.join(kills)}), then resumed",
        ["table", "rows (uninterrupted)", "rows (killed + resumed)", "equal rows", "identical"],
        table,
        {
            "kills": KILLS,
            "kill_points": kills,
            "baseline_s": round(baseline_s, 1),
            "soak_s": round(soak_s, 1),
            "tables_identical": {t: want[t] == got[t] for t in TABLES},
            "target": "every registry table identical to the uninterrupted run's after >= 5 kills",
            "met": identical and KILLS >= 5,
        },
    )


if __name__ == "__main__":
    main()
