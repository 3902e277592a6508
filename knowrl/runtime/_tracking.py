"""A run's finished jobs, logged to the tracker (Aim) by the driver: one tracker run per knowrl run."""

from __future__ import annotations

from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._rundir import DamagedFile, job_status, read_json


class RunTracker:
    """Logs each finished job to the tracker from a driver thread, overlapping Aim's start-up with the jobs.

    The tracker's run follows from the knowrl run id (a driver killed before it
    wrote anything down reopens the same one); `<run>/tracking.json` keeps its
    hash and the jobs already logged, so a resumed run logs the jobs a killed
    driver had finished but not yet logged, and none twice.
    """

    def __init__(self, spec, p, run: Path) -> None:
        import queue
        import threading

        self.spec, self.plan, self.run = spec, p, run
        self.state_file = run / "tracking.json"
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.error: Exception | None = None
        if spec.tracking.backend != "none":
            self.thread.start()
            for job in p.jobs:  # finished under an earlier driver: logged now unless it was then
                if job_status(run, job.id)["status"] == "succeeded":
                    self.queue.put(job)

    def job_done(self, job) -> None:
        if self.thread.is_alive():
            self.queue.put(job)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error:
            raise KnowrlError(f"tracking failed: {self.error}", hint="set tracking.backend: none to skip it")

    def _state(self) -> dict:
        try:
            state = read_json(self.state_file) if self.state_file.exists() else {}
        except DamagedFile:  # a new tracker run then; the old one stays in the repo
            state = {}
        same_repo = state.get("repo") == self.spec.tracking.repo
        return {"hash": None, "logged": [], **(state if same_repo else {}), "repo": self.spec.tracking.repo}

    def _work(self) -> None:
        from knowrl._rundir import write_json
        from knowrl.tracking import make_tracker

        s, state = self.spec, self._state()
        try:
            tracker = make_tracker(s.tracking.backend, s.tracking.repo)
            state["hash"] = tracker.start(
                self.plan.run_id,
                s.name,
                s.model_dump(mode="json"),
                s.tracking.experiment,
                resume=state["hash"],
                tags=tuple(s.tags),
            )
            write_json(self.state_file, state)
        except Exception as e:  # reported on close, after the jobs
            self.error = e
            return
        try:
            while (job := self.queue.get()) is not None:
                if job.id not in state["logged"]:
                    _log_job(tracker, job, self.run / job.id)
                    state["logged"].append(job.id)
                    write_json(self.state_file, state)
        except Exception as e:
            self.error = e
        finally:
            tracker.close()


def _log_job(tracker, job, folder: Path) -> None:
    import pyarrow.parquet as pq

    if (folder / "metrics.parquet").exists():
        for r in pq.read_table(folder / "metrics.parquet").to_pylist():
            tracker.track(r["name"], r["value"], r["step"], {"phase": job.params.get("phase")})
    if (folder / "scores.parquet").exists():
        for r in pq.read_table(folder / "scores.parquet").to_pylist():
            if r["benchmark"] != "Avg." and r["metric"] in ("accuracy", "maj", "mean_length"):
                tracker.track(
                    f"eval/{r['metric']}",
                    r["value"],
                    None,
                    {
                        "benchmark": r["benchmark"],
                        "hint_mode": r["hint_mode"],
                        "checkpoint": str(job.params.get("checkpoint")),
                    },
                )
