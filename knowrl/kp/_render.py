"""Hint prompts, byte for byte as KnowRL renders them.

    <problem>\n\n## Hint\n1. <kp>\n2. <kp>\n\n<suffix>      (non-empty selection)
    <problem>\n\n<suffix>                                    (empty selection)

KPs are stripped and numbered in `kp_list` order. The chat template is applied
later, by whoever tokenizes.
"""

from __future__ import annotations

from collections.abc import Sequence

from knowrl.data._problem import Problem
from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX


def render_hint_prompt(problem_text: str, kps: Sequence[str], suffix: str = DEFAULT_PROMPT_SUFFIX) -> str:
    """The prompt for a problem with these KPs (empty: the no-hint prompt)."""
    if not kps:
        return f"{problem_text}\n\n{suffix}"
    # Same construction as the authors' eval script: "".join("{i}. {kp}\n").strip()
    numbered = "".join(f"{i + 1}. {kp.strip()}\n" for i, kp in enumerate(kps)).strip()
    return f"{problem_text}\n\n## Hint\n{numbered}\n\n{suffix}"


def render_prompt(problem: Problem, selection: Sequence[int], suffix: str = DEFAULT_PROMPT_SUFFIX) -> str:
    """The prompt for `problem` with the KPs at `selection` (indices into its `kp_list`), in list order."""
    return render_hint_prompt(problem.problem, [problem.kps[i] for i in sorted(selection)], suffix)
