"""verl: per training phase, the override list for verl's DAPO recipe, as the KnowRL authors ran it.

`python3 -m recipe.dapo.main_dapo key=value ...` from the verl checkout, with
the names of the paper's launch script (Hasuer/KnowRL `train/knowrl.sh`). Two
releases are targeted (`resources.backend_version`), because the recipe's
config moved between them:

- `0.4`: the authors' bundled fork (verl 0.4.0.dev, recipe `dapo_trainer.yaml`
  at Hasuer/KnowRL bed9a05; verl 0.4.1 is the nearest release). No `data.seed`
  key: the sampler reads `data.get("seed", 1)` and the authors' `train/knowrl.sh`
  sets none, so their data order came from seed 1, which is what 0.4 compiles
  (`+data.seed=1`; `knowrl plan` names the difference from the spec's `seed`).
  Overlong shaping under `reward_model.overlong_buffer`; `custom_reward_function`
  at the top. The fork has no `verl.model_merger` package: export runs its
  `scripts/model_merger.py`, which reads config and tokenizer from `actor/`
  itself (the fork writes no `huggingface/` folder).
- `0.9`: verl 0.9.1 with the recipe from verl-project/verl-recipe at
  `RECIPE_PIN` (the last commit of its `dapo/`, whose `main_dapo` imports
  `BaseTaskRunner` from `verl.trainer.main_ppo_v0`; e7f8895, verl v0.9.0's
  submodule, imports a `TaskRunner` from `verl.trainer.main_ppo` that 0.9.x no
  longer has). Overlong shaping moved to
  `reward.reward_kwargs.overlong_buffer_cfg` (with `max_resp_len`), the reward
  function to `reward.custom_reward_function`; export is `verl.model_merger`.

Training and export run from the checkout (`cd` into `resources.backend_dir`),
so the `verl` they import is the checkout's, on either release.

The reward is knowrl's own function, so `</think>` is required exactly as the
paper's reward does. Phases share `trainer.default_local_dir`; verl resumes
from the latest checkpoint in it (`trainer.resume_mode=auto`) and keeps
`algorithm.keep_checkpoints` of them. Metrics go to TensorBoard files in the
job's folder, which knowrl turns into `metrics.parquet`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from knowrl.backends._base import Capabilities, Launch, knowrl_runtime_env
from knowrl.backends._data import GRADING_SITE, refuse_special_think
from knowrl.grading._site import SITE_ENV

name = "verl"
DEFAULT_DIR = "/opt/verl"
"""Where a verl checkout lives; `resources.backend_dir` overrides it."""
RECIPE_PIN = "ac8b84f74cf8cec08bb2ba2f73733c15bd6b8c43"
"""verl-recipe commit whose `dapo` recipe imports against verl 0.9.1 (`make contract` imports it there)."""
FORK_DATA_SEED = 1
"""The data shuffle seed of the authors' run: their fork's default (`data.get("seed", 1)`), unset by train/knowrl.sh."""
REWARD_FILE = "data/knowrl_reward.py"
"""The `custom_reward_function.path` verl loads: a one-line shim importing knowrl's reward."""


def capabilities(spec) -> Capabilities:
    errors, approximations = [], []
    if spec.algorithm.total_steps is None:
        errors.append("algorithm.total_epochs (the compiler needs total_steps for trainer.total_training_steps)")
    if spec.resources.backend_version == "0.4" and spec.data.shuffle and spec.seed != FORK_DATA_SEED:
        approximations.append(
            f"verl 0.4 shuffles the training data with seed {FORK_DATA_SEED}, as the authors' run did (their fork's "
            f"default; train/knowrl.sh sets no data.seed), not with seed {spec.seed} (knowrl's own jobs keep it)"
        )
    return Capabilities(errors, approximations)


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
            ("+data.seed", FORK_DATA_SEED),
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


def with_user_overrides(args: list[str], user: list[str]) -> list[str]:
    """knowrl's overrides, then `resources.backend_overrides`; a key the user sets is dropped from knowrl's, so the
    command and its overrides file name each key once (Hydra would take the last of two silently)."""
    from knowrl.spec._experiment import override_key

    theirs = {override_key(o) for o in user}
    return [a for a in args if override_key(a) not in theirs] + list(user)


def requirements(spec) -> list[tuple[str, str]]:
    """(shell check, what is missing when it fails) for a cluster to run the compiled launch.

    The recipe's entry point is imported the way training runs it (from the checkout, by `python3`), so a recipe
    that does not import against the installed verl is found before any job is submitted."""
    d = shlex.quote(spec.resources.backend_dir or DEFAULT_DIR)
    checks = [
        (f"test -d {d}/recipe/dapo", f"a verl checkout at {d} (recipe/dapo not found; set resources.backend_dir)"),
        (
            f"cd {d} && python3 -c 'import recipe.dapo.main_dapo'",
            f"verl's DAPO recipe importable by python3 from {d} (verl {spec.resources.backend_version} and its "
            "dependencies installed for python3)",
        ),
    ]
    if spec.resources.backend_version == "0.4":
        checks.append((f"test -f {d}/scripts/model_merger.py", f"the fork's scripts/model_merger.py in {d} (export)"))
    return checks


def check_tokenizer(spec) -> None:
    """verl's reward managers decode responses with `skip_special_tokens=True`: a special `</think>` never arrives."""
    refuse_special_think(spec, "verl's reward manager strips before knowrl's reward sees the response")


_SHARD = re.compile(r"model_world_size_(\d+)_rank_(\d+)\.pt")


def checkpoint_dir(step: int) -> str:
    """Where verl saves step N under `trainer.default_local_dir` (relative to the run directory)."""
    return f"checkpoints/global_step_{step}"


def compile_train(job, spec, plan, run_dir: str) -> Launch:
    backend_dir = spec.resources.backend_dir or DEFAULT_DIR
    args = with_user_overrides(render_overrides(phase_overrides(job, spec, run_dir)), spec.resources.backend_overrides)
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


def merger_command(release: str, backend_dir: str, actor_dir: str, target_dir: str) -> str:
    """verl's own converter of `global_step_N/actor` FSDP shards to a Hugging Face folder, for the release.

    0.9 has the `verl.model_merger` package (config and tokenizer from `actor/huggingface/`); the 0.4 fork has only
    `scripts/model_merger.py` (config and tokenizer straight from `actor/`), run as a module so that `verl` is the
    checkout's."""
    q = shlex.quote
    module = "scripts.model_merger" if release == "0.4" else "verl.model_merger"
    return (
        f"cd {q(backend_dir)} && python3 -m {module} merge --backend fsdp --local_dir {q(actor_dir)} "
        f"--target_dir {q(target_dir)}"
    )


def compile_export(job, spec, run_dir: str) -> Launch:
    """verl's model merger: FSDP shards of `global_step_N/actor` -> a Hugging Face folder."""
    src, dst = f"{run_dir}/{job.inputs['checkpoint']}/actor", os.path.join(run_dir, job.outputs["model"])
    command = merger_command(spec.resources.backend_version, spec.resources.backend_dir or DEFAULT_DIR, src, dst)
    return Launch(job.id, command, runtime_env=knowrl_runtime_env({}))


TRACKER = "latest_checkpointed_iteration.txt"
"""verl's record of its last complete checkpoint under `trainer.default_local_dir`, written after every part of it."""


def checkpoint_done(run: Path, step: int) -> bool:
    """Whether verl holds a complete checkpoint at step `step` or later, the one `resume_mode=auto` would load.

    verl's trainer (the fork's and 0.9.1's `_save_checkpoint`) writes `global_step_N/actor` (each rank's model,
    optimizer and extra-state shards), then `global_step_N/data.pt` (the dataloader), and last the tracker file
    with N; on resume it loads the tracked N and trains N+1. A phase whose tracked checkpoint has reached its end
    step is therefore done: run again, verl would train a step past it. A tracked folder that lacks a rank's shard
    or the dataloader state is not complete (verl could not resume from it)."""
    ckpt = Path(run) / "checkpoints"
    try:
        tracked = int((ckpt / TRACKER).read_text().strip())
    except (OSError, ValueError):
        return False
    if tracked < step:
        return False
    folder = ckpt / f"global_step_{tracked}"
    actor = folder / "actor"
    if not (folder / "data.pt").is_file() or not actor.is_dir():
        return False
    shards = [m for p in actor.glob("model_world_size_*_rank_*.pt") if (m := _SHARD.fullmatch(p.name))]
    if not shards:
        return False
    world = {int(m.group(1)) for m in shards}
    if len(world) != 1:
        return False
    (size,) = world
    ranks = {int(m.group(2)) for m in shards}
    return ranks == set(range(size)) and all(
        (actor / f"{kind}_world_size_{size}_rank_{r}.pt").is_file() for kind in ("optim", "extra_state") for r in ranks
    )
