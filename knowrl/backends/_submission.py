"""One job -> exactly what is sent to a Ray cluster's Jobs API (and written to `submit.json` and `launch.sh`).

Ray reserves an entrypoint's CPUs and GPUs for the driver process alone, on one
node. A NeMo-RL or verl driver only schedules placement groups that take the
GPUs themselves, so it asks for none: asking for the job's 64 GPUs would make
it unplaceable, and, were it placed, would hold the GPUs its own placement
groups need. knowrl's own jobs ask for the GPUs they use in-process (an eval's
vLLM engine, a single-replica KP selection, the local trainer); a sharded KP
selection asks for none in its driver, since each shard is a Ray task with a
GPU of its own (Ray keeps a task's resources while it waits in `ray.get`).

knowrl's own jobs run `python3 -m knowrl.runtime.job_main RUN JOB` with the
cluster's `python3` (the one Ray and the backend run on) and knowrl's code
from the job's `py_modules`: a node has neither the submitting machine's
interpreter nor, necessarily, an installed knowrl. What that `python3` must
have is what the preflight probes (`requirements`).
"""

from __future__ import annotations

from knowrl.backends import get_backend

CORE_MODULES = {
    "pydantic": "pydantic",
    "omegaconf": "omegaconf",
    "yaml": "pyyaml",
    "pyarrow": "pyarrow",
    "numpy": "numpy",
    "pebble": "pebble",
    "math_verify": "math-verify[antlr4_13_2]",
    "rich": "rich",
}
"""What every knowrl job imports on a node (import name -> the package to install), beside knowrl's own code."""


BACKEND_KINDS = ("train", "export")
"""The jobs a nemo_rl or verl plan runs with the backend's own command: they write no knowrl status of their own."""


def runs_backend_command(kind: str, backend: str) -> bool:
    """Whether a job of `kind` runs the backend's own command (not knowrl's job entry point)."""
    return backend != "local" and kind in BACKEND_KINDS


def driver_gpus(job, spec) -> int:
    """GPUs the job's own process uses: the entrypoint's on a cluster, the Ray task's under `knowrl run`."""
    in_process = (
        job.kind == "eval"
        or (job.kind == "train" and spec.resources.backend == "local")
        or (job.kind == "kp_select" and int(job.params.get("workers", 1)) == 1)
    )
    return job.resources.gpus if in_process else 0


def submission(job, spec, plan, run_dir: str, attempt: int = 1) -> tuple[dict, dict[str, str]]:
    """(the keyword arguments of `JobSubmissionClient.submit_job`, the files the entrypoint reads)."""
    launch = get_backend(spec.resources.backend).compile(job, spec, plan, run_dir)
    request = {
        "submission_id": f"knowrl-{plan.run_id[:12]}-{job.id}-{attempt}",
        "entrypoint": launch.entrypoint,
        "runtime_env": launch.runtime_env,
        "entrypoint_num_cpus": job.resources.cpus,
        "entrypoint_num_gpus": driver_gpus(job, spec),
        "metadata": {"knowrl_run": plan.run_id, "knowrl_job": job.id, "attempt": str(attempt)},
    }
    return request, launch.files


def _generator_modules(kind: str) -> dict[str, str]:
    local = {"torch": "torch", "transformers": "transformers"}
    return {"vllm": {"vllm": "vllm"}, "openai": {"openai": "openai"}}.get(kind, local)


def requirements(plan, spec) -> list[tuple[str, str]]:
    """(shell check, what is missing) for the cluster's `python3` to run knowrl's own jobs of this plan."""
    kinds = {j.kind for j in plan.jobs if not runs_backend_command(j.kind, spec.resources.backend)}
    if not kinds:
        return []
    needed: dict[str, tuple[str, set[str]]] = {m: (pkg, set(kinds)) for m, pkg in CORE_MODULES.items()}

    def need(modules: dict[str, str], kind: str) -> None:
        for m, pkg in modules.items():
            needed.setdefault(m, (pkg, set()))[1].add(kind)

    if "eval" in kinds:
        need(_generator_modules(spec.eval.generator), "eval")
    if "kp_select" in kinds:
        hint = getattr(spec.hints, "generator", "auto")
        need(_generator_modules("vllm" if hint == "auto" and spec.resources.gpus_per_node else hint), "kp_select")
    if "train" in kinds:  # the local backend's trainer
        need({"torch": "torch", "transformers": "transformers", "trl": "trl"}, "train")
    checks = [
        (
            "python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'",
            "Python >= 3.11 as the nodes' python3 (knowrl's jobs run there, with the cluster's Ray)",
        ),
        (
            "python3 -c 'import knowrl.runtime.job_main'",
            "knowrl's code on the nodes (it comes as the jobs' py_modules)",
        ),
    ]
    checks += [
        (f"python3 -c 'import {m}'", f"the module {m} for python3 ({', '.join(sorted(k))} jobs: pip install '{pkg}')")
        for m, (pkg, k) in needed.items()
    ]
    return checks
