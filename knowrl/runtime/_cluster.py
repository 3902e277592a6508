"""A plan on a Ray cluster through the Jobs API: deterministic submission ids, dependencies, polling.

Each job is one Ray job (`knowrl-<hash12>-<job>-<attempt>`), submitted once its
dependencies succeeded; knowrl's own jobs run `python -m knowrl.runtime.job_main`,
training on NeMo-RL or verl runs the compiled launch command. The bookkeeping
lives in the run directory and Ray, so `--detach` returns at once and
`knowrl status` picks up where it left off.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl.runtime._engine import lock_run
from knowrl.runtime._layout import job_status, now, read_json, run_path, write_json, write_manifest, write_status

ACTIVE = ("PENDING", "RUNNING")


TRANSIENT = ("No available agent to submit job", "Connection refused", "Connection reset", "Bad Gateway")
"""What a Ray head says while it is still starting (its job agent not yet up) or restarting: try again."""


def call(fn, what: str, timeout_s: float = 120.0, pause_s: float = 1.0):
    """`fn()`, retried while the Jobs API answers with a transient error, up to `timeout_s`.

    A fresh head answers "No available agent to submit job, please try again
    later" (HTTP 500) for a while, longer on a loaded machine. A retried
    submission that the first try already made is not an error: submission ids
    are deterministic, so "already exists" means it went through.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except Exception as e:
            text = str(e)
            if "already exists" in text and what.startswith("submitting"):
                return None
            if not any(t in text for t in TRANSIENT) or time.monotonic() > deadline:
                if any(t in text for t in TRANSIENT):
                    raise KnowrlError(
                        f"{what}: the Ray Jobs API kept answering '{text.splitlines()[0][:200]}' for {timeout_s:.0f} s",
                        hint="is the head still starting, or overloaded? `knowrl status RUN` continues later",
                    ) from None
                raise
            time.sleep(pause_s)


def _ray_status(c, sid: str) -> str:
    """A submission's status as Ray names it: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    return str(call(lambda: c.get_job_status(sid), f"asking Ray for {sid}")).split(".")[-1]


def client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:
        raise KnowrlError(
            f"cannot reach the Ray Jobs API at {address}: {str(e).splitlines()[0]}",
            hint="check the address (http://HEAD:8265) and that the dashboard is up",
        ) from None


def submit_run(
    spec, address: str, *, detach: bool = False, preflight: bool = True, say=print, poll_s: float = 1.0
) -> dict:
    """Create or resume the run and follow it on the cluster (one pass with `detach`)."""
    from knowrl.plan import plan

    p = plan(spec)
    run = run_path(spec.resources.storage, p.run_id)
    if preflight and not all(job_status(run, j.id)["status"] == "succeeded" for j in p.jobs):
        check_cluster(client(address), address, p, spec, say)  # before anything is written or submitted
    if not (run / "manifest.json").exists():
        write_manifest(run, spec, p)
        m = read_json(run / "manifest.json")
        write_json(run / "manifest.json", {**m, "ray_address": address})
    for job in p.jobs:  # an explicit `knowrl run` gives failed jobs a fresh retry budget
        st = job_status(run, job.id)
        if st["status"] in ("failed", "cancelled") and not st.get("active"):
            write_status(run, job, st["status"], budget_from=st.get("attempts", 0), retry_at=0, retryable=True)
    return follow(run, address, detach=detach, say=say, poll_s=poll_s)


def check_cluster(c, address: str, p, spec, say=print, timeout_s: float = 180.0) -> None:
    """The plan against the cluster it will run on: enough nodes with enough GPUs, and the software installed.

    Both are checked before anything is submitted, so a missing NeMo-RL
    checkout is reported in seconds rather than after the selection and eval
    jobs before training have spent their GPU hours.
    """
    _check_gpus(address, p)
    checks = [(f"{sys.executable} -c 'import knowrl'", f"knowrl for {sys.executable}")]
    if any(j.kind == "train" for j in p.jobs):
        from knowrl.backends import get_backend

        checks += get_backend(p.backend).requirements(spec)
    _probe(c, address, f"knowrl-{p.run_id}-preflight-{int(time.time())}", checks, say, timeout_s)


def _check_gpus(address: str, p) -> None:
    """Alive nodes' GPUs (Ray's state API) against the largest job's nodes x GPUs per node."""
    from ray.util.state import list_nodes

    try:
        nodes = [n for n in list_nodes(address=address, limit=10_000) if n.state == "ALIVE"]
    except Exception as e:
        raise KnowrlError(
            f"cannot list the nodes of the Ray cluster at {address}: {str(e).splitlines()[0]}",
            hint="check the address, or skip this check with --no-preflight",
        ) from None
    gpus = sorted((int(n.resources_total.get("GPU", 0)) for n in nodes), reverse=True)
    for job in sorted(p.jobs, key=lambda j: -j.resources.gpus):
        r = job.resources
        if r.gpus and sum(g >= r.gpus_per_node for g in gpus) < r.nodes:
            have = ", ".join(f"{g} GPU{'s' * (g != 1)}" for g in gpus) or "no nodes"
            raise KnowrlError(
                f"job {job.id} needs {r.nodes} node(s) with {r.gpus_per_node} {p.cluster['gpu_type']} GPUs each "
                f"({r.gpus} GPUs for the {p.backend} backend); the Ray cluster at {address} has {len(gpus)} alive "
                f"node(s): {have}",
                hint="submit to a bigger cluster, shrink resources.nodes / resources.gpus_per_node (`knowrl plan` "
                "shows the packing), or, for an autoscaling cluster that grows on demand, pass --no-preflight",
            )


def _probe(c, address: str, sid: str, checks: list[tuple[str, str]], say, timeout_s: float) -> None:
    """One small Ray job runs every (shell check, what is missing) where the jobs will run; all misses reported."""
    script = "".join(
        f"if ! {{ {cmd}; }} >/dev/null 2>&1; then echo {shlex.quote('missing: ' + what)}; fail=1; fi\n"
        for cmd, what in checks
    )
    entrypoint = f"sh -c {shlex.quote('fail=0' + chr(10) + script + 'exit $fail')}"
    call(lambda: c.submit_job(entrypoint=entrypoint, submission_id=sid), "submitting the preflight job")
    say(f"preflight: checking the cluster's software ({sid})")
    deadline = time.monotonic() + timeout_s
    while (status := _ray_status(c, sid)) in ACTIVE:
        if time.monotonic() > deadline:
            c.stop_job(sid)
            raise KnowrlError(
                f"the preflight job {sid} did not finish in {timeout_s:.0f} s",
                hint="is the cluster saturated? `ray job logs` shows it; --no-preflight skips the check",
            )
        time.sleep(0.5)
    if status != "SUCCEEDED":
        missing = [
            line.removeprefix("missing: ")
            for line in call(lambda: c.get_job_logs(sid), f"reading {sid}'s log").splitlines()
            if line.startswith("missing: ")
        ]
        raise KnowrlError(
            f"the Ray cluster at {address} cannot run this plan: "
            + ("; ".join(missing) or f"preflight job {sid} {status.lower()}"),
            hint=f"install what is missing on the cluster's image (`ray job logs {sid}` for details), "
            "or skip this check with --no-preflight",
        )


def follow(run: Path, address: str | None = None, *, detach: bool = False, say=print, poll_s: float = 1.0) -> dict:
    """Reconcile job states with Ray, submit what became ready, ingest what finished; repeat unless detached."""
    from knowrl.plan._plan import Plan
    from knowrl.registry import ingest
    from knowrl.spec import validate

    manifest = read_json(run / "manifest.json")
    address = address or manifest.get("ray_address")
    if not address:
        raise KnowrlError(f"run {run.name} was not submitted to a cluster")
    spec = validate(manifest["spec"])
    p = Plan.from_dict(manifest["plan"])
    jobs = p.jobs
    c = client(address)
    lock = lock_run(run)
    try:
        while True:
            finished = _reconcile(c, run, jobs, spec.resources.retries, say, spec.resources.backend)
            if finished:
                ingest(spec.registry.path, [run], only_jobs=finished)
            states = {j.id: job_status(run, j.id) for j in jobs}
            waiting = []  # failed jobs with attempts left, in their backoff
            for job in jobs:
                st = states[job.id]
                deps_ok = all(states[d]["status"] == "succeeded" for d in job.depends_on)
                left = spec.resources.retries.attempts(job.kind) - (st.get("attempts", 0) - st.get("budget_from", 0))
                if st["status"] == "failed" and st.get("retryable") is False:
                    left = 0  # bad input fails the same way every time; `knowrl run` again after fixing it
                if st["status"] in ("pending", "failed", "cancelled") and deps_ok and not st.get("active") and left > 0:
                    if time.time() >= st.get("retry_at", 0):
                        _submit(c, run, spec, p, job, st.get("attempts", 0) + 1, say)
                    else:
                        waiting.append(job.id)
            states = {j.id: job_status(run, j.id) for j in jobs}
            active = [j for j, s in states.items() if s.get("active")]
            if detach or not (active or waiting):
                return {j: s["status"] for j, s in states.items()}
            time.sleep(poll_s)
    finally:
        lock.close()


def _submit(c, run: Path, spec, p, job, attempt: int, say) -> None:
    from knowrl._io import atomic_write_bytes
    from knowrl.runtime._submission import submission

    request, files = submission(job, spec, p, str(run), attempt)
    for name, text in files.items():
        atomic_write_bytes(run / name, text.encode())
    call(lambda: c.submit_job(**request), f"submitting {job.id}")
    sid = request["submission_id"]
    write_status(run, job, "pending", attempts=attempt, submission_id=sid, active=True, submitted_at=now())
    say(f"submitted {job.id} as {sid}")


def _reconcile(c, run: Path, jobs, retries, say, backend: str = "local") -> set[str]:
    """Ray's word on every active submission; returns the jobs that just finished."""
    finished = set()
    for job in jobs:
        st = job_status(run, job.id)
        if not st.get("active"):
            continue
        ray_status = _ray_status(c, st["submission_id"])
        if ray_status in ACTIVE:
            continue
        st = job_status(run, job.id)  # the job may have written its own final status meanwhile
        if job.kind == "train" and backend != "local":  # its event files -> metrics.parquet, failed or not
            from knowrl.runtime._backend_metrics import collect

            collect(run / job.id, backend, job.params.get("phase"))
        if ray_status == "SUCCEEDED":
            write_status(run, job, "succeeded", active=False, finished_at=st.get("finished_at") or now())
        else:
            error = st.get("error") or f"Ray job {st['submission_id']} {ray_status.lower()}"
            delay = retries.delay(st.get("attempts", 1) - st.get("budget_from", 0))
            write_status(run, job, "failed", active=False, finished_at=now(), error=error, retry_at=time.time() + delay)
        finished.add(job.id)
        say(f"{job.id}: {job_status(run, job.id)['status']}")
    return finished
