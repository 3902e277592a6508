"""verl: per training phase, the override list for verl's DAPO recipe, as the KnowRL authors ran it.

`python3 -m recipe.dapo.main_dapo key=value ...` from the verl checkout, with
the names of the paper's launch script (Hasuer/KnowRL `train/knowrl.sh`). Two
releases are targeted (`resources.backend_version`), because the recipe's
config moved between them:

- `0.4`: the authors' bundled fork (verl 0.4.0.dev, recipe `dapo_trainer.yaml`
  at Hasuer/KnowRL bed9a05; verl 0.4.1 is the nearest release). No `data.seed`
  key (the sampler reads `data.get("seed", 1)`, so it is appended with `+`);
  overlong shaping under `reward_model.overlong_buffer`; `custom_reward_function`
  at the top.
- `0.9`: verl 0.9.x with the recipe from verl-project/verl-recipe at e7f8895
  (the submodule commit of verl v0.9.0). Overlong shaping moved to
  `reward.reward_kwargs.overlong_buffer_cfg` (with `max_resp_len`), the reward
  function to `reward.custom_reward_function`.

The reward is knowrl's own function, so `</think>` is required exactly as the
paper's reward does. Phases share `trainer.default_local_dir`; verl resumes
from the latest checkpoint in it (`trainer.resume_mode=auto`) and keeps
`algorithm.keep_checkpoints` of them. Metrics go to TensorBoard files in the
job's folder, which knowrl turns into `metrics.parquet`.
"""

from __future__ import annotations

import os
import shlex

from knowrl.backends._base import Capabilities, Launch, knowrl_runtime_env
from knowrl.backends._data import GRADING_SITE
from knowrl.grading._site import SITE_ENV

name = "verl"
DEFAULT_DIR = "/opt/verl"
"""Where a verl checkout lives; `resources.backend_dir` overrides it."""
REWARD_FILE = "data/knowrl_reward.py"
"""The `custom_reward_function.path` verl loads: a one-line shim importing knowrl's reward."""


def capabilities(spec) -> Capabilities:
    errors = []
    if spec.algorithm.total_steps is None:
        errors.append("algorithm.total_epochs (the compiler needs total_steps for trainer.total_training_steps)")
    return Capabilities(errors, [])


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


def data_files(spec) -> dict[str, str]:
    """Role -> path under the run directory of the parquet files verl's RLHFDataset reads."""
    out = {"train": "data/train.parquet"}
    out.update({f"validation-{i}": f"data/validation-{i}.parquet" for i in range(len(spec.data.validation))})
    return out


def _release_overrides(spec, release: str, run_dir: str) -> list[tuple[str, object]]:
    o, a = spec.algorithm.overlong, spec.algorithm
    reward_path = f"{run_dir}/{REWARD_FILE}"
    if release == "0.4":
        return [
            ("+data.seed", spec.seed),
            ("reward_model.overlong_buffer.enable", o.enabled),
            ("reward_model.overlong_buffer.len", o.buffer_length),
            ("reward_model.overlong_buffer.penalty_factor", o.penalty_factor),
            ("custom_reward_function.path", reward_path),
            ("custom_reward_function.name", "compute_score"),
        ]
    return [
        ("data.seed", spec.seed),
        ("reward.reward_kwargs.overlong_buffer_cfg.enable", o.enabled),
        ("reward.reward_kwargs.overlong_buffer_cfg.len", o.buffer_length),
        ("reward.reward_kwargs.overlong_buffer_cfg.penalty_factor", o.penalty_factor),
        ("reward.reward_kwargs.max_resp_len", a.max_response_length),
        ("reward.custom_reward_function.path", reward_path),
        ("reward.custom_reward_function.name", "compute_score"),
    ]


def phase_overrides(job, spec, run_dir: str) -> list[tuple[str, object]]:
    a, p, r = spec.algorithm, job.params, job.resources
    ppo_max = a.max_prompt_length + a.max_response_length
    ds = a.dynamic_sampling
    files = data_files(spec)
    out: list[tuple[str, object]] = [
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.use_kl_in_reward", False),
        ("algorithm.filter_groups.enable", ds.enabled),
        ("algorithm.filter_groups.metric", ds.metric),
        ("algorithm.filter_groups.max_num_gen_batches", ds.max_generation_batches),
        ("data.train_files", f"{run_dir}/{files['train']}"),
        ("data.val_files", [f"{run_dir}/{f}" for role, f in files.items() if role != "train"]),
        ("data.prompt_key", "prompt"),
        ("data.train_batch_size", a.prompts_per_step),
        ("data.gen_batch_size", a.effective_generation_batch_size),
        ("data.max_prompt_length", a.max_prompt_length),
        ("data.max_response_length", a.max_response_length),
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.shuffle", spec.data.shuffle),
        ("actor_rollout_ref.model.path", spec.model.path),
        ("actor_rollout_ref.model.use_remove_padding", True),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", True),
        ("actor_rollout_ref.actor.optim.lr", a.learning_rate),
        ("actor_rollout_ref.actor.optim.weight_decay", a.weight_decay),
        ("actor_rollout_ref.actor.optim.lr_warmup_steps", a.warmup_steps),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", a.mini_batch_size),
        ("actor_rollout_ref.actor.use_dynamic_bsz", True),
        ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", ppo_max),
        ("actor_rollout_ref.actor.use_kl_loss", a.kl_coef > 0),
        ("actor_rollout_ref.actor.kl_loss_coef", a.kl_coef),
        ("actor_rollout_ref.actor.kl_loss_type", a.kl_type),
        ("actor_rollout_ref.actor.entropy_coeff", a.entropy_coef),
        ("actor_rollout_ref.actor.loss_agg_mode", a.loss_aggregation),
        ("actor_rollout_ref.actor.clip_ratio_low", p["clip_low"]),
        ("actor_rollout_ref.actor.clip_ratio_high", p["clip_high"]),
        ("actor_rollout_ref.actor.clip_ratio_c", p["clip_c"] if p["clip_c"] is not None else 3.0),
        ("actor_rollout_ref.actor.grad_clip", a.grad_clip),
        ("actor_rollout_ref.ref.log_prob_use_dynamic_bsz", True),
        ("actor_rollout_ref.ref.log_prob_max_token_len_per_gpu", ppo_max),
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.n", a.samples_per_prompt),
        ("actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", True),
        ("actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", ppo_max),
        ("actor_rollout_ref.rollout.max_num_batched_tokens", ppo_max),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", 1),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", 0.85),
        ("actor_rollout_ref.rollout.temperature", a.rollout.temperature),
        ("actor_rollout_ref.rollout.top_p", a.rollout.top_p),
        ("actor_rollout_ref.rollout.top_k", a.rollout.top_k),
        ("actor_rollout_ref.rollout.val_kwargs.temperature", a.validation.temperature),
        ("actor_rollout_ref.rollout.val_kwargs.top_p", a.validation.top_p),
        ("actor_rollout_ref.rollout.val_kwargs.top_k", a.validation.top_k),
        ("actor_rollout_ref.rollout.val_kwargs.do_sample", a.validation.temperature > 0),
        ("actor_rollout_ref.rollout.val_kwargs.n", a.validation.n),
        *_release_overrides(spec, spec.resources.backend_version, run_dir),
        ("trainer.critic_warmup", 0),
        ("trainer.logger", ["console", "tensorboard"]),
        ("trainer.project_name", "knowrl"),
        ("trainer.experiment_name", spec.name),
        ("trainer.nnodes", r.nodes),
        ("trainer.n_gpus_per_node", r.gpus_per_node),
        ("trainer.save_freq", a.save_every),
        ("trainer.max_actor_ckpt_to_keep", a.keep_checkpoints),
        ("trainer.test_freq", a.validate_every),
        ("trainer.val_before_train", p["phase"] == 1),
        ("trainer.total_training_steps", p["end_step"]),
        ("trainer.total_epochs", 1_000_000),
        ("trainer.resume_mode", "auto"),
        ("trainer.default_local_dir", f"{run_dir}/checkpoints"),
        ("trainer.validation_data_dir", f"{run_dir}/{job.id}/validation_data"),
        ("trainer.rollout_data_dir", f"{run_dir}/{job.id}/rollout_data"),
    ]
    return out


def render_overrides(pairs: list[tuple[str, object]]) -> list[str]:
    return [f"{k}={_fmt(v)}" for k, v in pairs]


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the compiled launch."""
    d = spec.resources.backend_dir or DEFAULT_DIR
    return [
        (f"test -d {d}/recipe/dapo", f"a verl checkout at {d} (recipe/dapo not found; set resources.backend_dir)"),
        ("python3 -c 'import verl'", "the verl package for python3"),
    ]


def check_tokenizer(spec) -> None:
    """verl's reward managers decode responses with `skip_special_tokens=True`: a special `</think>` never arrives."""
    if not spec.reward.require_think_close:
        return
    from transformers import AutoTokenizer

    from knowrl._errors import KnowrlError

    tok = AutoTokenizer.from_pretrained(spec.model.tokenizer or spec.model.path)
    think = tok.convert_tokens_to_ids("</think>")
    if think is not None and think in tok.all_special_ids:
        raise KnowrlError(
            f"the tokenizer of {spec.model.tokenizer or spec.model.path} marks </think> as a special token, which "
            "verl's reward manager strips before knowrl's reward sees the response: every reward would be 0",
            hint="use a tokenizer where </think> is an ordinary added token, or set reward.require_think_close: false",
        )


def checkpoint_dir(step: int) -> str:
    """Where verl saves step N under `trainer.default_local_dir` (relative to the run directory)."""
    return f"checkpoints/global_step_{step}"


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    backend_dir = spec.resources.backend_dir or DEFAULT_DIR
    args = render_overrides(phase_overrides(job, spec, run_dir))
    overrides_file = f"{job.id}.verl.overrides"
    command = f"cd {shlex.quote(backend_dir)} && python3 -m recipe.dapo.main_dapo " + " ".join(
        shlex.quote(a) for a in args
    )
    shim = "from knowrl.backends.verl_reward import compute_score  # noqa: F401\n"
    env = knowrl_runtime_env(
        {
            "KNOWRL_REQUIRE_THINK_CLOSE": str(spec.reward.require_think_close),
            "KNOWRL_GRADING_TIMEOUT": str(spec.reward.timeout_s),
            "TENSORBOARD_DIR": f"{run_dir}/{job.id}/tensorboard",
            SITE_ENV: f"{run_dir}/{GRADING_SITE}",
        }
    )
    return Launch(job.id, command, {overrides_file: "".join(a + "\n" for a in args), REWARD_FILE: shim}, env)


def compile_export(job, spec, run_dir: str) -> Launch:
    """verl's model merger: FSDP shards of `global_step_N/actor` -> a Hugging Face folder."""
    src, dst = f"{run_dir}/{job.inputs['checkpoint']}/actor", os.path.join(run_dir, job.outputs["model"])
    command = (
        f"python3 -m verl.model_merger merge --backend fsdp --local_dir {shlex.quote(src)} "
        f"--target_dir {shlex.quote(dst)}"
    )
    return Launch(job.id, command, runtime_env=knowrl_runtime_env({}))
