"""Find the final answer in a response: after the last `</think>`, the last `\\boxed{...}`.

Hand-written because it must be linear-time on 1 MB responses and exact about
nested braces; math-verify's own extraction runs regexes over the whole text
and is used only as the fallback when no box is found.
"""

from __future__ import annotations

import re
from decimal import Decimal

THINK_CLOSE = "</think>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\(?:q?quad|displaystyle|textstyle|left|right|big|Big|bigl|bigr)(?![a-zA-Z])")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def split_reasoning(response: str) -> tuple[str, bool]:
    """(text after the last `</think>`, whether one was found); the whole response when none was."""
    i = response.rfind(THINK_CLOSE)
    if i < 0:
        return response, False
    return response[i + len(THINK_CLOSE) :], True


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at text[start] == '{', and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\":  # an escaped brace \{ or \} does not count
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`), braces balanced."""
    best_at, best = -1, None
    for cmd in _BOX_COMMANDS:
        pos = len(text)
        while True:
            i = text.rfind(cmd, 0, pos)
            if i < 0 or i <= best_at:
                break
            j = i + len(cmd)
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == "{":
                group = _braced(text, j)
                if group is not None:
                    best_at, best = i, group[0]
                    break
            elif j > i + len(cmd) and j < len(text):  # `\boxed 5`: up to the next space or `$`
                m = re.match(r"[^\s$]+", text[j:])
                if m:
                    best_at, best = i, m.group(0)
                    break
            pos = i
    return best


def strip_boxed(gold: str) -> str:
    """A gold answer without a wrapping `\\boxed{...}` (published golds are sometimes boxed)."""
    s = gold.strip().strip("$").strip()
    for cmd in _BOX_COMMANDS:
        if s.startswith(cmd):
            j = len(cmd)
            while j < len(s) and s[j] == " ":
                j += 1
            if j < len(s) and s[j] == "{":
                group = _braced(s, j)
                if group is not None and group[1] == len(s):
                    return group[0].strip()
    return s


def spelling(answer: str) -> str:
    """An answer without what never changes how math-verify reads it: spacing commands, whitespace, `$`, and
    `\\dfrac` / `\\tfrac` for `\\frac`. The grader takes two equal spellings as equal answers."""
    s = _SPACING.sub("", answer)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\$", "").replace("$", "")
    return "".join(s.split())


def normalize(answer: str) -> str:
    """An answer's spelling without `\\text{}`-like wrappers and a closing period: the votes of maj@N.

    Looser than math-verify, which reads `\\text{178.0}` or a boxed `178.` differently from `178.0` and `178`,
    so it groups the answers a reader would; it never grades.
    """
    return _TEXT_WRAP.sub(r"\1", spelling(answer)).rstrip(".")


def same_decimal(a: str, b: str) -> bool:
    """Whether two spellings are one plain decimal number (`178.0` and `178`, `0.50` and `0.5`); False for anything
    else, unequal numbers too: math-verify compares those within a tolerance, so only equality is certain."""
    if not all(len(s) <= 64 and _NUMBER.fullmatch(s) for s in (a, b)):
        return False
    return Decimal(a) == Decimal(b)


def as_integer(spelled: str) -> int | None:
    """The integer an answer's `spelling` is, if it is a plain integer (AIME-style), else None."""
    if len(spelled) <= 4300 and _INTEGER.fullmatch(spelled):
        return int(spelled)
    return None
