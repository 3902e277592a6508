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

from knowrl.backends._data import GRADING_SITE
from knowrl.grading._site import SITE_ENV


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
    """Data, eval and KP-selection jobs: knowrl's own job runner, the same command on every backend.

    The runner reads the job and the whole spec from the run's manifest, so
    nothing the spec says (the prompt suffix, `eval.limit`, tensor parallel,
    the hint generator, every training source) is lost in a command line.
    """
    command = f"python3 -m knowrl.runtime.job_main {shlex.quote(run_dir)} {shlex.quote(job.id)}"
    return Launch(job.id, command, runtime_env=knowrl_runtime_env({SITE_ENV: f"{run_dir}/{GRADING_SITE}"}))
