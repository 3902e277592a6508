"""KP extraction: a teacher model decomposes a reference solution into atomic knowledge points.

The output follows the published shape -- "**Knowledge Point**: ...\\n
**Key Considerations**: ..." -- and a KP that states the final answer is
dropped: every expression in it is checked against the gold with the grader
(single-digit integers are too common in KPs to count as leaks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowrl.data import Problem

TEACHER_PROMPT = """You are given a math problem and its reference solution. Decompose the knowledge the solution \
relies on into atomic, reusable knowledge points. Each knowledge point must be general (not specific to this \
problem's numbers) and must never state the final answer.

Write each one exactly in this form, one after another:
**Knowledge Point**: <the fact, definition, theorem or technique>
   **Key Considerations**: <when and how it applies, pitfalls>

## Problem
{problem}

## Reference solution
{solution}
"""

_BLOCK = re.compile(
    r"\*\*Knowledge Point\*\*:\s*(?P<kp>.+?)\s*\n\s*\*\*Key Considerations\*\*:\s*(?P<kc>.+?)"
    r"(?=\n\s*(?:\d+\.\s*)?\*\*Knowledge Point\*\*:|\Z)",
    re.S,
)
_MATH = re.compile(r"\$([^$]+)\$|\\\((.+?)\\\)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def parse_kps(text: str) -> list[str]:
    """KPs in a teacher's answer, normalised to the published two-line shape."""
    out = []
    for m in _BLOCK.finditer(text):
        kp = " ".join(m["kp"].split())
        kc = " ".join(m["kc"].split())
        if kp and kc:
            out.append(f"**Knowledge Point**: {kp}\n   **Key Considerations**: {kc}")
    return out


def _expressions(kp: str) -> list[str]:
    found = [a or b for a, b in _MATH.findall(kp)]
    found += [n for n in _NUMBER.findall(_MATH.sub(" ", kp)) if len(n.lstrip("-")) > 1]
    return [e for e in found if e.strip() and not re.fullmatch(r"-?\d", e.strip())]


def leaking(kps: list[str], gold: str, grader) -> list[bool]:
    """Whether each KP states something equivalent to the gold answer."""
    checks = [(i, e) for i, kp in enumerate(kps) for e in _expressions(kp)]
    verdicts = grader.grade_many((gold, f"</think>\\boxed{{{e}}}") for _, e in checks)
    leaks = [False] * len(kps)
    for (i, _), v in zip(checks, verdicts, strict=True):
        leaks[i] = leaks[i] or v.correct
    return leaks


@dataclass
class Extraction:
    kps: list[str]
    dropped: list[str]
    """KPs removed because they leak the answer."""


def extract_kps(
    problems: list[Problem], generator, grader, *, max_tokens: int = 4096, temperature: float = 0.0
) -> list[Extraction]:
    """Ask the teacher for each problem's KPs (problems need a `solution`)."""
    from knowrl.generation import SamplingParams, user_prompt

    prompts = [user_prompt(TEACHER_PROMPT.format(problem=p.problem, solution=p.solution or "")) for p in problems]
    completions = generator.generate(
        prompts, SamplingParams(temperature, 1.0, -1, max_tokens), 1, [[i] for i in range(len(problems))]
    )
    out = []
    for p, row in zip(problems, completions, strict=True):
        kps = parse_kps(row[0].text)
        leaks = leaking(kps, p.answer, grader) if kps else []
        out.append(
            Extraction(
                [k for k, bad in zip(kps, leaks, strict=True) if not bad],
                [k for k, bad in zip(kps, leaks, strict=True) if bad],
            )
        )
    return out
