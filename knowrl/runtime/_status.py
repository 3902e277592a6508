"""What `knowrl status` shows: each run's planned jobs and their states, read from the run directories.

A cluster run is first reconciled with Ray (which submits the jobs that became
ready and ingests those that finished), unless an attached `knowrl run` follows
it. A local job still `running` with no driver holding the run's lock is shown
as interrupted: its `knowrl run` was stopped, and running it again resumes it.
One damaged run or one unreachable cluster is named on its run's line and
hides no other run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from knowrl._errors import KnowrlError


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    attempts: int = 0
    error: str | None = None


@dataclass
class RunState:
    run_id: str
    name: str | None
    """The spec's name; None when the manifest is missing or damaged."""
    started: bool = True
    """False for a run directory with no manifest and no job yet."""
    driven: bool = False
    """A local run whose `knowrl run` is alive."""
    trouble: str = ""
    """Why the run's files or its cluster could not be read in full."""
    jobs: list[JobState] = field(default_factory=list)


def run_states(
    storage: str | Path, run_id: str | None = None, say: Callable[[str], None] = print
) -> Iterator[RunState]:
    """The runs under `storage` (or those whose id starts with `run_id`), one at a time as each is read (a cluster
    run's reconciling takes a round trip to Ray); `say` hears what reconciling did."""
    runs = sorted(r for r in (Path(storage) / "runs").glob(f"{run_id or ''}*") if r.is_dir())
    if not runs:
        raise KnowrlError(
            f"no run {run_id or ''} under {storage}/runs",
            hint="`knowrl status --storage DIR` lists the runs there" if run_id else "start one with `knowrl run SPEC`",
        )
    for run in runs:
        yield _run_state(run, say)


def _run_state(run: Path, say) -> RunState:
    from knowrl._rundir import job_status, read_json
    from knowrl.plan._plan import Plan
    from knowrl.runtime._locks import lock_holder

    m, planned, trouble = None, [], ""
    try:
        m = read_json(run / "manifest.json") if (run / "manifest.json").exists() else None
        planned = [j.id for j in Plan.from_dict(m["plan"]).jobs] if m else []
    except (KnowrlError, KeyError, TypeError) as e:  # one damaged run never hides the others
        m, trouble = None, f"{getattr(e, 'message', f'manifest.json lacks {e}')}"
    found = sorted(f.parent.name for f in run.glob("*/status.json"))
    if m is None and not trouble and not found:
        return RunState(run.name, None, started=False)
    if m and m.get("ray_address"):
        trouble = _reconcile(run, say)
    local = m is not None and not m.get("ray_address")
    driven = local and lock_holder(run) is not None
    jobs = []
    for job_id in planned + [j for j in found if j not in planned]:
        st = job_status(run, job_id)
        state, error = st["status"], st.get("error")
        if state == "running" and local and not driven:
            state, error = "interrupted", "its `knowrl run` stopped; `knowrl run` runs it again"
        jobs.append(JobState(job_id, state, st.get("attempts", 0), error))
    return RunState(run.name, m["name"] if m else None, driven=driven, trouble=trouble, jobs=jobs)


def _reconcile(run: Path, say) -> str:
    """Bring a cluster run up to date with Ray; what kept it from that, or ""."""
    from knowrl.runtime._cluster import follow
    from knowrl.runtime._locks import RunLocked, lock_holder

    try:
        follow(run, detach=True, say=say)
    except RunLocked:  # an attached `knowrl run` follows it: the files say what it knows
        return f"followed by `knowrl run`, pid {lock_holder(run)}"
    except KnowrlError as e:
        return f"not reconciled with Ray: {e.message}"
    return ""
