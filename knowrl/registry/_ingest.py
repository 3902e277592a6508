"""Ingest run directories into the registry: each job whole or not at all, idempotent.

Workers never open the DuckDB file; this is the one writer. Re-ingesting a job
replaces its rows inside the transaction that writes them, so ingesting twice
changes nothing and a killed ingest leaves every job either fully present or
absent. One transaction spans a run's jobs, committed with the run's row, or
earlier when a reader or another writer waits for the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._rundir import job_status, read_json
from knowrl.registry._db import WriteSession, reader, writer

TABLES_BY_JOB = ("metrics", "eval_samples", "eval_scores", "kp_selections")


@dataclass
class IngestReport:
    runs: int = 0
    jobs: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    handovers: int = 0
    """How often the ingest gave the file up, between two jobs, to a reader or writer that was waiting."""


def statuses_by_spec(path: str | Path) -> dict[str, str]:
    """spec hash -> the run's status, from the registry when one exists (else every sweep point is new)."""
    if not Path(path).exists():
        return {}
    with reader(path) as con:
        return dict(con.execute("SELECT spec_hash, status FROM runs").fetchall())


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

    One write connection and one transaction per run, committed and handed over
    between two jobs whenever a reader (`knowrl runs`, `compare`) or another
    writer waits. A job whose status.json is damaged keeps what the registry
    already has.
    """
    report = IngestReport()
    with WriteSession(registry, timeout_s=timeout_s) as session:
        for run in map(Path, run_dirs):
            if not (run / "manifest.json").exists():
                raise KnowrlError(
                    f"{run} is not a run directory (no manifest.json)", hint="runs live under <storage>/runs/<run id>/"
                )
            m = read_json(run / "manifest.json")
            statuses = {}
            for status_file in sorted(run.glob("*/status.json")):
                status = job_status(run, status_file.parent.name)
                statuses[status_file.parent.name] = status
                if status["status"] == "unknown" or (only_jobs is not None and status["job_id"] not in only_jobs):
                    continue
                counts = _ingest_job(session.transaction(), m["run_id"], status, status_file.parent, m)
                report.jobs += 1
                for k, v in counts.items():
                    report.rows[k] = report.rows.get(k, 0) + v
            for job in m.get("plan", {}).get("jobs", []):  # planned, not yet started: no status.json
                statuses.setdefault(job["id"], {"status": "pending"})
            _write_run(session.transaction(), m, list(statuses.values()), *_sweep(run, m))
            session.commit()  # a run's row lands with its jobs
            report.runs += 1
        report.handovers = session.handovers
    return report


def run_times(statuses: list[dict]) -> tuple[datetime | None, datetime | None]:
    """(started, finished) of a run from its jobs' status records, in UTC: when its first job started, and
    when its last one finished once none is left to run (else None)."""
    started = min((t for s in statuses if (t := _utc(s.get("started_at")))), default=None)
    finished = max((t for s in statuses if (t := _utc(s.get("finished_at")))), default=None)
    over = run_status([s["status"] for s in statuses]) in ("done", "failed", "cancelled") and not any(
        s["status"] in ("pending", "running") for s in statuses
    )
    return started, finished if over else None


def _utc(stamp) -> datetime | None:
    """A status file's ISO time as naive UTC (DuckDB's TIMESTAMP drops an offset instead of applying it)."""
    if not stamp:
        return None
    try:
        t = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _sweep(run: Path, m: dict) -> tuple[str | None, tuple[str, str, str] | None]:
    """The sweep a run belongs to: (its id, (id, name, definition) for the `sweeps` table or None).

    The manifest's `sweep_id` when it has one; else the one sweep whose record
    (<storage>/sweeps/<name>.json, kept by `knowrl sweep --run`) lists the run's
    spec hash among its points -- a point may have run before its sweep did.
    """
    records = []
    for record in sorted((run.parent.parent / "sweeps").glob("*.json")):
        try:
            data = read_json(record)
        except KnowrlError:  # a damaged record names no sweep
            continue
        records.append((data.get("sweep_id"), record.stem, json.dumps(data.get("definition", {})), data))
    sweep_id = m.get("sweep_id")
    if sweep_id is None:
        listing = {r[0] for r in records if m["spec_hash"] in r[3].get("points", ())}
        sweep_id = listing.pop() if len(listing) == 1 else None
    row = next((r[:3] for r in records if sweep_id and r[0] == sweep_id), None)
    return sweep_id, row


def _write_run(con, m: dict, statuses: list[dict], sweep_id: str | None, sweep: tuple | None) -> None:
    """The run's row (and its sweep's), inside the caller's transaction."""
    started, finished = run_times(statuses)
    if sweep:
        con.execute(  # created when its first run was
            "INSERT INTO sweeps VALUES (?, ?, ?, ?) ON CONFLICT (sweep_id) DO UPDATE SET name = excluded.name, "
            "definition = excluded.definition, created_at = least(sweeps.created_at, excluded.created_at)",
            [*sweep, _utc(m.get("created_at"))],
        )
    con.execute("DELETE FROM runs WHERE run_id = ?", [m["run_id"]])
    con.execute(
        "INSERT INTO runs (run_id, spec_hash, sweep_id, name, status, spec, git_sha, git_dirty, versions, host,"
        " created_at, started_at, finished_at, inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            m["run_id"],
            m["spec_hash"],
            sweep_id,
            m["name"],
            run_status([s["status"] for s in statuses]),
            json.dumps(m["spec"]),
            m.get("git_sha"),
            m.get("git_dirty"),
            json.dumps(m.get("versions", {})),
            m.get("host"),
            _utc(m.get("created_at")),
            started,
            finished,
            json.dumps(m.get("plan", {}).get("inputs", {})),
        ],
    )


def _ingest_job(con, run_id: str, status: dict, job_dir: Path, manifest: dict) -> dict[str, int]:
    """Replace one job's rows, inside the caller's transaction: all of them land, or none."""
    job_id, kind, params = status["job_id"], status["kind"], status.get("params", {})
    known = con.execute("SELECT count(*) FROM jobs WHERE run_id = ? AND job_id = ?", [run_id, job_id]).fetchone()
    if known[0]:  # a job's rows are only ever written with its jobs row, so a new job has none to replace
        for table in TABLES_BY_JOB:  # (each DELETE scans the whole table: millions of rows in a big registry)
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
            _utc(status.get("started_at")),
            _utc(status.get("finished_at")),
            status.get("error"),
        ],
    )
    if status["status"] == "succeeded":
        return _artifacts(con, run_id, job_id, kind, params, job_dir)
    return _partial_metrics(con, run_id, job_id, job_dir)  # what an unfinished job logged: its curve stays visible


def _partial_metrics(con, run_id: str, job_id: str, job_dir: Path) -> dict[str, int]:
    import pyarrow as pa

    from knowrl._rundir import MetricLog

    rows = MetricLog(job_dir / "metrics.jsonl").read()
    if not rows:
        return {}
    partial = pa.Table.from_pylist(  # noqa: F841 -- read by name in the SQL below (`table` is an SQL keyword)
        [{"step": r["step"], "name": r["name"], "value": r["value"], "context": r.get("context")} for r in rows]
    )
    con.execute("INSERT INTO metrics SELECT ?, ?, step, name, value, context FROM partial", [run_id, job_id])
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


def reference_csv():
    """The published KnowRL tables shipped with knowrl (reference/knowrl_paper.csv inside the package)."""
    from knowrl.registry._db import package_data

    return package_data("reference") / "knowrl_paper.csv"


def load_reference(registry: str | Path, csv: str | Path | None = None) -> int:
    """Load published results (a CSV shaped like reference/knowrl_paper.csv; that one by default) into
    `reference_results`, replacing that source (the file's name without .csv)."""
    import csv as csvlib

    table = reference_csv() if csv is None else Path(csv)
    if not table.is_file():
        raise KnowrlError(f"no reference table at {table}", hint="pass --csv a CSV shaped like knowrl_paper.csv")
    source = table.name.removesuffix(".csv")
    with table.open(encoding="utf-8", newline="") as f:
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
