"""`knowrl run`: follow a plan's DAG on an embedded local Ray, resumably.

The run id is the spec hash, so the same spec maps to the same run directory:
finished jobs are skipped, failed or interrupted ones run again (training
resumes from its last checkpoint), and a finished run does nothing. A lock on
the run directory keeps two `knowrl run` of one spec from both running it.
After each job the driver ingests the run into the registry and the tracker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._rundir import DamagedFile, job_status, now, read_json, run_path, write_manifest, write_status
from knowrl.runtime._locks import lock_run
from knowrl.runtime._retry import attempts_left, record_failure, renew_budgets, startable
from knowrl.runtime._tracking import RunTracker


def check_inputs_here(spec, p) -> None:
    """A local run's model folder is one, and every Hub model or dataset it reads is reachable: once, up front.

    Otherwise each job would find out for itself, after its own retries (minutes per job offline)."""
    from knowrl.generation._transformers import check_local_model

    if not p.jobs:  # nothing will read them
        return
    check_local_model(spec.model.path)
    unreachable = [f"{k} ({v['source']})" for k, v in p.inputs.items() if "revision" in v and v["revision"] is None]
    if unreachable:
        raise KnowrlError(
            "cannot reach " + ", ".join(unreachable) + ": not in the local Hugging Face cache, and the Hub does not "
            "answer",
            hint="run once where the Hub is reachable (it is cached then), or point the spec at local files "
            "(.jsonl or .parquet)",
        )


def check_capacity(p, gpus_available: float) -> None:
    need = max((j.resources.gpus for j in p.jobs), default=0)
    if need > gpus_available:
        raise KnowrlError(
            f"the plan needs {need} {p.cluster['gpu_type']} GPUs for the {p.backend} backend and this Ray cluster "
            f"has {int(gpus_available) or 'none'}",
            hint="submit to a GPU cluster (`knowrl compile` writes its launch files), inspect the plan with "
            "`knowrl plan`, or try `knowrl run experiments/quickstart.yaml` on this machine",
        )


def check_backend_here(spec, p) -> None:
    """A NeMo-RL or verl spec runs that backend on this machine, or stops now: never TRL in its place."""
    if spec.resources.backend == "local" or not any(j.kind == "train" for j in p.jobs):
        return
    import subprocess

    from knowrl.backends import get_backend

    missing = [
        what
        for check, what in get_backend(spec.resources.backend).requirements(spec)
        if subprocess.run(check, shell=True, capture_output=True).returncode != 0
    ]
    if missing:
        raise KnowrlError(
            f"the {spec.resources.backend} backend cannot run on this machine: missing " + "; ".join(missing),
            hint="install it here, submit to a cluster that has it (`knowrl run SPEC --address http://HEAD:8265`), "
            "or compile the launch files with `knowrl compile`",
        )


def _start_ray(num_cpus: int):
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # No `_node_ip_address`: Ray replaces a loopback one with the node's own address anyway.
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return ray


def run_spec(spec, *, console=None, registry_timeout_s: float = 60.0, sweep_id: str | None = None) -> dict:
    """Run every unfinished job of a spec's plan (a point of sweep `sweep_id`, if given); return {job id: status}."""
    from knowrl.plan import plan

    say = console.print if console else (lambda *a, **k: None)
    p = plan(spec)
    run = run_path(spec.resources.storage, p.run_id)
    lock = lock_run(run)
    try:
        fresh = not _manifest_readable(run, say)
        _mark_interrupted(run, p, say)
        renew_budgets(run, p.jobs)
        statuses = {j.id: job_status(run, j.id)["status"] for j in p.jobs}
        if not fresh and all(s == "succeeded" for s in statuses.values()):
            say(f"run {p.run_id} of {spec.name} is already complete: nothing to do")
            _after({j.id for j in p.jobs}, p, run, spec, None, registry_timeout_s)  # into the registry it names
            return statuses
        if spec.resources.backend == "local":  # the inputs load on this machine: say so before Ray starts
            check_inputs_here(spec, p)
        ray = _start_ray(os.cpu_count() or 1)
        tracker = None
        try:
            check_capacity(p, ray.cluster_resources().get("GPU", 0))  # before anything is written or started
            check_backend_here(spec, p)
            if fresh:
                write_manifest(run, spec, p, sweep_id=sweep_id)
            tracker = RunTracker(spec, p, run)
            with _stop_signals():
                statuses = _follow(
                    ray,
                    p,
                    spec,
                    run,
                    statuses,
                    say,
                    lambda jobs: _after(jobs, p, run, spec, tracker, registry_timeout_s),
                    _Bars(console),
                )
        except BaseException:  # closing must not replace the error (or the Ctrl-C) already on its way
            with contextlib.suppress(Exception):
                _close(ray, tracker)
            raise
        _close(ray, tracker)
        return statuses
    finally:
        lock.close()
        if not (run / "manifest.json").exists():  # stopped before it began: leave no empty run behind
            (run / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run.rmdir()


def _close(ray, tracker) -> None:
    ray.shutdown()
    if tracker is not None:
        tracker.close()


def _manifest_readable(run: Path, say) -> bool:
    """Whether the run already has a manifest; a damaged one is moved aside (kept) and written again."""
    path = run / "manifest.json"
    if not path.exists():
        return False
    try:
        read_json(path)
        return True
    except DamagedFile as e:
        aside = path.with_name(f"manifest.damaged-{int(time.time())}.json")
        path.rename(aside)
        say(f"[yellow]{e.message}[/]: kept as {aside.name}; writing it again")
        return False


def _mark_interrupted(run: Path, p, say) -> None:
    """Jobs still `running` under a free lock lost their driver (killed): say so, and run them again."""
    for job in p.jobs:
        if job_status(run, job.id)["status"] == "running":
            write_status(run, job, "interrupted", finished_at=now(), error="its `knowrl run` stopped while it ran")
            say(f"[yellow]{job.id} was interrupted[/] (its driver stopped); running it again")


@contextlib.contextmanager
def _stop_signals():
    """SIGINT and SIGTERM stop the run as Ctrl-C does (jobs cancelled, state written), whoever sends them.

    A shell starts `knowrl run ... &` with SIGINT ignored, and Python keeps an
    inherited SIG_IGN; `knowrl cancel` must not depend on how the run was started.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _after(job_ids: set[str], p, run: Path, spec, tracker, timeout_s: float) -> None:
    """After jobs finish: ingest them into the registry (the one writer) and hand them to the tracker."""
    from knowrl.registry import ingest

    ingest(spec.registry.path, [run], timeout_s=timeout_s, only_jobs=job_ids)
    for job in p.jobs if tracker else ():
        if job.id in job_ids and job_status(run, job.id)["status"] == "succeeded":
            tracker.job_done(job)


class _Bars:
    """One rich progress bar per running job, fed by the jobs' progress.json (steps, samples or problems).

    Without a console (a library caller) every method does nothing.
    """

    def __init__(self, console) -> None:
        self.tasks: dict[str, int] = {}
        self.progress = None
        if console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=console,
        )

    def start(self) -> None:
        if self.progress:
            self.progress.start()

    def stop(self) -> None:
        """Idempotent: the bars leave the screen."""
        if self.progress:
            self.progress.stop()

    def refresh(self, run: Path, job_ids) -> None:
        for job_id in job_ids if self.progress else ():
            path = run / job_id / "progress.json"
            try:
                state = read_json(path) if path.exists() else None
            except ValueError:  # being replaced right now
                continue
            if job_id not in self.tasks:
                self.tasks[job_id] = self.progress.add_task(job_id, total=None, unit="")
            if state:
                self.progress.update(
                    self.tasks[job_id], completed=state["done"], total=state["total"] or None, unit=state["unit"]
                )

    def finish(self, job_id: str) -> None:
        if self.progress and job_id in self.tasks:
            self.progress.remove_task(self.tasks.pop(job_id))


def _follow(ray, p, spec, run: Path, statuses: dict, say, after_job, bars: _Bars) -> dict:
    from knowrl.backends._submission import driver_gpus
    from knowrl.runtime._jobs import execute

    remote = ray.remote(execute)
    spec_json = spec.model_dump(mode="json")
    running: dict = {}
    policy = spec.resources.retries
    bars.start()
    try:
        while True:
            busy = {job.id for job, _ in running.values()}
            waiting = [
                j
                for j in p.jobs
                if statuses[j.id] != "succeeded"
                and j.id not in busy
                and all(statuses[d] == "succeeded" for d in j.depends_on)
                and attempts_left(policy, j, job_status(run, j.id)) > 0
            ]
            for job in [j for j in waiting if startable(policy, j, job_status(run, j.id), run)]:
                attempt = job_status(run, job.id).get("attempts", 0) + 1
                write_status(run, job, "running", attempts=attempt, started_at=now(), error=None)
                statuses[job.id] = "running"
                res = dict(num_cpus=job.resources.cpus, num_gpus=driver_gpus(job, spec))
                ref = remote.options(**res).remote(dataclasses.asdict(job), spec_json, str(run))
                running[ref] = (job, time.monotonic())
                say(f"[bold]started[/] {job.id} (attempt {attempt})")
            if not running:
                if not waiting:
                    break
                time.sleep(0.2)  # a backoff runs out
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            bars.refresh(run, [job.id for job, _ in running.values()])
            if not done:
                continue
            job, t0 = running.pop(done[0])
            bars.finish(job.id)
            try:
                summary = ray.get(done[0])
                write_status(run, job, "succeeded", finished_at=now(), summary=summary)
                statuses[job.id] = "succeeded"
                shown = {k: v for k, v in summary.items() if k != "work_interval"}
                say(f"[green]done[/] {job.id} in {time.monotonic() - t0:.1f} s  {shown}")
            except Exception as e:  # the job's own error, reported by Ray
                cause = getattr(e, "cause", e)
                statuses[job.id] = "failed"
                say(f"[red]failed[/] {job.id}: {type(cause).__name__}: {str(cause)[:300]}")
                error = f"{type(cause).__name__}: {cause}"[:2000]
                retryable = not isinstance(cause, KnowrlError)  # bad input would fail the same way again
                say("  " + record_failure(run, job, policy, error, retryable=retryable, finished_at=now()))
            after_job({job.id})
    except KeyboardInterrupt:
        bars.stop()  # before the cancellations are printed
        for ref, (job, _) in running.items():
            ray.cancel(ref, force=True)
            write_status(run, job, "cancelled", finished_at=now(), error="cancelled (Ctrl-C or `knowrl cancel`)")
            statuses[job.id] = "cancelled"
        after_job({job.id for job, _ in running.values()})
        raise
    finally:
        bars.stop()
    blocked = [j.id for j in p.jobs if statuses[j.id] != "succeeded"]
    if blocked:
        say(
            f"[yellow]{len(blocked)} jobs did not finish[/] ({', '.join(blocked[:5])}"
            f"{'...' if len(blocked) > 5 else ''}); run `knowrl run` again to resume"
        )
    return statuses
