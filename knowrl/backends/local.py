"""The local CPU backend: TRL's GRPOTrainer on a tiny model (run by the engine, `knowrl run`).

Here only its capabilities, so a spec asking for what it cannot do fails at
plan time with the feature named.
"""

from __future__ import annotations

from knowrl.backends._base import Capabilities, Launch

name = "local"


def capabilities(spec) -> Capabilities:
    errors = []
    r, a = spec.resources, spec.algorithm
    if r.nodes > 1:
        errors.append(f"resources.nodes={r.nodes} (the local backend runs on this machine only)")
    if spec.eval.enabled and spec.eval.generator == "vllm" and not r.gpus_per_node:
        errors.append("eval.generator=vllm without GPUs (use transformers locally)")
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


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the local trainer."""
    import sys

    return [(f"{sys.executable} -c 'import trl'", f"TRL for {sys.executable} (pip install 'knowrl[local]')")]


def checkpoint_dir(step: int) -> str:
    """Where the local trainer saves step N: a Hugging Face folder that eval loads as it is."""
    return f"checkpoints/step_{step}"


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    return Launch(job.id, f"knowrl run --job {job.id} {run_dir}", notes=["runs in-process under `knowrl run`"])
