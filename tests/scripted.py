"""A generator whose every answer is written in advance, so a test knows each metric before it is computed.

The tiny random model scores 0 everywhere, which makes avg@N, pass@k, maj@N,
confidence intervals and KP selection compare 0 with 0. Here a script says,
for a problem shown with some KPs, what sample j answers; the test then works
the metric out by hand and compares.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from knowrl.generation import Completion

Script = Callable[[str, tuple[str, ...], int, int], str | None]
"""(problem text, KPs shown in the hint in order, sample index, seed) -> the boxed answer, or None for none."""


def parse_prompt(text: str) -> tuple[str, tuple[str, ...]]:
    """(problem, KPs shown) back from a KnowRL hint prompt (`kp.render_prompt`'s layout)."""
    body, _, _suffix = text.rpartition("\n\n")
    problem, hint, numbered = body.partition("\n\n## Hint\n")
    if not hint:
        return body, ()
    return problem, tuple(kp.strip() for kp in re.split(r"(?m)^\d+\. ", numbered) if kp.strip())


class ScriptedGenerator:
    """Answers as `script` says; counts its generate calls and the prompts it was given."""

    model_id = "scripted"

    def __init__(self, script: Script, *, think: bool = True, tokens: int = 5) -> None:
        self.script, self.think, self.tokens = script, think, tokens
        self.calls = 0
        self.prompts: list[str] = []

    def generate(self, prompts, params, n, seeds):
        self.calls += 1
        out = []
        for messages, row in zip(prompts, seeds, strict=True):
            text = messages[-1]["content"]
            self.prompts.append(text)
            problem, kps = parse_prompt(text)
            out.append([self._completion(self.script(problem, kps, j, s), s) for j, s in enumerate(row)])
        return out

    def _completion(self, answer: str | None, seed: int) -> Completion:
        head = "<think>working</think> " if self.think else ""
        body = "I cannot tell." if answer is None else f"The answer is \\boxed{{{answer}}}."
        return Completion(head + body, self.tokens, "stop", seed)

    def close(self) -> None:
        pass


def answers_by_index(table: dict[str, list[str | None]], *, hinted: dict[str, list[str | None]] | None = None):
    """A script from per-problem answer lists (sample j answers table[problem][j]); `hinted` when any KP is shown."""

    def script(problem: str, kps: tuple[str, ...], j: int, seed: int) -> str | None:
        rows = hinted if kps and hinted is not None else table
        return rows[problem][j]

    return script
