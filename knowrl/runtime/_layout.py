"""Run directories: the one place jobs write, and the only thing the registry reads.

    <storage>/runs/<run id>/manifest.json          resolved spec, hash, plan, git, versions, host, times
    <storage>/runs/<run id>/<job id>/status.json   the single truth for a job's state
    <storage>/runs/<run id>/<job id>/...           the job's artifacts (metrics.parquet, samples/, scores.parquet,
                                                   selections.jsonl, logs)

Every file is written by temp name + atomic rename, so a reader never sees a
half-written one.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from knowrl._io import atomic_write_bytes

JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_path(storage: str | Path, run_id: str) -> Path:
    return Path(storage) / "runs" / run_id


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


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
    path = run / job.id / "status.json"
    old = read_json(path) if path.exists() else {}
    record = {
        **old,
        "job_id": job.id,
        "kind": job.kind,
        "phase": job.params.get("phase"),
        "params": job.params,
        "status": status,
        **fields,
    }
    write_json(path, record)
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
