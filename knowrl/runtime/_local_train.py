"""The local backend's trainer: one clip-schedule phase of GRPO/DAPO with TRL's GRPOTrainer, on CPU.

knowrl renders the hint prompts and grades the rewards; TRL does the policy
update. Phases share one TRL output directory, so phase k resumes from phase
k-1's checkpoint (weights, optimizer, scheduler, RNG, data position) with the
new clip bounds -- the same mechanism the cluster backends use. A phase that
was killed resumes from its own last complete checkpoint, and the metrics it
logged before are on disk (`MetricLog`), trimmed to that checkpoint's step.
"""

from __future__ import annotations

import json
from pathlib import Path

from knowrl._io import write_rows
from knowrl._rundir import MetricLog, ProgressFile
from knowrl.runtime._backend_metrics import canonical_values

LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum": "dr_grpo"}
"""knowrl's loss aggregation -> TRL's loss_type (token-level over the batch, per-sequence mean, constant-length sum)."""


def latest_checkpoint(folder: Path, up_to: int) -> tuple[str, int] | None:
    """The newest complete TRL checkpoint at or before step `up_to`: (path, step), or None.

    The Trainer writes trainer_state.json last, so a checkpoint torn by a kill
    has none (or a truncated one) and is passed over.
    """
    found = []
    for c in folder.glob("checkpoint-*"):
        step = c.name.split("-", 1)[1]
        try:
            complete = step.isdigit() and int(step) <= up_to and json.loads((c / "trainer_state.json").read_text())
        except (OSError, ValueError):
            complete = False
        if complete:
            found.append((int(step), str(c)))
    return (max(found)[1], max(found)[0]) if found else None


def train_phase(spec, job, run_dir: Path, prompts: list[str], answers: list[str]) -> dict:
    """Train steps [start, end) of one phase; write metrics.parquet and checkpoints/step_<end>."""
    import torch
    import transformers
    from datasets import Dataset
    from trl import GRPOTrainer

    from knowrl.generation._transformers import load_model_and_tokenizer
    from knowrl.grading import Grader

    transformers.utils.logging.disable_progress_bar()
    a, p = spec.algorithm, job.params
    trl_dir = run_dir / "checkpoints" / "trl"
    final = run_dir / "checkpoints" / f"step_{p['end_step']}"
    resume = latest_checkpoint(trl_dir, p["end_step"])
    log = MetricLog(run_dir / job.id / "metrics.jsonl")
    log.truncate(after_step=resume[1] if resume else p["start_step"])  # steps past the checkpoint are redone
    if resume and resume[1] == p["end_step"]:  # it finished training before it was stopped: no step more
        return _finish(run_dir, job, log, final, resumed_from=resume[0], copy_from=resume[0])
    torch.manual_seed(spec.seed)
    model, tokenizer = load_model_and_tokenizer(spec.model.path, "float32", "cpu")
    grader = Grader(require_think_close=spec.reward.require_think_close, timeout_s=spec.reward.timeout_s, workers=1)
    group_stats: list[dict] = []

    def reward(completions, answer, **_) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        verdicts = grader.grade_many(zip(answer, texts, strict=True))
        out = []
        for v in verdicts:
            r = spec.reward.correct if v.correct else spec.reward.incorrect
            out.append(r - (spec.reward.format_penalty if v.reason == "no_answer" else 0.0))
        g = a.samples_per_prompt
        groups = [verdicts[i : i + g] for i in range(0, len(verdicts), g)]
        group_stats.append(
            {
                "correct_fraction": sum(v.correct for v in verdicts) / len(verdicts),
                "zero_correct_groups": sum(not any(v.correct for v in grp) for grp in groups) / len(groups),
                "all_correct_groups": sum(all(v.correct for v in grp) for grp in groups) / len(groups),
            }
        )
        return out

    bar = ProgressFile(run_dir / job.id, "steps", p["end_step"])

    class Metrics(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.set(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            values = {f"train/{k}": float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            values.update({f"train/{k}": v for k, v in (group_stats[-1] if group_stats else {}).items()})
            values.update(canonical_values("local", values))  # the names every backend shares
            context = json.dumps({"phase": p["phase"]})
            step = state.global_step
            log.append([{"step": step, "name": k, "value": v, "context": context} for k, v in values.items()])

    config = grpo_config(spec, p, trl_dir)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": t}] for t in prompts], "answer": answers})
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[reward],
        args=config,
        train_dataset=dataset,
        callbacks=[Metrics()],
    )
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # metrics go to parquet, not stdout
    try:
        trainer.train(resume_from_checkpoint=resume[0] if resume else None)
    finally:
        grader.close()
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return _finish(run_dir, job, log, final, resumed_from=resume[0] if resume else None)


def grpo_config(spec, params: dict, trl_dir: Path):
    """TRL's settings for one phase (`params`: the job's start and end step, clip bounds) of the local backend."""
    from trl import GRPOConfig

    a, p = spec.algorithm, params
    return GRPOConfig(
        output_dir=str(trl_dir),
        max_steps=p["end_step"],
        learning_rate=a.learning_rate,
        weight_decay=a.weight_decay,
        warmup_steps=a.warmup_steps,
        lr_scheduler_type="constant_with_warmup",
        max_grad_norm=a.grad_clip,
        beta=a.kl_coef,
        epsilon=p["clip_low"],
        epsilon_high=p["clip_high"],
        delta=p["clip_c"],
        loss_type=LOSS_TYPES[a.loss_aggregation],
        num_generations=a.samples_per_prompt,
        per_device_train_batch_size=a.mini_batch_size * a.samples_per_prompt,
        steps_per_generation=a.prompts_per_step // a.mini_batch_size,
        temperature=a.rollout.temperature,
        top_p=a.rollout.top_p,
        top_k=a.rollout.top_k if a.rollout.top_k > 0 else 0,
        max_completion_length=a.max_response_length,
        save_strategy="steps",
        save_steps=a.save_every,
        save_total_limit=a.keep_checkpoints,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        # The model trains in the float32 it was loaded in, without recomputation. TRL's defaults (bf16 and
        # gradient checkpointing on) autocast every matmul to bfloat16, which a CPU without bf16 units runs
        # through torch's reference GEMM, and recompute each forward: a quickstart step took 545-605 s, 59-83 s without.
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        seed=spec.seed,
        data_seed=spec.seed,
        shuffle_dataset=spec.data.shuffle,
        disable_tqdm=True,
    )


def _finish(run_dir: Path, job, log: MetricLog, final: Path, *, resumed_from: str | None, copy_from=None) -> dict:
    """The phase's metrics as parquet, and its model in `final` (copied from a TRL checkpoint when given)."""
    if copy_from:
        from knowrl.generation._transformers import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(copy_from, "float32", "cpu")
        model.save_pretrained(str(final))
        tokenizer.save_pretrained(str(final))
    rows = log.read()
    write_rows(run_dir / job.id / "metrics.parquet", rows)
    return {"checkpoint": str(final), "resumed_from": resumed_from, "metrics": len(rows)}
