"""Registry ingest and compare at scale: 5,000,000 eval-sample rows.

Ingest (one transaction per job, replacing the job's rows) is timed against
DuckDB's own bulk load of the same parquet files into a fresh table -- the
practical limit. Then `compare` (avg@N per run x benchmark x hint mode from
the per-sample rows, unweighted Avg.) is timed over all of them.
Targets: ingest within 2x of the bulk load; compare under 0.5 s.
"""

from __future__ import annotations

import os
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

    from knowrl.runtime._layout import write_json
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


def main() -> None:
    import duckdb

    from knowrl.registry import ingest, reader
    from knowrl.registry._compare import measured_rows

    root = Path(tempfile.mkdtemp())
    files, runs = build(root)
    rows = sum(duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}')").fetchall()[0][0] for f in files)

    t = time.perf_counter()
    con = duckdb.connect(str(root / "bulk.duckdb"))
    con.execute("CREATE TABLE s AS SELECT * FROM read_parquet(?)", [[str(f) for f in files]])
    con.close()
    bulk = time.perf_counter() - t

    t = time.perf_counter()
    ingest(root / "registry.duckdb", runs)
    ours = time.perf_counter() - t

    with reader(root / "registry.duckdb") as con:
        measured_rows(con)  # warm the connection's catalog once
        t = time.perf_counter()
        table = measured_rows(con)
        compare_s = time.perf_counter() - t
    ratio = ours / bulk
    report(
        f"registry with {rows:,} eval-sample rows ({len(files)} eval jobs, 2 runs)",
        ["step", "seconds", "note"],
        [
            ["DuckDB bulk load from parquet", f"{bulk:.2f}", "baseline"],
            ["knowrl ingest", f"{ours:.2f}", f"{ratio:.2f}x the bulk load (target <= 2x)"],
            ["knowrl compare", f"{compare_s:.3f}", f"{len(table)} rows (target < 0.5 s)"],
        ],
        {
            "bench": "registry",
            "rows": rows,
            "ratio": round(ratio, 2),
            "target": "ingest <=2x bulk; compare <0.5s",
            "compare_s": round(compare_s, 3),
            "met": ratio <= 2.0 and compare_s < 0.5,
        },
    )


if __name__ == "__main__":
    main()
