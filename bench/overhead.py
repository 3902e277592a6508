"""The engine's own overhead on the quickstart: wall time not covered by any job's own work.

A job's work is measured inside its worker (spec rebuild, model load, rollouts,
training, eval, artifact writes); everything else -- planning, Ray start-up
and scheduling, status files, registry ingest, tracking, the final table -- is
the engine's overhead, reported as a share of the run's wall time.
Target: < 15%.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.15


def covered(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def main() -> None:
    from knowrl.generation import build_tiny_model
    from knowrl.plan import plan
    from knowrl.runtime._engine import run_spec
    from knowrl.spec import load_spec

    tmp = Path(tempfile.mkdtemp())
    model = build_tiny_model(tmp / "tiny")
    spec = load_spec(
        ROOT / "experiments/quickstart.yaml",
        [
            f"model.path={model}",
            f"resources.storage={tmp}/store",
            f"registry.path={tmp}/reg.duckdb",
            f"tracking.repo={tmp}/aim",
        ],
    )
    t0 = time.time()
    run_spec(spec)
    wall = time.time() - t0
    run = tmp / "store" / "runs" / plan(spec).run_id
    jobs = {p.parent.name: json.loads(p.read_text())["summary"]["work_interval"] for p in run.glob("*/status.json")}
    work = covered([tuple(v) for v in jobs.values()])
    share = (wall - work) / wall
    rows = [[k, f"{b - a:.1f}"] for k, (a, b) in sorted(jobs.items(), key=lambda kv: kv[1][0])]
    rows += [
        ["(union of job work)", f"{work:.1f}"],
        ["(run wall time)", f"{wall:.1f}"],
        ["(engine overhead)", f"{wall - work:.1f}  = {share:.1%} of wall"],
    ]
    report(
        "knowrl run experiments/quickstart.yaml (embedded Ray, 2 CPUs)",
        ["job", "seconds"],
        rows,
        {
            "bench": "overhead",
            "ratio": round(share, 3),
            "target": f"<{TARGET}",
            "met": share < TARGET,
            "wall_s": round(wall, 1),
            "work_s": round(work, 1),
        },
    )


if __name__ == "__main__":
    main()
