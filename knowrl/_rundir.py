"""Run directories: the one place jobs write, and the only thing the registry reads.

    <storage>/runs/<run id>/manifest.json          resolved spec, hash, input fingerprints, plan, git, versions,
                                                   host, times
    <storage>/runs/<run id>/<job id>/status.json   the single truth for a job's state
    <storage>/runs/<run id>/<job id>/...           the job's artifacts (metrics.parquet, samples/, scores.parquet,
                                                   selections.jsonl, logs)

Every file is written by temp name + atomic rename, so a reader never sees a
half-written one; a file damaged some other way (a full disk, a hand edit) is
named by `DamagedFile`, and the job it describes counts as `unknown`.

The format sits below everything that touches it -- the compile step that
starts a run directory, the runtime that fills it, the registry that reads it
-- so none of them imports another for it.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._io import atomic_write_bytes

JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted", "unknown")
"""`interrupted`: its driver died while it ran; `unknown`: its status.json is damaged. Both run again."""

_DAMAGED_HINTS = {
    "status.json": "the job counts as unknown: `knowrl run` runs it again",
    "manifest.json": "`knowrl run` of the run's spec writes it again",
}


class DamagedFile(KnowrlError, ValueError):
    """A state file that exists but is not the JSON object knowrl wrote (torn, truncated or edited)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_path(storage: str | Path, run_id: str) -> Path:
    return Path(storage) / "runs" / run_id


def find_run(run_id: str, storage: str | Path) -> Path:
    """The one run directory under `storage` whose id is `run_id` or starts with it."""
    found = sorted((Path(storage) / "runs").glob(f"{run_id}*"))
    if len(found) != 1:
        raise KnowrlError(
            f"{'no' if not found else 'more than one'} run matches '{run_id}' under {storage}/runs",
            hint="`knowrl status --storage DIR` lists the runs",
        )
    return found[0]


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_json(path: Path) -> dict:
    """A JSON object from a state file; `DamagedFile` (naming it) when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedFile(f"{path} is damaged ({e})", hint=_DAMAGED_HINTS.get(path.name)) from None
    if not isinstance(data, dict):
        raise DamagedFile(
            f"{path} is damaged (a JSON {type(data).__name__}, not an object)", hint=_DAMAGED_HINTS.get(path.name)
        )
    return data


def job_status(run: Path, job_id: str) -> dict:
    """A job's status record: `pending` before it has one, `unknown` (with the reason) when it is damaged."""
    path = run / job_id / "status.json"
    if not path.exists():
        return {"status": "pending", "attempts": 0}
    try:
        record = read_json(path)
    except DamagedFile as e:
        return {"status": "unknown", "attempts": 0, "error": e.message}
    if record.get("status") not in JOB_STATES:
        return {**record, "status": "unknown", "error": f"{path}: unknown status {record.get('status')!r}"}
    return record


def git_state(cwd: str | Path = ".") -> tuple[str | None, bool | None]:
    """(HEAD sha, dirty?) of the git work tree the run starts from; (None, None) outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("knowrl", "pydantic", "duckdb", "math-verify", "torch", "transformers", "trl", "vllm", "ray", "aim"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def write_manifest(run: Path, spec, plan, *, sweep_id: str | None = None) -> dict:
    from knowrl.spec import spec_hash

    sha, dirty = git_state()
    manifest = {
        "run_id": plan.run_id,
        "spec_hash": spec_hash(spec),
        "name": spec.name,
        "sweep_id": sweep_id,
        "spec": spec.model_dump(mode="json"),
        "inputs": plan.inputs,
        "plan": plan.to_dict(),
        "git_sha": sha,
        "git_dirty": dirty,
        "versions": versions(),
        "host": platform.node(),
        "created_at": now(),
    }
    write_json(run / "manifest.json", manifest)
    return manifest


def write_status(run: Path, job, status: str, **fields) -> dict:
    assert status in JOB_STATES, status
    old = job_status(run, job.id)
    old = {} if old["status"] == "unknown" else old
    record = {
        **old,
        "job_id": job.id,
        "kind": job.kind,
        "phase": job.params.get("phase"),
        "params": job.params,
        "status": status,
        **fields,
    }
    write_json(run / job.id / "status.json", record)
    return record


class ProgressFile:
    """A job's progress (done / total, in its own unit) in `<job dir>/progress.json`, written at most ~2x a second."""

    def __init__(self, job_dir: Path, unit: str, total: int = 0) -> None:
        import time

        self.path, self.unit, self.total, self.done = job_dir / "progress.json", unit, total, 0
        self._last, self._clock = 0.0, time.monotonic
        self.write(force=True)

    def advance(self, n: int = 1, total: int | None = None) -> None:
        self.set(self.done + n, total)

    def set(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self.write()

    def write(self, force: bool = False) -> None:
        if force or self._clock() - self._last > 0.5 or self.done >= self.total > 0:
            self._last = self._clock()
            write_json(self.path, {"unit": self.unit, "done": self.done, "total": self.total})


class MetricLog:
    """Metrics appended to `<job dir>/metrics.jsonl` as they are produced, so a killed job keeps them.

    Each batch is one write of whole lines, flushed to disk; a kill can tear
    only the last line, which `read` drops. On success the job turns the log
    into metrics.parquet; until then the registry ingests the log itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):  # a line torn by a kill
                row = json.loads(line)
                if isinstance(row, dict) and {"step", "name", "value"} <= row.keys():
                    rows.append(row)
        return rows

    def truncate(self, after_step: int) -> None:
        """Drop rows past `after_step` (a resumed job produces them again)."""
        if self.path.exists():
            kept = [r for r in self.read() if r["step"] <= after_step]
            atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())
