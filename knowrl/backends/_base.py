"""One small interface for backends: what they cannot honour, and how a job becomes a launch.

A backend is one module (`nemo_rl`, `verl`, `local`); adding one is a new file
plus a line in `BACKENDS`. Eval and KP-selection jobs run knowrl's own
commands on every backend; only training is backend-specific.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class Launch:
    """Everything needed to start one job: a command, the files it reads, and its runtime environment."""

    job_id: str
    entrypoint: str
    files: dict[str, str] = field(default_factory=dict)
    """Relative path -> content, written next to the launch script."""
    runtime_env: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Approximations the backend makes for this job (printed by `knowrl compile`)."""


@dataclass
class Capabilities:
    errors: list[str]
    """Spec features the backend cannot run: planning fails."""
    approximations: list[str]
    """Features it runs differently: printed with the plan and in the compiled files."""


class Backend(Protocol):
    name: str

    def capabilities(self, spec) -> Capabilities: ...

    def requirements(self, spec) -> list[tuple[str, str]]: ...

    def data_files(self, spec) -> dict[str, str]: ...

    def checkpoint_dir(self, step: int) -> str: ...

    def compile_train(self, job, spec, plan, run_dir: str) -> Launch: ...


def knowrl_runtime_env(env_vars: dict[str, str]) -> dict:
    """A Ray runtime env that brings this checkout's knowrl package to every process of the job.

    `py_modules` with a local folder makes Ray zip and upload it, and put it on
    the PYTHONPATH of the driver and of every worker and actor the backend starts
    (NeMo-RL's environment actors, verl's reward workers), whatever the image
    has installed. There is no knowrl on PyPI to `pip` instead.
    """
    return {"env_vars": dict(env_vars), "py_modules": [str(Path(__file__).resolve().parents[1])]}


def knowrl_job(job, spec, run_dir: str) -> Launch:
    """Data, eval and KP-selection jobs: knowrl's own commands, the same on every backend."""
    q = shlex.quote
    p = job.params
    if job.kind == "eval":
        model = job.inputs["model"]
        model = model if model == spec.model.path else f"{run_dir}/{model}"
        suite = spec.eval.suite or "inline"
        out = f"{run_dir}/{job.id}"  # the layout `knowrl ingest` reads
        parts = [
            "knowrl",
            "eval",
            "--model",
            q(model),
            "--suite",
            q(suite),
            "--benchmarks",
            q(p["benchmark"]),
            "--hint-modes",
            q(p["hint_mode"]),
            "--samples",
            str(p["samples"]),
            "--max-tokens",
            str(spec.eval.sampling.max_tokens),
            "--temperature",
            str(spec.eval.sampling.temperature),
            "--top-p",
            str(spec.eval.sampling.top_p),
            "--generator",
            spec.eval.generator,
            "--seed",
            str(spec.seed),
            "--out",
            q(out),
        ]
        if spec.eval.data:
            parts += ["--data", q(spec.eval.data)]
        if not spec.reward.require_think_close:
            parts.append("--no-require-think-close")
        return Launch(job.id, " ".join(parts), runtime_env=knowrl_runtime_env({}))
    if job.kind == "data":  # renders from the run's manifest (and kp_select's output), as on a cluster
        return Launch(
            job.id, f"python3 -m knowrl.runtime.job_main {q(run_dir)} {job.id}", runtime_env=knowrl_runtime_env({})
        )
    if job.kind == "kp_select":
        h = spec.hints
        data = spec.data.train[0].source if spec.data.train else ""
        parts = [
            "knowrl",
            "kp",
            "select",
            "--data",
            q(data),
            "--strategy",
            h.strategy,
            "--model",
            q(spec.model.path),
            "--generator",
            "vllm" if spec.resources.gpus_per_node else "transformers",
            "--out",
            q(f"{run_dir}/{job.outputs['selections']}"),
        ]
        params = h.model_dump(exclude={"strategy", "source", "field", "sampling"})
        parts += [item for k, v in sorted(params.items()) for item in ("--param", q(f"{k}={v}"))]
        return Launch(job.id, " ".join(parts), runtime_env=knowrl_runtime_env({}))
    raise ValueError(f"knowrl has no command for a {job.kind} job")
