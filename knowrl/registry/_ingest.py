"""Ingest run directories into the registry: one transaction per job, idempotent.

Workers never open the DuckDB file; this is the one writer. Re-ingesting a job
replaces its rows inside the same transaction, so ingesting twice changes
nothing and a killed ingest leaves the job either fully present or absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl.registry._db import writer
from knowrl.runtime._layout import job_status, read_json

TABLES_BY_JOB = ("metrics", "eval_samples", "eval_scores", "kp_selections")


@dataclass
class IngestReport:
    runs: int = 0
    jobs: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def run_status(statuses: list[str]) -> str:
    if not statuses:
        return "pending"
    if any(s == "failed" for s in statuses):
        return "failed"
    if any(s == "running" for s in statuses):
        return "running"
    if any(s in ("interrupted", "unknown") for s in statuses):
        return "interrupted"
    if all(s == "succeeded" for s in statuses):
        return "done"
    return "cancelled" if any(s == "cancelled" for s in statuses) else "pending"


def ingest(
    registry: str | Path, run_dirs: list[str | Path], *, timeout_s: float = 60.0, only_jobs: set[str] | None = None
) -> IngestReport:
    """Ingest run directories (all their jobs, or `only_jobs`); the run row is refreshed either way.

    The write connection is held for one job's transaction at a time, so
    readers (`knowrl runs`, `compare`) get in between the jobs of a long ingest.
    A job whose status.json is damaged keeps what the registry already has.
    """
    report = IngestReport()
    for run in map(Path, run_dirs):
        if not (run / "manifest.json").exists():
            raise KnowrlError(
                f"{run} is not a run directory (no manifest.json)", hint="runs live under <storage>/runs/<run id>/"
            )
        m = read_json(run / "manifest.json")
        statuses = []
        for status_file in sorted(run.glob("*/status.json")):
            status = job_status(run, status_file.parent.name)
            statuses.append(status["status"])
            if status["status"] == "unknown" or (only_jobs is not None and status["job_id"] not in only_jobs):
                continue
            with writer(registry, timeout_s=timeout_s) as con:
                counts = _ingest_job(con, m["run_id"], status, status_file.parent, m)
            report.jobs += 1
            for k, v in counts.items():
                report.rows[k] = report.rows.get(k, 0) + v
        with writer(registry, timeout_s=timeout_s) as con:
            _write_run(con, m, run_status(statuses))
        report.runs += 1
    return report


def _write_run(con, m: dict, status: str) -> None:
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM runs WHERE run_id = ?", [m["run_id"]])
    con.execute(
        "INSERT INTO runs (run_id, spec_hash, sweep_id, name, status, spec, git_sha, git_dirty, versions, host,"
        " created_at, started_at, finished_at, inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            m["run_id"],
            m["spec_hash"],
            m.get("sweep_id"),
            m["name"],
            status,
            json.dumps(m["spec"]),
            m.get("git_sha"),
            m.get("git_dirty"),
            json.dumps(m.get("versions", {})),
            m.get("host"),
            m.get("created_at"),
            m.get("started_at"),
            m.get("finished_at"),
            json.dumps(m.get("plan", {}).get("inputs", {})),
        ],
    )
    con.execute("COMMIT")


def _ingest_job(con, run_id: str, status: dict, job_dir: Path, manifest: dict) -> dict[str, int]:
    job_id, kind, params = status["job_id"], status["kind"], status.get("params", {})
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES_BY_JOB:
            con.execute(f"DELETE FROM {table} WHERE run_id = ? AND job_id = ?", [run_id, job_id])
        con.execute("DELETE FROM jobs WHERE run_id = ? AND job_id = ?", [run_id, job_id])
        con.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                job_id,
                kind,
                status.get("phase"),
                manifest.get("plan", {}).get("backend"),
                status.get("submission_id"),
                status["status"],
                status.get("attempts", 0),
                status.get("started_at"),
                status.get("finished_at"),
                status.get("error"),
            ],
        )
        if status["status"] == "succeeded":
            counts = _artifacts(con, run_id, job_id, kind, params, job_dir)
        else:  # what an unfinished job logged so far: an interrupted phase's curve stays visible
            counts = _partial_metrics(con, run_id, job_id, job_dir)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def _partial_metrics(con, run_id: str, job_id: str, job_dir: Path) -> dict[str, int]:
    import pyarrow as pa

    from knowrl.runtime._layout import MetricLog

    rows = MetricLog(job_dir / "metrics.jsonl").read()
    if not rows:
        return {}
    table = pa.Table.from_pylist(  # noqa: F841 -- read by name in the SQL below
        [{"step": r["step"], "name": r["name"], "value": r["value"], "context": r.get("context")} for r in rows]
    )
    con.execute("INSERT INTO metrics SELECT ?, ?, step, name, value, context FROM table", [run_id, job_id])
    return {"metrics": len(rows)}


def _artifacts(con, run_id: str, job_id: str, kind: str, params: dict, job_dir: Path) -> dict[str, int]:
    counts = {}
    metrics = job_dir / "metrics.parquet"
    if metrics.exists():
        counts["metrics"] = con.execute(
            "INSERT INTO metrics SELECT ?, ?, step, name, value, context FROM read_parquet(?)",
            [run_id, job_id, str(metrics)],
        ).fetchone()[0]
    samples = sorted(str(p) for p in (job_dir / "samples").glob("*/*.parquet"))
    checkpoint = str(params.get("checkpoint", "base"))
    if samples:
        counts["eval_samples"] = con.execute(
            "INSERT INTO eval_samples SELECT ?, ?, ?, benchmark, problem_id, hint_mode, sample_index, correct, "
            "extracted_answer, response_tokens, finish_reason, kps FROM read_parquet(?)",
            [run_id, job_id, checkpoint, samples],
        ).fetchone()[0]
    scores = job_dir / "scores.parquet"
    if scores.exists():
        counts["eval_scores"] = con.execute(
            "INSERT INTO eval_scores SELECT ?, ?, ?, benchmark, hint_mode, oracle_assisted, metric, value "
            "FROM read_parquet(?) WHERE benchmark <> 'Avg.'",
            [run_id, job_id, checkpoint, str(scores)],
        ).fetchone()[0]
    selections = job_dir / "selections.jsonl"
    if selections.exists():
        rows = []
        for line in selections.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            strategy = next(k[: -len("_rollouts")] for k in rec if k.endswith("_rollouts"))
            est = rec.get(f"{strategy}_estimates", {})
            rows.append(
                [
                    run_id,
                    job_id,
                    rec["id"],
                    strategy,
                    rec[f"{strategy}_kept_kp_index"],
                    est.get("chosen"),
                    est.get("empty"),
                    est.get("full"),
                    rec[f"{strategy}_rollouts"],
                ]
            )
        if rows:
            con.executemany("INSERT INTO kp_selections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        counts["kp_selections"] = len(rows)
    return counts


def load_reference(registry: str | Path, csv: str | Path) -> int:
    """Load published results (registry/reference/*.csv) into `reference_results`, replacing that source."""
    import csv as csvlib

    source = Path(csv).stem
    with Path(csv).open() as f:
        rows = list(csvlib.DictReader(f))
    fixed = {"table", "model", "hint_mode", "published_avg", "mean_kps"}
    records = []
    for r in rows:
        for bench, value in r.items():
            if bench not in fixed and value:
                records.append(
                    [
                        source,
                        r["table"],
                        r["model"],
                        r["hint_mode"],
                        bench,
                        float(value),
                        float(r["published_avg"]) if r["published_avg"] else None,
                        float(r["mean_kps"]) if r.get("mean_kps") else None,
                    ]
                )
    with writer(registry) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM reference_results WHERE source = ?", [source])
        con.executemany("INSERT INTO reference_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
        con.execute("COMMIT")
    return len(rows)
