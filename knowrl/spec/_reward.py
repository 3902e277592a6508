"""The reward a training rollout earns."""

from typing import Annotated, Literal

from pydantic import Field

from knowrl.spec._base import SpecModel


class RewardSpec(SpecModel):
    """Rule-based math reward: 1 for an equivalent final answer, else 0, with optional format penalties."""

    rule: Literal["math_verify"] = "math_verify"
    """Equivalence check: math-verify on sympy."""
    require_think_close: bool = True
    """Give the incorrect reward when the response has no closing `</think>` (the paper's rule)."""
    correct: float = 1.0
    """Reward for a correct final answer."""
    incorrect: float = 0.0
    """Reward for a wrong or missing answer."""
    format_penalty: Annotated[float, Field(ge=0.0)] = 0.0
    """Subtracted when no final answer can be extracted at all."""
    timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    """Time limit for one equivalence check; a check that runs over grades as incorrect."""
