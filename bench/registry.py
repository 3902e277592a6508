"""Registry ingest and compare at scale: 5,000,000 eval-sample rows.

Ingest (one transaction per job, replacing the job's rows) is timed against
DuckDB's own bulk load of the same parquet files into a fresh table -- the
practical limit. The same ingest then runs again into a fresh registry while
a reader process opens the registry in a loop (as `knowrl runs` would): every
one of its reads must succeed, and get in while the ingest goes on (the
ingester hands the file over between two jobs whenever a reader waits).
Then `compare` (avg@N per run x benchmark x hint mode from the per-sample
rows, unweighted Avg.) is timed over all of them.
Targets: ingest within 2x of the bulk load, with 0 failed reads; compare under 0.5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "5000000"))


def build(root: Path) -> tuple[list[Path], list[str]]:
    """Two runs x 8 benchmarks x 2 hint modes of eval jobs, in the engine's run-directory layout."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from knowrl._rundir import write_json
    from knowrl.spec import KNOWRL8

    rng = np.random.default_rng(0)
    runs, files = [], []
    jobs = [(r, b, m) for r in ("run-a", "run-b") for b in KNOWRL8 for m in ("none", "css")]
    per_job = ROWS // len(jobs)
    for run_id in ("run-a", "run-b"):
        run = root / "runs" / run_id
        write_json(
            run / "manifest.json",
            {"run_id": run_id, "spec_hash": run_id * 4, "name": run_id, "spec": {}, "plan": {"backend": "nemo_rl"}},
        )
        runs.append(str(run))
    for run_id, bench, mode in jobs:
        job_id = f"eval-final-{bench}-{mode}"
        job_dir = root / "runs" / run_id / job_id
        samples = 32 if KNOWRL8[bench][1] == 32 else 8
        problems = per_job // samples
        n = problems * samples
        table = pa.table(
            {
                "benchmark": pa.array([bench] * n),
                "problem_id": pa.array((np.arange(n) // samples).astype(str)),
                "hint_mode": pa.array([mode] * n),
                "oracle_assisted": pa.array(np.zeros(n, dtype=bool)),
                "sample_index": pa.array((np.arange(n) % samples).astype(np.int32)),
                "seed": pa.array(rng.integers(0, 2**31, n)),
                "kps": pa.array(rng.integers(0, 6, n).astype(np.int32)),
                "response": pa.array([""] * n),
                "response_tokens": pa.array(rng.integers(100, 32768, n).astype(np.int32)),
                "finish_reason": pa.array(["stop"] * n),
                "extracted_answer": pa.array(rng.integers(0, 5, n).astype(str)),
                "correct": pa.array(rng.random(n) < 0.6),
                "reason": pa.array(["match"] * n),
            }
        )
        path = job_dir / "samples" / bench / f"{mode}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        files.append(path)
        write_json(
            job_dir / "status.json",
            {
                "job_id": job_id,
                "kind": "eval",
                "status": "succeeded",
                "params": {"checkpoint": "final", "benchmark": bench, "hint_mode": mode},
            },
        )
    return files, runs


READER_LOOP = """
import json, sys, time
from pathlib import Path
from knowrl.registry import reader

db, stop = sys.argv[1], Path(sys.argv[2])
done, failures = [], []
while not stop.exists():
    try:
        with reader(db, timeout_s=120) as con:
            con.execute("SELECT count(*) FROM runs").fetchone()
        done.append(time.time())
    except Exception as e:
        failures.append(repr(e))
    if len(done) + len(failures) == 1:
        print("reading", flush=True)  # the ingest starts once the loop is under way
print(json.dumps({"reads": done, "failures": failures}))
"""


def ingest_with_readers(root: Path, runs: list[str]) -> tuple[float, int, int, int]:
    """(seconds, reads that completed during the ingest, failed reads, handovers) with a reader loop running."""
    from knowrl.registry import ingest, writer

    db, stop = root / "served.duckdb", root / "stop-readers"
    with writer(db):  # an empty registry for the readers to open
        pass
    loop = subprocess.Popen(
        [sys.executable, "-c", READER_LOOP, str(db), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert loop.stdout.readline() == "reading\n", "the reader loop did not start"
        begin = time.time()
        t = time.perf_counter()
        handed = ingest(db, runs).handovers
        seconds = time.perf_counter() - t
        end = time.time()
    finally:
        stop.touch()
        out, _ = loop.communicate(timeout=300)
    result = json.loads(out)
    during = sum(begin <= r <= end for r in result["reads"])
    return seconds, during, len(result["failures"]), handed


def cpu_s() -> float:
    """This process's CPU time (every thread): a figure other work on the machine barely moves."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:  # millions of rows: gone after the run
        measure(Path(tmp))


def measure(root: Path) -> None:
    import duckdb

    from knowrl.registry import ingest, reader
    from knowrl.registry._compare import measured_rows

    files, runs = build(root)
    rows = sum(duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}')").fetchall()[0][0] for f in files)

    t, c = time.perf_counter(), cpu_s()
    con = duckdb.connect(str(root / "bulk.duckdb"))
    con.execute("CREATE TABLE s AS SELECT * FROM read_parquet(?)", [[str(f) for f in files]])
    con.close()
    bulk, bulk_cpu = time.perf_counter() - t, cpu_s() - c

    t, c = time.perf_counter(), cpu_s()
    ingest(root / "registry.duckdb", runs)
    ours, ours_cpu = time.perf_counter() - t, cpu_s() - c

    served, reads, failed, handovers = ingest_with_readers(root, runs)

    with reader(root / "registry.duckdb") as con:
        measured_rows(con)  # warm the connection's catalog once
        best = []
        for _ in range(5):  # the best of five: the least disturbed by whatever else the machine runs
            t, c = time.perf_counter(), cpu_s()
            table = measured_rows(con)
            best.append((time.perf_counter() - t, cpu_s() - c))
        compare_s, compare_cpu = min(best)
    ratio = ours / bulk
    report(
        f"registry with {rows:,} eval-sample rows ({len(files)} eval jobs, 2 runs)",
        ["step", "seconds", "note"],
        [
            ["DuckDB bulk load from parquet", f"{bulk:.2f}", f"baseline ({bulk_cpu:.2f} s of CPU)"],
            [
                "knowrl ingest",
                f"{ours:.2f}",
                f"{ratio:.2f}x the bulk load (target <= 2x); CPU {ours_cpu:.2f} s, {ours_cpu / bulk_cpu:.2f}x",
            ],
            [
                "knowrl ingest, a reader looping",
                f"{served:.2f}",
                f"{served / bulk:.2f}x; {reads} reads got in during it, {failed} failed (target 0); "
                f"file handed over {handovers}x",
            ],
            [
                "knowrl compare",
                f"{compare_s:.3f}",
                f"{len(table)} rows, best of 5 (target < 0.5 s); CPU {compare_cpu:.3f} s",
            ],
        ],
        {
            "bench": "registry",
            "rows": rows,
            "ratio": round(ratio, 2),
            "cpu_ratio": round(ours_cpu / bulk_cpu, 2),
            "ratio_with_reader": round(served / bulk, 2),
            "reads_during_ingest": reads,
            "failed_reads": failed,
            "handovers": handovers,
            "target": "ingest <=2x bulk; 0 failed reads (and reads during the ingest); compare <0.5s",
            "compare_s": round(compare_s, 3),
            "met": ratio <= 2.0 and failed == 0 and reads > 0 and compare_s < 0.5,
        },
    )


if __name__ == "__main__":
    main()
