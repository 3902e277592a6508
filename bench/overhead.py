"""The engine's own overhead on the quickstart: wall time not covered by any job's own work.

A job's work is measured inside its worker (spec rebuild, model load, rollouts,
training, eval, artifact writes); everything else -- planning, Ray start-up
and scheduling, status files, registry ingest, tracking -- is
the engine's overhead, reported as a share of the run's wall time.
Target: < 15%. The table also splits out Ray's own start-up and shutdown (timed
around `ray.init` and `ray.shutdown`): a fixed cost of a few seconds per run,
set by Ray rather than by knowrl.
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


def timed_ray(engine, spans: dict) -> None:
    """Time Ray's start-up and shutdown inside the engine (wrapping, not changing, what it calls)."""
    start = engine._start_ray

    def timed_start(num_cpus):
        t = time.time()
        ray = start(num_cpus)
        spans["ray start"] = time.time() - t
        shutdown = ray.shutdown

        def timed_shutdown(*a, **k):
            t = time.time()
            shutdown(*a, **k)
            spans["ray shutdown"] = time.time() - t

        ray.shutdown = timed_shutdown
        return ray

    engine._start_ray = timed_start


def main() -> None:
    import knowrl.runtime._engine as engine
    from knowrl.generation import build_tiny_model
    from knowrl.plan import plan
    from knowrl.spec import load_spec

    tmp = Path(tempfile.mkdtemp())
    model = build_tiny_model(tmp / "tiny")
    spec = load_spec(
        ROOT / "experiments/quickstart-tiny.yaml",
        [
            f"model.path={model}",
            f"resources.storage={tmp}/store",
            f"registry.path={tmp}/reg.duckdb",
            f"tracking.repo={tmp}/aim",
        ],
    )
    spans: dict[str, float] = {}
    timed_ray(engine, spans)
    t0 = time.time()
    engine.run_spec(spec)
    wall = time.time() - t0
    run = tmp / "store" / "runs" / plan(spec).run_id
    jobs = {p.parent.name: json.loads(p.read_text())["summary"]["work_interval"] for p in run.glob("*/status.json")}
    work = covered([tuple(v) for v in jobs.values()])
    share = (wall - work) / wall
    ray_s = sum(spans.values())
    rest = (wall - work - ray_s) / wall
    rows = [[k, f"{b - a:.1f}"] for k, (a, b) in sorted(jobs.items(), key=lambda kv: kv[1][0])]
    rows += [
        ["(union of job work)", f"{work:.1f}"],
        ["(run wall time)", f"{wall:.1f}"],
        ["(engine overhead)", f"{wall - work:.1f}  = {share:.1%} of wall"],
        *[[f"  of which {k}", f"{v:.1f}"] for k, v in spans.items()],
        ["  of which the rest", f"{wall - work - ray_s:.1f}  = {rest:.1%} of wall"],
    ]
    report(
        "knowrl run experiments/quickstart-tiny.yaml (embedded Ray, 2 CPUs)",
        ["job", "seconds"],
        rows,
        {
            "bench": "overhead",
            "ratio": round(share, 3),
            "target": f"<{TARGET}",
            "met": share < TARGET,
            "wall_s": round(wall, 1),
            "work_s": round(work, 1),
            "ray_start_stop_s": round(ray_s, 1),
            "rest_share": round(rest, 3),
        },
    )


if __name__ == "__main__":
    main()
