"""One error root for everything a user can get wrong.

The CLI prints a `KnowrlError` as a short message (no traceback unless
KNOWRL_DEBUG=1) and exits with its `exit_code`. Any other exception is a bug in
knowrl, and is reported as one.
"""

from __future__ import annotations

from dataclasses import dataclass


class KnowrlError(Exception):
    """Base of every error knowrl raises for bad input or a bad environment."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class SpecIssue:
    """One thing wrong with a spec, located as precisely as we can."""

    key: str
    """Dotted key the problem is about ("" for the whole document)."""
    message: str
    """What was expected and what was given."""
    where: str | None = None
    """`file:line` of the YAML that set the key, or where an override came from."""
    hint: str | None = None
    """How to fix it, e.g. a "did you mean" suggestion."""

    def render(self) -> str:
        head = f"{self.where}: " if self.where else ""
        key = f"{self.key}: " if self.key else ""
        tail = f"\n      {self.hint}" if self.hint else ""
        return f"{head}{key}{self.message}{tail}"


class SpecError(KnowrlError):
    """Every problem found in an experiment spec, reported together."""

    exit_code = 2

    def __init__(self, problems: list[SpecIssue], *, source: str | None = None) -> None:
        self.problems = sorted(problems, key=lambda p: _line_order(p.where))
        self.source = source
        n = len(self.problems)
        if not n:  # one problem that is the whole message (a sweep key naming no list item): no count, no list
            super().__init__(source or "the experiment spec is invalid")
            return
        title = f"{source}: " if source else ""
        title += f"{n} problem{'s' if n != 1 else ''} in the experiment spec"
        super().__init__(title + "\n" + "\n".join(f"  - {p.render()}" for p in self.problems))


class UsageError(KnowrlError):
    """A command-line argument that cannot work, named with its fix."""

    exit_code = 2


def _line_order(where: str | None) -> tuple[str, int]:
    """Problems sort by file, then line; unlocated ones (overrides, defaults) last."""
    file, _, line = (where or "").rpartition(":")
    return (file, int(line)) if file and line.isdigit() else ("\uffff", 0)
