"""`Problem`: the one in-memory record every later stage uses, whatever the source format."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from knowrl._errors import KnowrlError


@dataclass(frozen=True, slots=True)
class Problem:
    """A math problem with its gold answer, knowledge points and named KP selections."""

    id: str
    """Stable id: the source's own, else a content hash of the problem text."""
    benchmark: str
    """Benchmark or data source name (canonical knowrl8 names where they match)."""
    problem: str
    """The problem statement, without hint or answer-format suffix."""
    answer: str
    """Gold answer as LaTeX, without a wrapping `\\boxed{}`."""
    kps: tuple[str, ...] = ()
    """Knowledge points, in `kp_list` order."""
    selections: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Precomputed selections by name (`css`, `cbrs`, ...): indices into `kps`, ascending."""
    solution: str | None = None
    """A reference solution, when the source has one."""
    origin: str = ""
    """Where the record came from (`file:line`, `file:row N`, `hf://...`)."""

    def selection(self, name: str) -> tuple[int, ...]:
        """Indices of a named selection; `none` and `all` are always available."""
        if name == "none":
            return ()
        if name == "all":
            return tuple(range(len(self.kps)))
        try:
            return self.selections[name]
        except KeyError:
            have = ", ".join(["none", "all", *self.selections]) or "none"
            raise KnowrlError(
                f"problem {self.id} ({self.origin}) has no '{name}' selection; it has: {have}",
                hint="compute selections with `knowrl kp select`, or pick another strategy",
            ) from None


_WS = re.compile(r"\s+")


def content_id(problem_text: str) -> str:
    """A stable id from the problem text alone (whitespace-insensitive), so every format agrees."""
    return hashlib.sha1(_WS.sub(" ", problem_text).strip().encode()).hexdigest()[:12]


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def canonical_benchmark(name: str) -> str:
    """Map spellings such as `Olympiad-Bench`, `MATH_500` or `aime24` onto the knowrl8 names."""
    from knowrl.spec import KNOWRL8

    aliases = {_squash(b): b for b in KNOWRL8}
    aliases.update({"olympiadbench": "OlympiadBench", "math": "MATH-500", "hmmt252": "HMMT25", "brumo2025": "BRUMO25"})
    return aliases.get(_squash(name), name)
