"""Wall time of `knowrl validate experiments/css_main.yaml` against bare-interpreter baselines.

Target: validate within 2x of `python -c "import pydantic, omegaconf"` run the
same way. Commands are interleaved and repeated; the minimum of each is
compared, the usual estimator of start-up cost on a noisy machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "15"))
TARGET = 2.0


def main() -> None:
    knowrl = shutil.which("knowrl") or str(Path(sys.executable).parent / "knowrl")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import pydantic, omegaconf'": [sys.executable, "-c", "import pydantic, omegaconf"],
        "knowrl validate experiments/css_main.yaml": [knowrl, "validate", "experiments/css_main.yaml"],
    }
    # Steady state, as users see it: bytecode caching on (some shells export PYTHONDONTWRITEBYTECODE,
    # which would recompile knowrl's sources on every run) and one warm-up run of each command.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in commands.values():
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(REPEATS):
        for name, cmd in commands.items():
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    base = best["python -c 'import pydantic, omegaconf'"]
    ratio = best["knowrl validate experiments/css_main.yaml"] / base
    rows = [
        [k, f"{v * 1000:.1f}", f"{sorted(times[k])[len(times[k]) // 2] * 1000:.1f}", f"{v / base:.2f}x"]
        for k, v in best.items()
    ]
    report(
        f"CLI start-up ({REPEATS} runs each, interleaved)",
        ["command", "min ms", "median ms", "vs import"],
        rows,
        {
            "bench": "cli_latency",
            "ratio": round(ratio, 3),
            "target": f"<={TARGET}",
            "met": ratio <= TARGET,
            "ms": {k: round(v * 1000, 1) for k, v in best.items()},
        },
    )


if __name__ == "__main__":
    main()
