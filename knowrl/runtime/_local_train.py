"""The local backend's trainer: one clip-schedule phase of GRPO/DAPO with TRL's GRPOTrainer, on CPU.

knowrl renders the hint prompts and grades the rewards; TRL does the policy
update. Phases share one TRL output directory, so phase k resumes from phase
k-1's checkpoint (weights, optimizer, scheduler, RNG, data position) with the
new clip bounds -- the same mechanism the cluster backends use.
"""

from __future__ import annotations

import json
from pathlib import Path

from knowrl._io import write_rows

LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum": "dr_grpo"}
"""knowrl's loss aggregation -> TRL's loss_type (token-level over the batch, per-sequence mean, constant-length sum)."""


def _latest_checkpoint(folder: Path) -> str | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(found[-1]) if found else None


def train_phase(spec, job, run_dir: Path, prompts: list[str], answers: list[str]) -> dict:
    """Train steps [start, end) of one phase; write metrics.parquet and checkpoints/step_<end>."""
    import torch
    import transformers
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from knowrl.generation._transformers import load_model_and_tokenizer
    from knowrl.grading import Grader

    transformers.utils.logging.disable_progress_bar()
    a, p = spec.algorithm, job.params
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

    rows: list[dict] = []

    from knowrl.runtime._layout import ProgressFile

    bar = ProgressFile(run_dir / job.id, "steps", p["end_step"])

    class Metrics(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.set(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            for k, v in (logs or {}).items():
                if isinstance(v, int | float):
                    rows.append(
                        {
                            "step": step,
                            "name": f"train/{k}",
                            "value": float(v),
                            "context": json.dumps({"phase": p["phase"]}),
                        }
                    )
            if group_stats:
                for k, v in group_stats[-1].items():
                    rows.append(
                        {"step": step, "name": f"train/{k}", "value": v, "context": json.dumps({"phase": p["phase"]})}
                    )

    trl_dir = run_dir / "checkpoints" / "trl"
    config = GRPOConfig(
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
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=spec.seed,
        data_seed=spec.seed,
        shuffle_dataset=spec.data.shuffle,
        disable_tqdm=True,
    )
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
    resume = _latest_checkpoint(trl_dir) if p["start_step"] > 0 else None
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        grader.close()
    final = run_dir / "checkpoints" / f"step_{p['end_step']}"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    write_rows(run_dir / job.id / "metrics.parquet", rows)
    return {"checkpoint": str(final), "resumed_from": resume, "metrics": len(rows)}
