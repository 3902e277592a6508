"""The retry and bad-input policy, in one place for the embedded engine and the cluster loop.

Both keep a job's attempts in its `status.json`, so the count survives a
killed driver and a `knowrl status` on another machine: `attempts` counts
every attempt ever made, `budget_from` is where this `knowrl run`'s budget
began (an explicit `knowrl run` renews it), `retryable: false` marks bad input
that would fail the same way again, and `retry_at` (wall-clock seconds) ends
the backoff.
"""

from __future__ import annotations

import time
from pathlib import Path

from knowrl._rundir import job_status, now, write_status

CANCELLED = "cancelled.json"
"""A run `knowrl cancel` stopped: nothing more is submitted for it until `knowrl run` resumes it."""


def mark_cancelled(run: Path, job, how: str = "") -> None:
    """The job's status as `knowrl cancel` leaves it: cancelled, not active, with what stopped it."""
    detail = f", {how}" if how else ""
    write_status(run, job, "cancelled", active=False, finished_at=now(), error=f"cancelled (`knowrl cancel`{detail})")


def renew_budgets(run: Path, jobs) -> None:
    """An explicit `knowrl run`: failed, cancelled and interrupted jobs get a fresh budget of attempts."""
    (run / CANCELLED).unlink(missing_ok=True)
    for job in jobs:
        st = job_status(run, job.id)
        if st["status"] in ("failed", "cancelled", "interrupted") and not st.get("active"):
            write_status(run, job, st["status"], budget_from=st.get("attempts", 0), retry_at=0, retryable=True)


def attempts_left(policy, job, st: dict) -> int:
    """Attempts the job may still make in this `knowrl run`."""
    if st["status"] == "failed" and st.get("retryable") is False:
        return 0  # bad input fails the same way every time; `knowrl run` again after fixing it
    return policy.attempts(job.kind) - (st.get("attempts", 0) - st.get("budget_from", 0))


def startable(policy, job, st: dict, run: Path) -> bool:
    """Whether the job may start now: unfinished, not running, not cancelled, attempts left, backoff over."""
    return (
        st["status"] in ("pending", "failed", "cancelled", "interrupted", "unknown")
        and not st.get("active")
        and not (run / CANCELLED).exists()
        and attempts_left(policy, job, st) > 0
        and time.time() >= st.get("retry_at", 0)
    )


def record_failure(run: Path, job, policy, error: str, *, retryable: bool = True, **fields) -> str:
    """Write the failure and its backoff; returns what happens next, for the console."""
    st = job_status(run, job.id)
    tried = st.get("attempts", 1) - st.get("budget_from", 0)
    delay = policy.delay(tried)
    st = write_status(run, job, "failed", error=error, retryable=retryable, retry_at=time.time() + delay, **fields)
    if not retryable:
        return f"not retrying {job.id}: fix the input, then `knowrl run` again"
    left = attempts_left(policy, job, st)
    if left <= 0:
        return f"{job.id} used its {policy.attempts(job.kind)} attempts; `knowrl run` again to retry"
    return f"retrying {job.id} in {delay:g} s (attempt {tried + 1} of {policy.attempts(job.kind)})"
