"""One small `Generator` protocol that eval, KP selection and the trainer share.

Chat messages + sampling params + n + seeds -> completions with token counts
and a finish reason. Three engines implement it: `transformers` (local, CPU or
GPU), `vllm` (GPUs) and `openai` (any OpenAI-compatible server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Messages = list[dict[str, str]]
"""A chat: [{"role": "user", "content": ...}]; knowrl prompts are one user message, no system prompt."""

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = -1
    max_tokens: int = 32768


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tokens: int
    """Generated tokens (the end-of-sequence token not counted)."""
    finish_reason: FinishReason
    """`stop`: the model ended the response; `length`: it hit `max_tokens` (truncated)."""
    seed: int


@runtime_checkable
class Generator(Protocol):
    model_id: str
    """What generated the text (a path or hub id); part of KP-selection cache keys."""

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        """`n` completions per prompt; `seeds[i][j]` seeds sample j of prompt i."""
        ...

    def close(self) -> None: ...


def user_prompt(text: str) -> Messages:
    return [{"role": "user", "content": text}]
