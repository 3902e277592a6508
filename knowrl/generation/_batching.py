"""Many threads, one generator: concurrent `generate` calls merged into one batch.

KP selection is sequential per problem (each question depends on the last
answer), so one problem keeps a generator busy with a handful of prompts. A
GPU engine wants hundreds. Running many problems in threads and merging
their calls recovers the batch: a call waits until every thread taking part
is waiting too (or has left), and then one merged call serves them all. No
library does this for an arbitrary synchronous batch API (vLLM's async engine
does it for vLLM alone), hence the few lines here.

Determinism: results are per request seed, so merging changes nothing for
engines that seed each sample (vLLM, OpenAI-compatible servers, the
simulator); the transformers generator seeds per batch, so with it results
depend on how the threads interleave.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from knowrl.generation._base import Completion, Generator, Messages, SamplingParams


@dataclass(eq=False)
class _Request:
    prompts: Sequence[Messages]
    params: SamplingParams
    n: int
    seeds: Sequence[Sequence[int]]
    result: list[list[Completion]] | None = None
    error: BaseException | None = None
    done: bool = False


class BatchingGenerator:
    """A `Generator` shared by threads between `enter()` and `leave()`; it merges their calls."""

    def __init__(self, inner: Generator) -> None:
        self.inner, self.model_id = inner, inner.model_id
        self._cv = threading.Condition()
        self._members = 0
        self._pending: list[_Request] = []
        self._stopped: BaseException | None = None

    def enter(self) -> None:
        """One more thread takes part; call it before the thread starts, so its first call is waited for."""
        with self._cv:
            self._members += 1

    def leave(self) -> None:
        """A thread is done; the others no longer wait for it."""
        with self._cv:
            self._members -= 1
            batch = self._take_if_everyone_waits()
        if batch:
            self._serve(batch)

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        request = _Request(prompts, params, n, seeds)
        with self._cv:
            if self._stopped is not None:
                raise self._stopped
            self._pending.append(request)
            batch = self._take_if_everyone_waits()
        if batch:
            self._serve(batch)
        with self._cv:
            self._cv.wait_for(lambda: request.done or self._stopped is not None)
        if not request.done:
            raise self._stopped  # type: ignore[misc]
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def stop(self, reason: BaseException) -> None:
        """Every waiting and later call raises `reason` (Ctrl-C: threads stop at their next call)."""
        with self._cv:
            self._stopped = reason
            self._cv.notify_all()

    def close(self) -> None:
        self.inner.close()

    def _take_if_everyone_waits(self) -> list[_Request]:
        """(Under the lock.) The pending requests, once no member is still busy elsewhere."""
        if self._pending and len(self._pending) >= self._members:
            batch, self._pending = self._pending, []
            return batch
        return []

    def _serve(self, batch: list[_Request]) -> None:
        """One inner call per distinct (sampling, n); every request gets its rows or the error."""
        groups: dict[tuple[SamplingParams, int], list[_Request]] = {}
        for r in batch:
            groups.setdefault((r.params, r.n), []).append(r)
        for (params, n), requests in groups.items():
            try:
                rows = self.inner.generate(
                    [p for r in requests for p in r.prompts], params, n, [s for r in requests for s in r.seeds]
                )
                start = 0
                for r in requests:
                    r.result, start = rows[start : start + len(r.prompts)], start + len(r.prompts)
            except BaseException as e:  # every waiting thread sees the engine's error
                for r in requests:
                    r.error = e
        with self._cv:
            for r in batch:
                r.done = True
            self._cv.notify_all()
