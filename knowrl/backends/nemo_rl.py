"""NeMo-RL: per training phase, a GRPO config for `examples/run_grpo.py`, valid for the pinned release.

The config uses NeMo-RL's own loader semantics: `defaults` names the base
config by file path (in the NeMo-RL checkout), the rest overrides it. Every
key and value written is checked against `nemo_rl_<release>.yaml`, a contract
written from NeMo-RL's source at a named commit (`MasterConfig`'s types; the
base config's settings that would change the paper's protocol, each of which
is overridden here). All phases share one checkpoint directory: NeMo-RL
resumes from the latest `step_N` in it, with the same data order and
optimizer state.

The paper's protocol, not the base recipe's: no held-out split of the
training prompts, the spec's learning-rate schedule, no reference model at
KL 0, knowrl's own reward environment (`nemo_rl_env`: `</think>` required,
math-verify on the answer after it), and memory settings for 40,960-token
sequences on 80 GB from NeMo-RL's long-context DAPO recipes (micro-batch 1,
activation checkpointing, chunked log-probs, no packing).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
from pathlib import Path

import yaml

from knowrl._errors import KnowrlError
from knowrl.backends._base import Capabilities, Launch, knowrl_runtime_env
from knowrl.backends._data import GRADING_SITE, refuse_special_think
from knowrl.grading._site import SITE_ENV

name = "nemo_rl"
DEFAULT_DIR = "/opt/nemo-rl"
"""Where NeMo-RL's container keeps its checkout; `resources.backend_dir` overrides it."""
ENV_NAME = "knowrl"
"""The name knowrl's reward environment is registered under (`data.default.env_name`)."""
LOGPROB_CHUNK = 2048
"""Tokens per log-prob chunk: the logits of a 40,960-token sequence at a 150k vocabulary would take ~24 GB."""
VALIDATE_ALL = 2**31 - 1
"""`grpo.max_val_samples` that validates every problem: `validate()` takes `max_val_samples // val_batch_size`
batches and stops at the end of the validation loader first (NeMo-RL's null, meant for NeMo-Gym, is a TypeError)."""
REWARD_PACKAGES = {"pebble": "pebble>=5", "math_verify": "math-verify>=0.7"}
"""What knowrl's reward environment imports beyond NeMo-RL's own environment (module -> pip requirement, as in
knowrl's pyproject.toml): the actor runs in NeMo-RL's Python, whose uv.lock has math-verify but no pebble."""


def contract_file(release: str) -> Path:
    return Path(__file__).with_name(f"nemo_rl_{release}.yaml")


@functools.cache
def contract(release: str) -> dict:
    return yaml.safe_load(contract_file(release).read_text())


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
    if spec.algorithm.overlong.enabled and spec.algorithm.overlong.penalty_factor != 1.0:
        approx.append("overlong.penalty_factor: NeMo-RL's overlong_buffer_penalty scales the same linear ramp")
    if spec.data.validation and (a.validation.temperature, a.validation.top_p, a.validation.n) != (
        a.rollout.temperature,
        a.rollout.top_p,
        1,
    ):
        approx.append(
            f"algorithm.validation (T {a.validation.temperature}, top_p {a.validation.top_p}, n {a.validation.n}): "
            f"NeMo-RL {spec.resources.backend_version} validates with the rollout sampling (T "
            f"{a.rollout.temperature}, top_p {a.rollout.top_p}) and one sample per prompt; knowrl's eval jobs use "
            "the spec's sampling"
        )
    return Capabilities(errors, approx)


def _accepts(kind: str, value) -> bool:
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "null": lambda v: v is None,
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
    }
    return any(checks[k](value) for k in kind.split("|"))


def check_config(config: dict, release: str) -> None:
    """Every key the compiler wrote exists in the release and holds a value of the type NeMo-RL declares."""
    c = contract(release)
    types, problems = c["types"], []

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key in types:
                if not _accepts(types[key], v):
                    problems.append(f"{key}={v!r} is not {types[key]}")
                if isinstance(v, list) and any(t.startswith(f"{key}[].") for t in types):
                    for item in v:
                        walk(item, f"{key}[].")
            elif isinstance(v, dict) and any(t.startswith(f"{key}.") for t in types):
                walk(v, f"{key}.")
            else:
                problems.append(f"unknown key '{key}'")

    walk(config, "")
    missing = [k for k in c["base"] if _lookup(config, k) is _MISSING]
    problems += [f"base setting '{k}' ({c['base'][k]}) is not overridden" for k in missing]
    if problems:
        raise KnowrlError(
            f"the nemo_rl compiler wrote a config NeMo-RL {release} would not run as intended: " + "; ".join(problems),
            hint=f"fix the compiler, or update {contract_file(release).name} from NeMo-RL's source",
        )


_MISSING = object()


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def data_files(spec) -> dict[str, str]:
    """Role -> path under the run directory of the JSON-lines files NeMo-RL's ResponseDataset reads."""
    out = {"train": "data/train.jsonl"}
    out.update({f"validation-{i}": f"data/validation-{i}.jsonl" for i in range(len(spec.data.validation))})
    return out


def checkpoint_dir(step: int) -> str:
    """Where NeMo-RL saves step N under `checkpointing.checkpoint_dir` (relative to the run directory)."""
    return f"checkpoints/step_{step}"


def _scheduler(a) -> list:
    """The spec's schedule in NeMo-RL's SequentialLR form: linear warmup (if any), then constant."""
    constant = {"name": "torch.optim.lr_scheduler.ConstantLR", "kwargs": {"factor": 1.0, "total_iters": 10**10}}
    if not a.warmup_steps:
        return [constant, {"milestones": []}]
    warmup = {
        "name": "torch.optim.lr_scheduler.LinearLR",
        "kwargs": {"start_factor": 1e-8, "end_factor": 1.0, "total_iters": a.warmup_steps},
    }
    return [warmup, constant, {"milestones": [a.warmup_steps]}]


def _dataset(path: str) -> dict:
    return {"dataset_name": "ResponseDataset", "data_path": path, "input_key": "input", "output_key": "output"}


def phase_config(job, spec, run_dir: str, backend_dir: str) -> dict:
    a, p, release = spec.algorithm, job.params, spec.resources.backend_version
    samples, total = a.samples_per_prompt, a.max_prompt_length + a.max_response_length
    files = data_files(spec)
    cfg = {
        "defaults": f"{backend_dir}/{contract(release)['base_config']}",
        "grpo": {
            "num_prompts_per_step": a.prompts_per_step,
            "num_generations_per_prompt": samples,
            "max_num_steps": p["end_step"],
            "max_num_epochs": 1_000_000,
            "val_period": a.validate_every if spec.data.validation else 0,
            "val_at_start": p["phase"] == 1 and bool(spec.data.validation),
            "val_at_end": False,
            "max_val_samples": VALIDATE_ALL,
            "val_batch_size": a.prompts_per_step,
            "seed": spec.seed,
            "normalize_rewards": True,
            "use_leave_one_out_baseline": False,
            "skip_reference_policy_logprobs_calculation": a.kl_coef == 0,
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
            "keep_top_k": a.keep_checkpoints,
            "metric_name": None,  # keep the latest, which the next phase resumes from
            "higher_is_better": True,
            "model_save_format": "torch_save",  # the DCP layout examples/converters/convert_dcp_to_hf.py reads
            "save_consolidated": False,
            "save_optimizer": True,
        },
        "policy": {
            "model_name": spec.model.path,
            "tokenizer": {"name": spec.model.tokenizer or spec.model.path},
            "train_global_batch_size": a.mini_batch_size * samples,
            "train_micro_batch_size": 1,
            "logprob_batch_size": 1,
            "logprob_chunk_size": LOGPROB_CHUNK,
            "max_total_sequence_length": total,
            "precision": spec.model.dtype if spec.model.dtype != "auto" else "bfloat16",
            "max_grad_norm": a.grad_clip,
            "dtensor_cfg": {"activation_checkpointing": True, "context_parallel_size": 1},
            "dynamic_batching": {"enabled": False},
            "sequence_packing": {"enabled": False},
            "optimizer": {
                "name": "torch.optim.AdamW",
                "kwargs": {"lr": a.learning_rate, "weight_decay": a.weight_decay},
            },
            "scheduler": _scheduler(a),
            "generation": {
                "backend": "vllm",
                "max_new_tokens": a.max_response_length,
                "temperature": a.rollout.temperature,
                "top_p": a.rollout.top_p,
                "top_k": a.rollout.top_k if a.rollout.top_k > 0 else None,
                "vllm_cfg": {"max_model_len": total, "gpu_memory_utilization": 0.6},
            },
        },
        "data": {
            "max_input_seq_length": a.max_prompt_length,
            "shuffle": spec.data.shuffle,
            "train": {**_dataset(f"{run_dir}/{files['train']}"), "split_validation_size": 0.0},
            "validation": [_dataset(f"{run_dir}/{f}") for role, f in files.items() if role != "train"] or None,
            "default": {
                "dataset_name": "ResponseDataset",
                "prompt_file": None,  # the rendered KnowRL prompt is the whole user message
                "system_prompt_file": None,
                "processor": "math_hf_data_processor",
                "env_name": ENV_NAME,
            },
        },
        "env": {
            ENV_NAME: {
                "require_think_close": spec.reward.require_think_close,
                "timeout_s": float(spec.reward.timeout_s),
                "num_workers": 8,
            }
        },
        "logger": {
            "log_dir": f"{run_dir}/{job.id}/logs",
            "tensorboard_enabled": True,
            "wandb_enabled": False,
            "monitor_gpus": False,
        },
        "cluster": {"num_nodes": job.resources.nodes, "gpus_per_node": job.resources.gpus_per_node},
    }
    check_config(cfg, release)
    return cfg


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the compiled launch.

    knowrl's reward environment is a Ray actor NeMo-RL starts with its driver's
    Python (`PY_EXECUTABLES.SYSTEM`), the one `uv run` picks in the checkout, and
    `py_modules` brings knowrl's code but not its dependencies: that Python must
    import them, checked the way the launch runs.
    """
    d = shlex.quote(spec.resources.backend_dir or DEFAULT_DIR)
    entry = contract(spec.resources.backend_version)["entrypoint"]
    modules = ", ".join(REWARD_PACKAGES)
    pip = " ".join(f"'{r}'" for r in REWARD_PACKAGES.values())
    return [
        (f"test -f {d}/{entry}", f"a NeMo-RL checkout at {d} ({entry} not found; set resources.backend_dir)"),
        ("command -v uv", "uv on the PATH (the launch runs `uv run python ...`)"),
        (
            f"cd {d} && uv run python -c 'import nemo_rl, ray'",
            f"NeMo-RL's environment under `uv run` in {d} (NeMo-RL's images name it in UV_PROJECT_ENVIRONMENT, and "
            "UV_NO_SYNC=1 keeps uv from resolving the project again, which needs the network and Python >=3.13.13)",
        ),
        (
            f"cd {d} && uv run python -c 'import {modules}'",
            f"{', '.join(REWARD_PACKAGES)} in the Python `uv run` uses in {d} (knowrl's reward environment runs "
            f"there; NeMo-RL {spec.resources.backend_version} does not install them): pip install {pip} into it",
        ),
    ]


def check_tokenizer(spec) -> None:
    """NeMo-RL decodes each response with `skip_special_tokens=True` before its environment sees it
    (`generate_responses`, nemo_rl/experience/rollouts.py): a special `</think>` never reaches knowrl's reward."""
    refuse_special_think(spec, "NeMo-RL strips from every response before knowrl's reward environment sees it")


def checkpoint_done(run: Path, step: int) -> bool:
    """Whether NeMo-RL holds a complete checkpoint of step N in the run's checkpoint directory.

    NeMo-RL's CheckpointManager writes a step into `tmp_step_N` and renames it
    `step_N` only once the policy's weights, optimizer, tokenizer and the
    dataloader state are in it (the contract's `paths.checkpoint`); `step_N`
    is what NeMo-RL resumes from, and its `training_info.json` names the step.
    A torn save leaves `tmp_step_N` (or `old_step_N` mid-replace), never a
    `step_N` without its training info.
    """
    try:
        info = json.loads((Path(run) / checkpoint_dir(step) / "training_info.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("total_steps") == step


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    backend_dir = spec.resources.backend_dir or DEFAULT_DIR
    release = spec.resources.backend_version
    cfg = phase_config(job, spec, run_dir, backend_dir)
    caps = capabilities(spec)
    header = (
        f"# knowrl {job.id} for NeMo-RL {release} ({contract(release)['commit'][:12]})\n"
        f"# spec {plan.spec_hash}; steps {job.params['start_step']}..{job.params['end_step']}\n"
        + "".join(f"# approximation: {n}\n" for n in caps.approximations)
    )
    config_file = f"{job.id}.nemo_rl.yaml"
    text = header + yaml.safe_dump(cfg, sort_keys=False, width=120)
    command = (
        f"cd {shlex.quote(backend_dir)} && uv run python -m knowrl.backends.nemo_rl_launch "
        f"{shlex.quote(contract(release)['entrypoint'])} --config {shlex.quote(f'{run_dir}/{config_file}')}"
    )  # run_grpo.py applies the Hydra overrides after it, over the file's values
    command += "".join(" " + shlex.quote(o) for o in spec.resources.backend_overrides)
    # NeMo-RL hands its driver's env vars to the env actor (the grading site), and its init_ray needs the contract's.
    env = knowrl_runtime_env({**contract(release)["job_env_vars"], SITE_ENV: f"{run_dir}/{GRADING_SITE}"})
    return Launch(job.id, command, {config_file: text}, env, caps.approximations)


def compile_export(job, spec, run_dir: str) -> Launch:
    """NeMo-RL's DCP -> Hugging Face converter on `step_N/policy/weights`, with the step's own config.yaml."""
    backend_dir = spec.resources.backend_dir or DEFAULT_DIR
    step = f"{run_dir}/{job.inputs['checkpoint']}"
    converter = contract(spec.resources.backend_version)["converter"]
    command = (
        f"cd {shlex.quote(backend_dir)} && uv run python {converter} --config {shlex.quote(step + '/config.yaml')} "
        f"--dcp-ckpt-path {shlex.quote(step + '/policy/weights')} "
        f"--hf-ckpt-path {shlex.quote(os.path.join(run_dir, job.outputs['model']))}"
    )
    return Launch(job.id, command, runtime_env=knowrl_runtime_env({}))
