"""The base every spec model shares: strict, frozen, documented by docstrings.

The docstring under each field is its documentation; `_docs.py` turns it into
the JSON Schema description and help text when they are asked for.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        defer_build=True,
    )


Probability = Annotated[float, Field(gt=0.0, lt=1.0)]
"""A value strictly inside (0, 1), e.g. a clip bound."""

PositiveInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""What every seeding call accepts (numpy, torch, TRL, vLLM): a non-negative 32-bit integer."""

DEFAULT_PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
"""The answer-format instruction KnowRL appends to every prompt."""


def raise_issues(issues: list[tuple[str, str]]) -> None:
    """Raise cross-field problems as one pydantic error that still knows each problem's own key.

    Pydantic lets a model validator raise a single error; the keyed list in its
    context lets the loader report each problem at the field it is about.
    """
    if issues:
        from pydantic_core import PydanticCustomError

        text = "; ".join(f"{k}: {m}" if k else m for k, m in issues)
        raise PydanticCustomError("cross_field", text, {"issues": issues})


class GenerationSampling(SpecModel):
    """Sampling for generation outside training: evaluation and the rollouts that score KP subsets."""

    temperature: NonNegFloat = 0.7
    """Sampling temperature."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Nucleus sampling mass."""
    top_k: int = Field(default=-1, ge=-1)
    """Top-k cutoff; -1 disables it."""
    max_tokens: PositiveInt = 32768
    """Maximum new tokens per sample."""
