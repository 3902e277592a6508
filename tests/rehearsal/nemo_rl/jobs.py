"""Submit compiled knowrl jobs to a Ray cluster's Jobs API exactly as `submit.json` holds them, and wait.

`knowrl compile` writes, per job, the keyword arguments of
`JobSubmissionClient.submit_job` that `knowrl.backends._submission.submission`
produces; this sends them unchanged (the attempt number in the submission id
aside, so a rehearsal can run twice on one cluster) and reports each job's
state, wall time and log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def requests(compiled: Path) -> dict[str, dict]:
    """Job id -> submission request, in the plan's dependency order."""
    entries = json.loads((compiled / "submit.json").read_text())
    keys = ("submission_id", "entrypoint", "runtime_env", "entrypoint_num_cpus", "entrypoint_num_gpus", "metadata")
    return {e["job"]: {k: e[k] for k in keys} for e in entries}


def run(address: str, request: dict, attempt: str, log_dir: Path, timeout_s: float = 3600) -> tuple[str, float, str]:
    """Submit one request (its id suffixed with `attempt`), wait until it ends; (state, seconds, logs)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    req = {**request, "submission_id": f"{request['submission_id']}-{attempt}"}
    start = time.monotonic()
    deadline = start + 120
    while True:  # a fresh head answers "No available agent to submit job" for a while
        try:
            client.submit_job(**req)
            break
        except Exception as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    while (state := str(client.get_job_status(req["submission_id"])).split(".")[-1]) not in TERMINAL:
        if time.monotonic() - start > timeout_s:
            client.stop_job(req["submission_id"])
            state = "TIMEOUT"
            break
        time.sleep(2)
    elapsed = time.monotonic() - start
    logs = client.get_job_logs(req["submission_id"])
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{req['submission_id']}.log").write_text(logs)
    return state, elapsed, logs
