"""Backend compilers: a Plan's jobs become launchable commands for NeMo-RL, verl or the local trainer."""

from __future__ import annotations

import importlib

from knowrl.backends._base import Capabilities, Launch, knowrl_job

BACKENDS = {"nemo_rl": "knowrl.backends.nemo_rl", "verl": "knowrl.backends.verl", "local": "knowrl.backends.local"}


class _Adapter:
    """A backend module behind the small interface the planner and runtime use."""

    def __init__(self, module) -> None:
        self.module, self.name = module, module.name

    def check(self, spec) -> list[str]:
        return self.module.capabilities(spec).errors

    def approximations(self, spec) -> list[str]:
        return self.module.capabilities(spec).approximations

    def requirements(self, spec) -> list[tuple[str, str]]:
        """What a cluster must have for this backend's training jobs: (shell check, what is missing)."""
        return self.module.requirements(spec)

    def data_files(self, spec) -> dict[str, str]:
        """Role -> run-relative path of the rendered training/validation files the backend reads ({}: none)."""
        return self.module.data_files(spec) if hasattr(self.module, "data_files") else {}

    def checkpoint_dir(self, step: int) -> str:
        return self.module.checkpoint_dir(step)

    def checkpoint_done(self, run, step: int) -> bool:
        """Whether the backend has a complete checkpoint of `step` in the run (a phase ending there is done)."""
        return bool(getattr(self.module, "checkpoint_done", lambda run, step: False)(run, step))

    @property
    def exports(self) -> bool:
        """Whether its checkpoints need converting to Hugging Face folders before eval can load them."""
        return hasattr(self.module, "compile_export")

    def compile(self, job, spec, plan, run_dir: str) -> Launch:
        if job.kind == "train":
            return self.module.compile_train(job, spec, plan, run_dir)
        if job.kind == "export":
            return self.module.compile_export(job, spec, run_dir)
        return knowrl_job(job, spec, run_dir)


def get_backend(name: str) -> _Adapter:
    from knowrl._errors import UsageError

    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'", hint=f"use one of {', '.join(BACKENDS)}")
    return _Adapter(importlib.import_module(BACKENDS[name]))


__all__ = ["BACKENDS", "Capabilities", "Launch", "get_backend", "knowrl_job"]
