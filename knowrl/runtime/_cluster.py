"""A plan on a Ray cluster through the Jobs API: deterministic submission ids, dependencies, polling.

Each job is one Ray job (`knowrl-<hash12>-<job>-<attempt>`), submitted once its
dependencies succeeded; knowrl's own jobs run `python -m knowrl.runtime.job_main`,
training on NeMo-RL or verl runs the compiled launch command. The bookkeeping
lives in the run directory and Ray, so `--detach` returns at once and
`knowrl status` picks up where it left off.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._rundir import job_status, now, read_json, run_path, write_json, write_manifest, write_status
from knowrl.runtime._locks import lock_run
from knowrl.runtime._retry import CANCELLED, attempts_left, mark_cancelled, record_failure, renew_budgets, startable

ACTIVE = ("PENDING", "RUNNING")


TRANSIENT = (
    "No available agent to submit job",
    "Connection refused",
    "Connection reset",
    "Connection aborted",
    "Remote end closed connection",
    "Bad Gateway",
)
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
    """Create or resume the run and follow it on the cluster (one pass with `detach`).

    The run directory and every local path the jobs read are made absolute
    first: a Ray job starts in a working directory of Ray's own, and the
    training commands `cd` into the backend's checkout.
    """
    from knowrl.backends._data import GRADING_SITE
    from knowrl.grading._site import build_site
    from knowrl.plan import plan

    spec = for_cluster(spec)
    p = plan(spec)
    run = run_path(spec.resources.storage, p.run_id)
    if preflight and not all(job_status(run, j.id)["status"] == "succeeded" for j in p.jobs):
        check_cluster(client(address), address, p, spec, say)  # before anything is written or submitted
    if not (run / "manifest.json").exists():
        write_manifest(run, spec, p)
        m = read_json(run / "manifest.json")
        write_json(run / "manifest.json", {**m, "ray_address": address})
    renew_budgets(run, p.jobs)  # an explicit `knowrl run` gives failed jobs a fresh budget and lifts a cancel
    build_site(run / GRADING_SITE)  # here, where knowrl's antlr is: a node's Hydra pins another (grading/_site.py)
    return follow(run, address, detach=detach, say=say, poll_s=poll_s)


PATH_KEYS = ("model.path", "model.tokenizer", "eval.data", "resources.storage", "resources.backend_dir")
"""Spec values that may name a local file or folder, besides the sources of every dataset and eval benchmark."""


def for_cluster(spec, cwd: Path | None = None):
    """The spec with each relative path that exists here made absolute (Hub ids and `hf://` sources stay)."""
    from knowrl.spec import validate

    cwd = cwd or Path.cwd()
    raw = spec.model_dump(mode="json")

    def absolute(value):
        if not isinstance(value, str) or not value or "://" in value or Path(value).is_absolute():
            return value
        return str((cwd / value).absolute()) if (cwd / value).exists() else value

    for dotted in PATH_KEYS:
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = absolute(node[leaf])
    raw["resources"]["storage"] = str((cwd / spec.resources.storage).absolute())
    for source in [*raw["data"]["train"], *raw["data"]["validation"], *raw["eval"]["benchmarks"]]:
        source["source"] = absolute(source["source"])
    return validate(raw)


def check_cluster(c, address: str, p, spec, say=print, timeout_s: float = 180.0) -> None:
    """The plan against the cluster it will run on: enough nodes with enough GPUs, and the software installed.

    Both are checked before anything is submitted, so a missing NeMo-RL
    checkout is reported in seconds rather than after the selection and eval
    jobs before training have spent their GPU hours.
    """
    from knowrl.backends import get_backend
    from knowrl.backends._submission import requirements

    _check_gpus(address, p)
    checks = requirements(p, spec)
    if spec.resources.backend != "local" and any(j.kind in ("train", "export") for j in p.jobs):
        checks += get_backend(p.backend).requirements(spec)
    _probe(c, address, f"knowrl-{p.run_id[:12]}-preflight-{int(time.time())}", checks, say, timeout_s)


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


VERSIONS = "python3 -c " + shlex.quote(
    "import platform, ray; print('cluster: Python', platform.python_version(), 'Ray', ray.__version__)"
)
"""What the preflight reports of the nodes' Python and Ray: knowrl's jobs and code run on both."""


def _probe(c, address: str, sid: str, checks: list[tuple[str, str]], say, timeout_s: float) -> None:
    """One small Ray job runs every (shell check, what is missing) where the jobs will run; all misses reported.

    It carries the same runtime env as knowrl's jobs (knowrl's code as
    `py_modules`), so it asks of the cluster exactly what they will need.
    """
    from knowrl.backends._base import knowrl_runtime_env

    script = f"{VERSIONS} 2>/dev/null || true\n" + "".join(
        f"if ! {{ {cmd}; }} >/dev/null 2>&1; then echo {shlex.quote('missing: ' + what)}; fail=1; fi\n"
        for cmd, what in checks
    )
    entrypoint = f"sh -c {shlex.quote('fail=0' + chr(10) + script + 'exit $fail')}"
    env = knowrl_runtime_env({})
    call(lambda: c.submit_job(entrypoint=entrypoint, submission_id=sid, runtime_env=env), "submitting the preflight")
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
    lines = call(lambda: c.get_job_logs(sid), f"reading {sid}'s log").splitlines()
    for line in lines:
        if line.startswith("cluster: "):
            say(f"preflight: {line}")
    if status != "SUCCEEDED":
        missing = [line.removeprefix("missing: ") for line in lines if line.startswith("missing: ")]
        raise KnowrlError(
            f"the Ray cluster at {address} cannot run this plan: "
            + ("; ".join(missing) or f"preflight job {sid} {status.lower()}"),
            hint=f"install what is missing on the cluster's image (`ray job logs {sid}` for details), "
            "or skip this check with --no-preflight",
        )


def follow(run: Path, address: str | None = None, *, detach: bool = False, say=print, poll_s: float = 1.0) -> dict:
    """Reconcile job states with Ray, submit what became ready, ingest what finished; repeat unless detached."""
    from knowrl.backends import get_backend
    from knowrl.plan._plan import Plan
    from knowrl.registry import ingest
    from knowrl.spec import validate

    manifest = read_json(run / "manifest.json")
    address = address or manifest.get("ray_address")
    if not address:
        raise KnowrlError(f"run {run.name} was not submitted to a cluster")
    spec = validate(manifest["spec"])
    p = Plan.from_dict(manifest["plan"])
    backend, policy = get_backend(p.backend), spec.resources.retries
    lock = lock_run(run)  # before Ray is asked anything: one follower per run
    try:
        c = client(address)
        while True:
            finished = _reconcile(c, run, p.jobs, policy, say, spec.resources.backend)
            finished |= _phases_already_done(run, p.jobs, backend, say)
            if finished:
                ingest(spec.registry.path, [run], only_jobs=finished)
            states = {j.id: job_status(run, j.id) for j in p.jobs}
            waiting = []  # jobs whose dependencies succeeded and that may still start (some in their backoff)
            for job in p.jobs:
                st = states[job.id]
                if st["status"] == "succeeded" or st.get("active"):
                    continue
                if not all(states[d]["status"] == "succeeded" for d in job.depends_on):
                    continue
                if startable(policy, job, st, run):
                    _submit(c, run, spec, p, job, st.get("attempts", 0) + 1, say)
                elif attempts_left(policy, job, st) > 0 and not (run / CANCELLED).exists():
                    waiting.append(job.id)
            states = {j.id: job_status(run, j.id) for j in p.jobs}
            active = [j for j, s in states.items() if s.get("active")]
            if detach or not (active or waiting):
                return {j: s["status"] for j, s in states.items()}
            time.sleep(poll_s)
    finally:
        lock.close()


def _phases_already_done(run: Path, jobs, backend, say) -> set[str]:
    """Training phases whose backend checkpoint at their last step is complete: done, whatever Ray said.

    A phase that saved its last step and then failed (in teardown, say) would
    otherwise be retried, and the backend's resume would load that step, add
    one and train a step past the phase's end at the phase's old clip bounds.
    """
    done = set()
    for job in jobs:
        if job.kind != "train" or job.params.get("end_step") is None:
            continue
        st = job_status(run, job.id)
        if st["status"] == "succeeded" or st.get("active") or not backend.checkpoint_done(run, job.params["end_step"]):
            continue
        summary = {"steps": job.params["end_step"], "note": "its checkpoint at the phase's last step is complete"}
        write_status(run, job, "succeeded", active=False, finished_at=st.get("finished_at") or now(), summary=summary)
        say(f"{job.id}: succeeded (checkpoint at step {job.params['end_step']} found complete)")
        done.add(job.id)
    return done


def cancel_run(run: Path, address: str) -> list[str]:
    """Stop a cluster run: mark it cancelled first (so no follow loop resubmits), then stop its Ray jobs."""
    from knowrl.plan._plan import Plan

    write_json(run / CANCELLED, {"cancelled_at": now()})
    c = client(address)
    stopped = []
    for job in Plan.from_dict(read_json(run / "manifest.json")["plan"]).jobs:
        st = job_status(run, job.id)
        if st.get("active"):
            call(lambda sid=st["submission_id"]: c.stop_job(sid), f"stopping {st['submission_id']}")
            mark_cancelled(run, job)
            stopped.append(f"{job.id} ({st['submission_id']})")
    return stopped


def _submit(c, run: Path, spec, p, job, attempt: int, say) -> None:
    from knowrl._io import atomic_write_bytes
    from knowrl.backends._submission import submission

    request, files = submission(job, spec, p, str(run), attempt)
    for name, text in files.items():
        atomic_write_bytes(run / name, text.encode())
    call(lambda: c.submit_job(**request), f"submitting {job.id}")
    sid = request["submission_id"]
    fresh = {"started_at": None, "finished_at": None}  # an earlier attempt's are not this one's
    write_status(run, job, "pending", attempts=attempt, submission_id=sid, active=True, submitted_at=now(), **fresh)
    say(f"submitted {job.id} as {sid}")


def _reconcile(c, run: Path, jobs, policy, say, backend: str = "local") -> set[str]:
    """Ray's word on every active submission; returns the jobs that just finished."""
    from knowrl.backends._submission import runs_backend_command

    finished = set()
    for job in jobs:
        st = job_status(run, job.id)
        if not st.get("active"):
            continue
        ray_status = _ray_status(c, st["submission_id"])
        if ray_status == "RUNNING" and st["status"] == "pending" and runs_backend_command(job.kind, backend):
            write_status(run, job, "running", started_at=now())  # a backend's job says nothing of itself
        if ray_status in ACTIVE:
            continue
        st = job_status(run, job.id)  # the job may have written its own final status meanwhile
        if job.kind == "train" and backend != "local":  # its event files -> metrics.parquet, failed or not
            from knowrl.runtime._backend_metrics import collect

            collect(run / job.id, backend, job.params.get("phase"))
        if ray_status == "SUCCEEDED":
            write_status(run, job, "succeeded", active=False, finished_at=st.get("finished_at") or now())
            say(f"{job.id}: succeeded")
        elif st["status"] == "cancelled" or (run / CANCELLED).exists():
            write_status(run, job, "cancelled", active=False, finished_at=st.get("finished_at") or now())
            say(f"{job.id}: cancelled")
        else:
            error = st.get("error") or f"Ray job {st['submission_id']} {ray_status.lower()}"
            retryable = st.get("retryable") is not False  # knowrl's own jobs say whether their input was bad
            say(f"{job.id}: failed ({error[:200]})")
            say("  " + record_failure(run, job, policy, error, retryable=retryable, active=False, finished_at=now()))
        finished.add(job.id)
    return finished
