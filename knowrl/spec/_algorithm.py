"""GRPO/DAPO hyperparameters and the clip schedule ("entropy annealing").

Names follow the paper and verl's DAPO recipe; the backend compilers map them
onto NeMo-RL's and verl's own keys.
"""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from knowrl.spec._base import NonNegFloat, PositiveInt, Probability, SpecModel, raise_issues

LossAggregation = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"]


class ClipBounds(SpecModel):
    """PPO ratio clipping: [1 - low, 1 + high], plus the dual-clip bound for negative advantages."""

    low: Probability = 0.2
    """Lower clip epsilon."""
    high: Probability = 0.28
    """Upper clip epsilon (DAPO's clip-higher)."""
    dual_c: Annotated[float, Field(gt=1.0)] | None = 3.0
    """Dual-clip constant c (> 1) bounding the loss for negative advantages; null disables it."""


class ClipChange(SpecModel):
    """From `step` on, train with these clip bounds (unset ones are kept)."""

    step: PositiveInt
    """First step of the new phase."""
    low: Probability | None = None
    """New lower clip epsilon."""
    high: Probability | None = None
    """New upper clip epsilon."""

    @model_validator(mode="after")
    def _changes_something(self) -> "ClipChange":
        if self.low is None and self.high is None:
            raise ValueError("a clip change must set `low`, `high` or both")
        return self


class DynamicSampling(SpecModel):
    """DAPO's filter: drop groups whose rewards are all equal and refill the batch."""

    enabled: bool = False
    """Turn the filter on."""
    metric: Literal["seq_reward", "seq_final_reward", "acc", "score"] = "seq_reward"
    """Per-sequence value whose within-group variance decides whether a group is kept."""
    max_generation_batches: PositiveInt = 10
    """Give up (error) after this many generation batches without filling the batch."""


class OverlongShaping(SpecModel):
    """DAPO's soft overlong punishment in the last `buffer_length` tokens of the response."""

    enabled: bool = False
    """Turn the shaping on."""
    buffer_length: PositiveInt = 4096
    """Tokens before the response limit where the linear penalty starts."""
    penalty_factor: NonNegFloat = 1.0
    """Penalty at the limit."""


class Sampling(SpecModel):
    """Sampling parameters for rollouts."""

    temperature: NonNegFloat = 1.0
    """Sampling temperature."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Nucleus sampling mass."""
    top_k: int = Field(default=-1, ge=-1)
    """Top-k cutoff; -1 disables it."""


class ValidationSampling(Sampling):
    """Sampling for validation during training."""

    temperature: NonNegFloat = 0.7
    """Sampling temperature."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Nucleus sampling mass."""
    n: PositiveInt = 32
    """Samples per validation problem."""


class AlgorithmSpec(SpecModel):
    """The RL algorithm and every hyperparameter of the training run."""

    name: Literal["grpo", "dapo"] = "dapo"
    """`grpo`, or `dapo` (GRPO with clip-higher, dynamic sampling, token-level loss, overlong shaping)."""
    learning_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-6
    """Actor learning rate."""
    weight_decay: NonNegFloat = 0.01
    """AdamW weight decay."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear learning-rate warmup steps."""
    prompts_per_step: PositiveInt = 256
    """Prompts per training step (verl `data.train_batch_size`)."""
    generation_batch_size: PositiveInt | None = None
    """Prompts per generation batch (verl `data.gen_batch_size`); defaults to `prompts_per_step`."""
    samples_per_prompt: PositiveInt = 8
    """Responses per prompt, the GRPO group size."""
    max_prompt_length: PositiveInt = 8192
    """Maximum prompt tokens (hint included)."""
    max_response_length: PositiveInt = 32768
    """Maximum response tokens."""
    mini_batch_size: PositiveInt = 64
    """Prompts per optimizer mini-batch (verl `ppo_mini_batch_size`)."""
    loss_aggregation: LossAggregation = "token-mean"
    """How token losses are averaged."""
    kl_coef: NonNegFloat = 0.0
    """KL penalty to the reference policy; 0 drops the reference model entirely."""
    kl_type: Literal["kl", "abs", "mse", "low_var_kl", "full"] = "low_var_kl"
    """KL estimator when `kl_coef` > 0."""
    entropy_coef: NonNegFloat = 0.0
    """Entropy bonus coefficient."""
    grad_clip: Annotated[float, Field(gt=0.0)] = 1.0
    """Gradient norm clip."""
    clip: ClipBounds = Field(default_factory=ClipBounds)
    """Clip bounds at step 0."""
    clip_schedule: list[ClipChange] = Field(default_factory=list)
    """Piecewise clip changes (the paper's entropy annealing: high 0.28 -> 0.26 at step 2590)."""
    dynamic_sampling: DynamicSampling = Field(default_factory=DynamicSampling)
    """DAPO dynamic sampling."""
    overlong: OverlongShaping = Field(default_factory=OverlongShaping)
    """DAPO overlong reward shaping."""
    rollout: Sampling = Field(default_factory=Sampling)
    """Sampling of training rollouts."""
    validation: ValidationSampling = Field(default_factory=ValidationSampling)
    """Sampling of validation during training."""
    total_steps: PositiveInt | None = 2960
    """Training steps; exactly one of `total_steps` and `total_epochs`."""
    total_epochs: PositiveInt | None = None
    """Training epochs; exactly one of `total_steps` and `total_epochs`."""
    save_every: PositiveInt = 10
    """Checkpoint period in steps."""
    keep_checkpoints: PositiveInt = 3
    """Most recent checkpoints (weights and optimizer state) a backend keeps; older ones are deleted. Not part of
    the spec hash."""
    validate_every: PositiveInt = 10
    """Validation period in steps."""

    @property
    def effective_generation_batch_size(self) -> int:
        return self.generation_batch_size or self.prompts_per_step

    def phases(self) -> list[tuple[int, int | None, ClipBounds]]:
        """The clip schedule as (start, end, bounds) phases; end None means "to the end of training"."""
        starts = [0] + [c.step for c in self.clip_schedule]
        ends: list[int | None] = [c.step for c in self.clip_schedule] + [self.total_steps]
        bounds, out = self.clip, []
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if i:
                change = self.clip_schedule[i - 1]
                bounds = bounds.model_copy(
                    update={k: v for k, v in (("low", change.low), ("high", change.high)) if v is not None}
                )
            out.append((start, end, bounds))
        return out

    @model_validator(mode="after")
    def _cross_field(self) -> "AlgorithmSpec":
        issues: list[tuple[str, str]] = []
        if (self.total_steps is None) == (self.total_epochs is None):
            issues.append(("total_steps", "set exactly one of `total_steps` and `total_epochs`"))
        if self.samples_per_prompt < 2:
            issues.append(("samples_per_prompt", f"is {self.samples_per_prompt}; group advantages need at least 2"))
        if self.dynamic_sampling.enabled and self.effective_generation_batch_size < self.prompts_per_step:
            issues.append(
                (
                    "generation_batch_size",
                    f"({self.generation_batch_size}) must be >= prompts_per_step ({self.prompts_per_step}) "
                    "when dynamic sampling is on",
                )
            )
        if self.prompts_per_step % self.mini_batch_size:
            issues.append(
                (
                    "mini_batch_size",
                    f"({self.mini_batch_size}) must divide prompts_per_step ({self.prompts_per_step})",
                )
            )
        if self.overlong.enabled and self.overlong.buffer_length >= self.max_response_length:
            issues.append(
                (
                    "overlong.buffer_length",
                    f"({self.overlong.buffer_length}) must be < max_response_length ({self.max_response_length})",
                )
            )
        steps = [c.step for c in self.clip_schedule]
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            issues.append(("clip_schedule", f"steps must be strictly increasing, got {steps}"))
        if steps and self.total_steps is None:
            issues.append(("clip_schedule", "needs `total_steps` (epochs cannot place its breakpoints)"))
        elif steps and steps[-1] >= (self.total_steps or 0):
            issues.append(("clip_schedule", f"step {steps[-1]} must be < total_steps ({self.total_steps})"))
        raise_issues(issues)
        return self
