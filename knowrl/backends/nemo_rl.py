"""NeMo-RL: per training phase, a GRPO config for `examples/run_grpo.py --config`.

The config uses NeMo-RL's own loader semantics: `defaults` names the base
config by file path (relative to the NeMo-RL checkout), the rest overrides it.
Every key written is checked against `nemo_rl_keys.yaml`, the key tree of the
targeted release, because NeMo-RL silently ignores misspelled keys. All
phases share one checkpoint directory: NeMo-RL resumes from the latest
`step_N` in it, with the same data order and optimizer state.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from knowrl._errors import KnowrlError
from knowrl.backends._base import Capabilities, Launch

name = "nemo_rl"
DEFAULT_DIR = "/opt/nemo-rl"
"""Where NeMo-RL's container keeps its checkout; `resources.backend_dir` overrides it."""
KEYS_FILE = Path(__file__).with_name("nemo_rl_keys.yaml")


@functools.cache
def key_tree() -> dict:
    return yaml.safe_load(KEYS_FILE.read_text())


def capabilities(spec) -> Capabilities:
    a, errors, approx = spec.algorithm, [], []
    if a.loss_aggregation == "seq-mean-token-sum":
        errors.append("algorithm.loss_aggregation=seq-mean-token-sum (NeMo-RL has token-mean and seq-mean only)")
    if a.entropy_coef > 0:
        errors.append("algorithm.entropy_coef > 0 (NeMo-RL's GRPO loss has no entropy bonus)")
    if a.kl_coef > 0 and a.kl_type not in ("low_var_kl", "kl"):
        errors.append(f"algorithm.kl_type={a.kl_type} (NeMo-RL uses the k3 / low_var_kl estimator)")
    if a.dynamic_sampling.enabled and a.dynamic_sampling.metric not in ("seq_reward", "score"):
        errors.append(f"algorithm.dynamic_sampling.metric={a.dynamic_sampling.metric} (NeMo-RL filters on reward std)")
    if a.total_steps is None:
        errors.append("algorithm.total_epochs (the compiler needs total_steps to set grpo.max_num_steps)")
    if spec.reward.require_think_close:
        approx.append(
            "reward.require_think_close: NeMo-RL's math environment scores the boxed answer whether "
            "or not </think> closes"
        )
    if spec.reward.format_penalty:
        approx.append("reward.format_penalty: not applied by NeMo-RL's math environment")
    if spec.algorithm.overlong.enabled and spec.algorithm.overlong.penalty_factor != 1.0:
        approx.append("overlong.penalty_factor: NeMo-RL's overlong_buffer_penalty scales the same linear ramp")
    return Capabilities(errors, approx)


def check_keys(config: dict, tree: dict | None = None, prefix: str = "") -> None:
    """Fail on any key NeMo-RL's targeted release does not have."""
    tree = tree if tree is not None else key_tree()["keys"]
    for k, v in config.items():
        dotted = f"{prefix}{k}"
        if k not in tree:
            raise KnowrlError(
                f"nemo_rl compiler wrote unknown key '{dotted}' for {key_tree()['release']}",
                hint=f"fix the compiler or update {KEYS_FILE.name}",
            )
        if isinstance(v, dict) and tree[k] != "leaf":
            check_keys(v, tree[k], dotted + ".")


def phase_config(job, spec, run_dir: str, backend_dir: str) -> dict:
    a, p = spec.algorithm, job.params
    samples = a.samples_per_prompt
    cfg = {
        "defaults": f"{backend_dir}/{key_tree()['base_config']}",
        "grpo": {
            "num_prompts_per_step": a.prompts_per_step,
            "num_generations_per_prompt": samples,
            "max_num_steps": p["end_step"],
            "max_num_epochs": 1_000_000,
            "val_period": a.validate_every,
            "val_at_start": p["phase"] == 1,
            "seed": spec.seed,
            "normalize_rewards": True,
            "use_leave_one_out_baseline": False,
            "use_dynamic_sampling": a.dynamic_sampling.enabled,
            "batch_multiplier": a.effective_generation_batch_size / a.prompts_per_step,
            "dynamic_sampling_max_gen_batches": a.dynamic_sampling.max_generation_batches,
            "reward_shaping": {
                "enabled": a.overlong.enabled,
                "overlong_buffer_length": a.overlong.buffer_length,
                "overlong_buffer_penalty": a.overlong.penalty_factor,
                "max_response_length": a.max_response_length,
            },
            "adv_estimator": {"name": "grpo", "normalize_rewards": True, "use_leave_one_out_baseline": False},
        },
        "loss_fn": {
            "reference_policy_kl_penalty": a.kl_coef,
            "ratio_clip_min": p["clip_low"],
            "ratio_clip_max": p["clip_high"],
            "ratio_clip_c": p["clip_c"],
            "token_level_loss": a.loss_aggregation == "token-mean",
        },
        "checkpointing": {
            "enabled": True,
            "checkpoint_dir": f"{run_dir}/checkpoints",
            "save_period": a.save_every,
            "keep_top_k": None,
            "metric_name": None,
        },
        "policy": {
            "model_name": spec.model.path,
            "tokenizer": {"name": spec.model.tokenizer or spec.model.path},
            "train_global_batch_size": a.mini_batch_size * samples,
            "max_total_sequence_length": a.max_prompt_length + a.max_response_length,
            "precision": spec.model.dtype if spec.model.dtype != "auto" else "bfloat16",
            "max_grad_norm": a.grad_clip,
            "optimizer": {
                "name": "torch.optim.AdamW",
                "kwargs": {"lr": a.learning_rate, "weight_decay": a.weight_decay},
            },
            "generation": {
                "backend": "vllm",
                "max_new_tokens": a.max_response_length,
                "temperature": a.rollout.temperature,
                "top_p": a.rollout.top_p,
                "top_k": a.rollout.top_k if a.rollout.top_k > 0 else None,
            },
        },
        "data": {
            "max_input_seq_length": a.max_prompt_length,
            "shuffle": spec.data.shuffle,
            "train": {
                "dataset_name": "ResponseDataset",
                "data_path": f"{run_dir}/data/train.jsonl",
                "input_key": "input",
                "output_key": "output",
            },
            "default": {"prompt_file": None, "system_prompt_file": None},
        },
        "env": {"math": {"num_workers": 8, "math_verify_impl": "hf_math_verify"}},
        "logger": {"log_dir": f"{run_dir}/{job.id}/logs"},
        "cluster": {"num_nodes": job.resources.nodes, "gpus_per_node": job.resources.gpus_per_node},
    }
    if spec.data.validation:
        cfg["data"]["validation"] = {
            "dataset_name": "ResponseDataset",
            "data_path": f"{run_dir}/data/validation.jsonl",
            "input_key": "input",
            "output_key": "output",
        }
    check_keys(cfg)
    return cfg


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the compiled launch."""
    d = spec.resources.backend_dir or DEFAULT_DIR
    entry = key_tree()["entrypoint"]
    return [
        (f"test -f {d}/{entry}", f"a NeMo-RL checkout at {d} ({entry} not found; set resources.backend_dir)"),
        ("command -v uv", "uv on the PATH (the launch runs `uv run python ...`)"),
    ]


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    backend_dir = spec.resources.backend_dir or DEFAULT_DIR
    cfg = phase_config(job, spec, run_dir, backend_dir)
    caps = capabilities(spec)
    header = (
        f"# knowrl {job.id} for {key_tree()['release']}\n# spec {plan.spec_hash}; steps "
        f"{job.params['start_step']}..{job.params['end_step']}\n"
        + "".join(f"# approximation: {n}\n" for n in caps.approximations)
    )
    config_file = f"{job.id}.nemo_rl.yaml"
    text = header + yaml.safe_dump(cfg, sort_keys=False, width=120)
    return Launch(
        job.id,
        f"cd {backend_dir} && uv run python {key_tree()['entrypoint']} --config {run_dir}/{config_file}",
        {config_file: text},
        {"env_vars": {"HF_HOME": "${HF_HOME:-~/.cache/huggingface}"}},
        caps.approximations,
    )
