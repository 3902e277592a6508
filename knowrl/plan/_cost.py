"""GPU-hour estimates from the spec's token counts and stated throughput assumptions.

The defaults are for a ~1.5B model with vLLM rollouts and FSDP training, and
are calibrated so the paper's run (2,960 DAPO steps, 512 x 8 rollouts of up to
32k tokens per step) comes out near its reported ~13 days on 64 H100s.
Every assumption is printed with the estimate and can be overridden.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# (generated tokens / s / GPU, trained tokens / s / GPU) for a ~1.5B model
THROUGHPUT = {
    "H100-80GB": (4500.0, 8000.0),
    "H200-141GB": (5600.0, 9600.0),
    "A100-80GB": (2200.0, 4000.0),
    "A100-40GB": (1800.0, 3200.0),
    "L40S-48GB": (1500.0, 2400.0),
    "none": (0.0, 0.0),
}


class Assumptions(BaseModel):
    """What the estimate assumes; override any with `--assume key=value`."""

    model_config = ConfigDict(extra="forbid")

    gen_tokens_per_gpu_s: float = Field(gt=0)
    """Rollout/eval generation throughput per GPU."""
    train_tokens_per_gpu_s: float = Field(gt=0)
    """Training (forward + backward) throughput per GPU."""
    mean_response_fraction: float = Field(0.5, gt=0, le=1)
    """Mean response length as a fraction of the maximum."""
    mean_prompt_tokens: int = Field(512, gt=0)
    """Mean prompt length, hint included."""
    dynamic_sampling_batches: float = Field(1.5, ge=1)
    """Generation batches per step when dynamic sampling refills filtered groups."""
    selection_problems: int = Field(10_000, gt=0)
    """Problems a computed KP selection scores (unknown until the data is read)."""
    selection_rollouts_per_problem: float = Field(21.0, gt=0)
    """Rollouts per problem of an adaptive CSS/CBRS selection (bench/kp_selection.py)."""

    @classmethod
    def for_gpu(cls, gpu_type: str, **overrides) -> Assumptions:
        gen, train = THROUGHPUT.get(gpu_type, THROUGHPUT["H100-80GB"])
        if gpu_type == "none":  # CPU runs: no GPU-hours, but keep the model valid
            gen, train = 1.0, 1.0
        return cls(**{"gen_tokens_per_gpu_s": gen, "train_tokens_per_gpu_s": train, **overrides})


def train_gpu_hours(spec, steps: int, a: Assumptions) -> float:
    alg = spec.algorithm
    response = alg.max_response_length * a.mean_response_fraction
    gen_batches = a.dynamic_sampling_batches if alg.dynamic_sampling.enabled else 1.0
    generated = alg.effective_generation_batch_size * alg.samples_per_prompt * response * gen_batches
    trained = alg.prompts_per_step * alg.samples_per_prompt * (a.mean_prompt_tokens + response)
    per_step = generated / a.gen_tokens_per_gpu_s + trained / a.train_tokens_per_gpu_s
    validations = steps // alg.validate_every
    val_problems = 30 * len(spec.data.validation)  # the paper's validation sets are AIME-sized
    per_val = val_problems * alg.validation.n * response / a.gen_tokens_per_gpu_s
    return (steps * per_step + validations * per_val) / 3600


def eval_gpu_hours(problems: int, samples: int, max_tokens: int, a: Assumptions) -> float:
    return problems * samples * (max_tokens * a.mean_response_fraction) / a.gen_tokens_per_gpu_s / 3600


def selection_gpu_hours(max_tokens: int, a: Assumptions) -> float:
    rollouts = a.selection_problems * a.selection_rollouts_per_problem
    return rollouts * max_tokens * a.mean_response_fraction / a.gen_tokens_per_gpu_s / 3600
