"""Grade responses against gold answers: extraction, fast paths, cache, then math-verify.

Fast paths never change math-verify's verdict: two answers of the same
spelling (spacing, `$` and `\\dfrac` aside) are correct, two plain integers
compare as integers, one decimal number written twice (`178.0`, `178`) is
correct, and a verdict once computed is reused -- the 8-32 samples of one
problem mostly share a handful of answers. Only the rest reaches
math-verify, in worker processes. Reuse is keyed by what math-verify is
given: it reads `\\text{178.0}` and `178.0` differently, so a key that a
looser normalisation made common to both gave both the verdict of whichever
was graded first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from knowrl.grading._extract import as_integer, last_boxed, same_decimal, spelling, split_reasoning, strip_boxed
from knowrl.grading._verify import TIMEOUT, Pair, Result, VerifyPool

Reason = Literal["match", "mismatch", "no_answer", "no_think_close", "timeout"]

FALLBACK_TAIL = 4000
"""Characters at the end of an unboxed response given to math-verify's own extraction."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The grade of one response."""

    correct: bool
    answer: str | None
    """The extracted final answer (None when there is none)."""
    reason: Reason


class Grader:
    """Thread-safe grader with a bounded verdict cache and a lazily started math-verify pool."""

    def __init__(
        self,
        *,
        require_think_close: bool = True,
        timeout_s: float = 5.0,
        workers: int | None = None,
        cache_size: int = 1_000_000,
    ) -> None:
        self.require_think_close = require_think_close
        self.pool = VerifyPool(workers=workers, timeout_s=timeout_s)
        self._cache: dict[Pair, Result] = {}  # (gold, answer, raw) as given to math-verify; FIFO-evicted
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def grade(self, gold: str, response: str) -> Verdict:
        return self.grade_many([(gold, response)])[0]

    def grade_many(self, items: Iterable[tuple[str, str]]) -> list[Verdict]:
        """Grade (gold, response) pairs; golds may still carry their `\\boxed{}`."""
        staged: list[Verdict | Pair] = []
        todo: dict[Pair, None] = {}  # what math-verify is given, each once
        for gold, response in items:
            final, closed = split_reasoning(response)
            if self.require_think_close and not closed:
                staged.append(Verdict(False, None, "no_think_close"))
                continue
            gold = strip_boxed(gold)
            gold_spelled = spelling(gold)
            answer = last_boxed(final)
            if answer is not None:
                answer_spelled = spelling(answer)
                fast = _fast_verdict(gold_spelled, answer_spelled)
                if fast is not None:
                    staged.append(Verdict(fast, answer, "match" if fast else "mismatch"))
                    continue
                if not answer_spelled:
                    staged.append(Verdict(False, answer, "no_answer"))
                    continue
                key: Pair = (gold, answer.strip(), False)
            elif final.strip():
                key = (gold, final[-FALLBACK_TAIL:], True)
            else:
                staged.append(Verdict(False, None, "no_answer"))
                continue
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                staged.append(_verdict(cached))
            else:
                todo[key] = None
                staged.append(key)
        fresh = dict(zip(todo, self.pool.check(list(todo)), strict=True)) if todo else {}
        with self._lock:
            for key, result in fresh.items():
                self._cache[key] = result
                if len(self._cache) > self._cache_size:
                    del self._cache[next(iter(self._cache))]
        return [v if isinstance(v, Verdict) else _verdict(fresh[v]) for v in staged]

    def close(self) -> None:
        self.pool.close()


def _verdict(result: Result) -> Verdict:
    outcome, answer = result
    if answer is None:
        return Verdict(False, None, "no_answer")
    if outcome == TIMEOUT:
        return Verdict(False, answer, "timeout")
    return Verdict(bool(outcome), answer, "match" if outcome else "mismatch")


def _fast_verdict(gold: str, answer: str) -> bool | None:
    if gold == answer and gold:
        return True
    g, a = as_integer(gold), as_integer(answer)
    if g is not None and a is not None:
        return g == a
    return True if same_decimal(gold, answer) else None


def grade_responses(golds: Sequence[str], responses: Sequence[str], **kwargs) -> list[Verdict]:
    """One-shot convenience: grade aligned golds and responses with a fresh grader."""
    grader = Grader(**kwargs)
    try:
        return grader.grade_many(zip(golds, responses, strict=True))
    finally:
        grader.close()
