"""Who drives a run: an exclusive flock on `<run>/.lock` held by its `knowrl run`, and the same claim per job attempt.

The lock file also carries the holder's pid, for `knowrl cancel` to signal and
`knowrl status` to name; a killed holder's lock goes with its process.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._rundir import DamagedFile, read_json


class RunLocked(KnowrlError):
    exit_code = 3


def claim(path: Path):
    """An exclusive flock on `path`, held while the returned handle is open, with our pid written in it.

    BlockingIOError (handle closed) when another process holds it."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def lock_run(run: Path):
    """Hold the run exclusively (an flock on `<run>/.lock`) for as long as the returned handle is open."""
    run.mkdir(parents=True, exist_ok=True)
    try:
        return claim(run / ".lock")
    except BlockingIOError:
        raise RunLocked(
            f"run {run.name} is already being run by another `knowrl run`",
            hint=f"follow it with `knowrl status {run.name}`",
        ) from None


def lock_holder(run: Path) -> int | None:
    """The pid of the `knowrl run` holding the run's lock (None when nobody drives it), without taking the lock.

    Taking the lock to look would make a `knowrl run` starting at that moment
    find it held; the kernel's table of flock locks (`/proc/locks`) names the
    holder instead, also before it has written its pid into the file.
    """
    path = run / ".lock"
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return _holder_by_trying(path)
    for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF"
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return int(parts[4])
    return None


def _holder_by_trying(path: Path) -> int | None:
    """Where the kernel publishes no lock table: try the lock (released at once) and read the pid."""
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            handle.seek(0)
            return int(handle.read() or 0) or None


def driver_gone(run: Path) -> bool:
    """A local run that no `knowrl run` drives (a cluster run's jobs live on without one)."""
    try:
        cluster = bool(read_json(run / "manifest.json").get("ray_address"))
    except (OSError, DamagedFile):
        cluster = False
    return not cluster and lock_holder(run) is None


def stop_driver(run: Path, grace_s: float = 30.0) -> str:
    """Stop the `knowrl run` holding the run's lock -- SIGINT, then SIGTERM, then SIGKILL -- and wait until it has.

    Returns what it took, e.g. "SIGTERM, 2.1 s"."""
    import signal

    pid = lock_holder(run)
    if pid is None:
        raise KnowrlError(f"run {run.name} is not running", hint=f"`knowrl status {run.name}` shows its jobs")
    t0 = time.monotonic()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # gone between two looks
            return f"it had exited, {time.monotonic() - t0:.1f} s"
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if lock_holder(run) is None:
                return f"{sig.name}, {time.monotonic() - t0:.1f} s"
            time.sleep(0.2)
    raise KnowrlError(
        f"the `knowrl run` driving {run.name} (pid {pid}) still holds its lock after SIGKILL",
        hint=f"a process it started may hold {run / '.lock'}: find it with `fuser {run / '.lock'}`",
    )


def cancel_local(run: Path, grace_s: float = 30.0) -> tuple[str, list[str]]:
    """Stop a local run (`stop_driver`) and mark cancelled the jobs its driver left running: one killed outright
    could not write their state. Returns (what stopping took, the run's cancelled jobs); finished jobs are kept."""
    from knowrl._rundir import job_status
    from knowrl.plan._plan import Plan
    from knowrl.runtime._retry import mark_cancelled

    jobs = Plan.from_dict(read_json(run / "manifest.json")["plan"]).jobs
    how = stop_driver(run, grace_s)
    for job in jobs:
        if job_status(run, job.id)["status"] == "running":
            mark_cancelled(run, job, how)
    return how, [j.id for j in jobs if job_status(run, j.id)["status"] == "cancelled"]
