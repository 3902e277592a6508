"""Running a sweep's points: its definition recorded once, each point a run of its own, resumable.

A point already done is a no-op of `run_spec` (its run id is its content), so
rerunning a sweep runs only what is left; a changed definition is refused
unless forced, so one sweep name never mixes two designs unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

from knowrl._errors import UsageError


def run_sweep(s, points, force: bool, max_parallel: int = 1, console=None) -> int:
    """Record the sweep's definition, refuse a changed one unless forced, then run the points not yet done.

    Returns how many points did not succeed."""
    import hashlib

    from rich.console import Console

    from knowrl._io import atomic_write_bytes
    from knowrl.runtime._engine import run_spec

    definition = s.sweep.model_dump(mode="json")
    record = Path(s.resources.storage) / "sweeps" / f"{s.name}.json"
    if record.exists():
        old = json.loads(record.read_text())
        if old["definition"] != definition and not force:
            raise UsageError(
                f"sweep {s.name} was started with another definition ({record})",
                hint="rerun with --force to run the new points anyway, or rename the sweep",
            )
    sweep_id = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]
    atomic_write_bytes(
        record,
        json.dumps(
            {"sweep_id": sweep_id, "definition": definition, "points": [p.spec_hash for p in points]}, indent=2
        ).encode(),
    )
    console = console or Console()
    if max_parallel > 1:
        return _run_points_in_parallel(s, points, max_parallel, console)
    failed = 0
    for i, pt in enumerate(points, 1):
        console.print(f"[bold]sweep point {i}/{len(points)}[/] {pt.name}")
        statuses = run_spec(pt.spec, console=console, sweep_id=sweep_id)
        failed += any(v != "succeeded" for v in statuses.values())
    return failed


def _run_points_in_parallel(s, points, max_parallel: int, console) -> int:
    """Each point as its own `knowrl run` process (its own embedded Ray), at most `max_parallel` at once."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import yaml

    folder = Path(s.resources.storage) / "sweeps" / s.name
    folder.mkdir(parents=True, exist_ok=True)

    def one(pt) -> int:
        spec_file = folder / f"{pt.spec_hash[:12]}.yaml"
        spec_file.write_text(yaml.safe_dump(pt.spec.model_dump(mode="json"), sort_keys=False))
        log = folder / f"{pt.spec_hash[:12]}.log"
        with log.open("w") as out:
            rc = subprocess.call(
                [sys.executable, "-m", "knowrl.cli", "run", str(spec_file)], stdout=out, stderr=subprocess.STDOUT
            )
        console.print(f"{'[green]done[/]' if rc == 0 else '[red]failed[/]'} {pt.name}  (log: {log})")
        return int(rc != 0)

    with ThreadPoolExecutor(max_parallel) as pool:
        return sum(pool.map(one, points))
