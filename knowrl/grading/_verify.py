"""math-verify equivalence, run where a pathological answer can be killed.

math-verify bounds its own time with SIGALRM, which only works in a process's
main thread (it refuses threads, so it breaks inside Ray actors and trainer
callbacks) and cannot interrupt a long C-level computation such as a huge
integer power. Checks therefore run in worker processes (pebble), in chunks
for throughput: inside a worker math-verify's own alarm bounds each check, and
pebble kills the worker if a chunk overruns anyway; its items are then re-run
one by one so only the culprit grades as a timeout.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

Pair = tuple[str, str, bool]
"""(gold without `\\boxed`, answer, raw): `raw` means the answer is the end of a response
with no box, for math-verify's own extraction to find the answer in."""

TIMEOUT = "timeout"
Result = tuple[bool | str, str | None]
"""(True / False / "timeout", the answer as extracted)."""


def _check(gold: str, answer: str, raw: bool, timeout_s: int) -> Result:
    from math_verify import parse, verify

    start = time.monotonic()
    g = parse("\\boxed{" + gold + "}", parsing_timeout=timeout_s)
    a = parse(answer if raw else "\\boxed{" + answer + "}", parsing_timeout=timeout_s)
    if raw:
        found = [x for x in a if isinstance(x, str) and x.strip()]
        if not found:
            return False, None
        answer = found[-1].strip().strip("$")
    ok = bool(verify(g, a, timeout_seconds=timeout_s))
    # math-verify swallows its own timeouts (logging them and answering False): recover the reason.
    if not ok and time.monotonic() - start >= timeout_s:
        return TIMEOUT, answer
    return ok, answer


def _check_chunk(pairs: list[Pair], timeout_s: int) -> list[Result]:
    """Runs in a worker process's main thread, where math-verify's alarm works."""
    out: list[Result] = []
    for gold, answer, raw in pairs:
        try:
            out.append(_check(gold, answer, raw, timeout_s))
        except TimeoutError:
            out.append((TIMEOUT, None if raw else answer))
        except Exception:  # math-verify raises on some malformed LaTeX, MemoryError on runaways
            out.append((False, None if raw else answer))
    return out


def _warm(memory_bytes: int, site: str | None = None) -> None:
    import resource

    from knowrl.grading._site import activate

    activate(site)  # before math-verify is imported: the parser is chosen at import

    # A runaway expression (2^{10^{10}}) fails fast with MemoryError instead of swapping the machine. The cap is
    # on top of what the forked worker already maps (a Ray worker or a trainer may map many GB of address space).
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        mapped = 0
    limit = mapped + memory_bytes
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # timeouts are reported as verdicts
    import math_verify  # noqa: F401  (pay sympy's import once per worker, not per task)


class VerifyPool:
    """A lazily started pool of math-verify workers with per-chunk hard timeouts."""

    def __init__(
        self, workers: int | None = None, timeout_s: float = 5.0, chunk: int = 16, memory_bytes: int = 4 << 30
    ) -> None:
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.timeout_s = max(1, math.ceil(timeout_s))
        self.chunk = chunk
        self.memory_bytes = memory_bytes
        self._pool = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._pool is None:
                from pebble import ProcessPool

                # fork: workers need no `if __name__ == "__main__"` guard in user scripts and start
                # in milliseconds; they only run pure-Python sympy, so a threaded parent is safe.
                from knowrl.grading._site import SITE_ENV, antlr_version, refuse_other

                ctx = multiprocessing.get_context("fork")
                site = os.environ.get(SITE_ENV) or None
                pool = ProcessPool(
                    max_workers=self.workers, initializer=_warm, initargs=(self.memory_bytes, site), context=ctx
                )
                try:  # once per pool: the workers must parse as knowrl's verdicts were defined
                    refuse_other(pool.schedule(antlr_version).result(timeout=120))
                except BaseException:
                    pool.stop()
                    raise
                self._pool = pool
                atexit.register(self.close)
            return self._pool

    def check(self, pairs: list[Pair]) -> list[Result]:
        """Equivalence of each pair: True, False, or "timeout", with the extracted answer."""
        if not pairs:
            return []
        pool = self._get()
        chunks = [pairs[i : i + self.chunk] for i in range(0, len(pairs), self.chunk)]
        # A typical check takes milliseconds; a chunk overruns this only when a check
        # ignored math-verify's alarm (a C-level computation), and is then re-run item by item.
        futures = [
            pool.schedule(_check_chunk, (c, self.timeout_s), timeout=self.timeout_s + 1 + 0.5 * len(c)) for c in chunks
        ]
        out: list[Result] = []
        for c, f in zip(chunks, futures, strict=True):
            try:
                out += f.result()
            except (FutureTimeout, Exception):
                out += self._one_by_one(c)
        return out

    def _one_by_one(self, pairs: list[Pair]) -> list[Result]:
        pool = self._get()
        futures = [pool.schedule(_check_chunk, ([p], self.timeout_s), timeout=self.timeout_s + 2) for p in pairs]
        out: list[Result] = []
        for (_, answer, raw), f in zip(pairs, futures, strict=True):
            try:
                out += f.result()
            except FutureTimeout:
                out.append((TIMEOUT, None if raw else answer))
            except Exception:  # the worker died (e.g. killed by the OS): not gradable
                out.append((False, None if raw else answer))
        return out

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.stop()
                self._pool.join(timeout=5)
                self._pool = None
