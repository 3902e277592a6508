"""One job -> exactly what is sent to a Ray cluster's Jobs API (and written to `submit.json` by `knowrl compile`).

Ray reserves an entrypoint's CPUs and GPUs for the driver process alone, on one
node. A NeMo-RL or verl driver only schedules placement groups that take the
GPUs themselves, so it asks for none: asking for the job's 64 GPUs would make
it unplaceable, and, were it placed, would hold the GPUs its own placement
groups need. knowrl's own jobs ask for the GPUs they use in-process (an eval's
vLLM engine, a single-replica KP selection, the local trainer).
"""

from __future__ import annotations

import shlex
import sys

from knowrl.backends import Launch, get_backend
from knowrl.backends._base import knowrl_runtime_env


def _uses_devices_in_process(job, spec) -> bool:
    if job.kind == "eval" or (job.kind == "train" and spec.resources.backend == "local"):
        return True
    return job.kind == "kp_select" and int(job.params.get("workers", 1)) == 1


def launch_for(job, spec, plan, run_dir: str) -> Launch:
    """The backend's own command for its training and export jobs; knowrl's job runner for the rest."""
    if job.kind in ("train", "export") and spec.resources.backend != "local":
        return get_backend(spec.resources.backend).compile(job, spec, plan, run_dir)
    command = f"{shlex.quote(sys.executable)} -m knowrl.runtime.job_main {shlex.quote(run_dir)} {job.id}"
    return Launch(job.id, command, runtime_env=knowrl_runtime_env({}))


def submission(job, spec, plan, run_dir: str, attempt: int = 1) -> tuple[dict, dict[str, str]]:
    """(the keyword arguments of `JobSubmissionClient.submit_job`, the files the entrypoint reads)."""
    launch = launch_for(job, spec, plan, run_dir)
    request = {
        "submission_id": f"knowrl-{plan.run_id[:12]}-{job.id}-{attempt}",
        "entrypoint": launch.entrypoint,
        "runtime_env": launch.runtime_env,
        "entrypoint_num_cpus": job.resources.cpus,
        "entrypoint_num_gpus": job.resources.gpus if _uses_devices_in_process(job, spec) else 0,
        "metadata": {"knowrl_run": plan.run_id, "knowrl_job": job.id, "attempt": str(attempt)},
    }
    return request, launch.files
