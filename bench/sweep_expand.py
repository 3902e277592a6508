"""Expanding a 10,000-point sweep of the paper's spec, against the work every point needs anyway.

Each point of a sweep must end as a validated spec with its hash. The
baseline, measured in the same run, is exactly that work without the sweep
machinery: validating the sweep's base spec and hashing it once per point.
The ratio is what expansion (copying the base per point, setting the swept
keys), naming and dedupe add on top. Target: the whole sweep within 1.5x the
baseline. Both are timed in CPU seconds of this process (single-threaded
Python), so other work on a shared machine does not enter the ratio; wall
seconds are printed beside them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report, scratch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5


def timed(fn) -> tuple[object, float, float]:
    """(result, CPU seconds, wall seconds) of fn()."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    from knowrl.plan import expand
    from knowrl.spec import load_data, load_spec, spec_hash, validate

    spec_file = scratch() / "sweep10k.yaml"
    spec_file.write_text(
        f"extends: {ROOT / 'experiments/css_main.yaml'}\nname: sweep-10k\n"
        "sweep:\n  grid:\n"
        "    algorithm.learning_rate: [" + ", ".join(f"{(i + 1) * 1e-7:.1e}" for i in range(25)) + "]\n"
        "    algorithm.clip_schedule.0.high: [" + ", ".join(f"{0.2 + i * 0.005:.3f}" for i in range(20)) + "]\n"
        "    seed: [" + ", ".join(str(i) for i in range(20)) + "]\n"
    )

    def sweep():
        spec = load_spec(spec_file)
        data, _ = load_data(spec_file)
        return data, expand(spec, data)

    (data, points), cpu, wall = timed(sweep)
    base = dict(data)
    base.pop("sweep")
    _, base_cpu, base_wall = timed(lambda: [spec_hash(validate(base)) for _ in range(len(points))])
    ratio = cpu / base_cpu
    rows = [
        ["load + expand + validate + hash + dedupe", len(points), f"{cpu:.2f}", f"{wall:.2f}", f"{ratio:.2f}x"],
        [
            "validate + hash the base spec N times (baseline)",
            len(points),
            f"{base_cpu:.2f}",
            f"{base_wall:.2f}",
            "1.00x",
        ],
    ]
    report(
        "10,000-point sweep of css_main",
        ["what", "points", "CPU s", "wall s", "vs baseline"],
        rows,
        {
            "bench": "sweep_expand",
            "ratio": round(ratio, 3),
            "baseline": "validating and hashing the base spec once per point, same run (CPU seconds)",
            "cpu_s": round(cpu, 2),
            "baseline_cpu_s": round(base_cpu, 2),
            "wall_s": round(wall, 2),
            "points": len(points),
            "target": f"<={TARGET}x baseline",
            "met": ratio <= TARGET and len(points) == 10_000,
        },
    )


if __name__ == "__main__":
    main()
