"""Evaluate a model on a suite under several hint modes, resumably.

Each (benchmark, hint mode) pair is one shard: its samples are generated,
graded and written atomically to `samples/<benchmark>/<mode>.parquet`. A
rerun into the same directory keeps finished shards, so an interrupted eval
resumes where it stopped; a directory holding an eval with other settings is
refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from knowrl._errors import KnowrlError
from knowrl._io import atomic_write_bytes, write_rows
from knowrl.data import Problem
from knowrl.eval._metrics import Sample, correct_count_distribution, shard_metrics, suite_means
from knowrl.eval._suites import Suite, load_benchmarks
from knowrl.generation import Generator, SamplingParams, user_prompt
from knowrl.kp import render_prompt
from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX

if TYPE_CHECKING:
    from knowrl.grading import Grader

AVG = "Avg."
Selector = Callable[[list[Problem], str, "Grader"], dict[str, tuple[int, ...]]]
"""(problems, strategy, the eval's grader) -> selected KP indices per problem id, for `select:<strategy>` modes.

The eval hands the selector its own grader, so test-time selection grades rollouts with the request's
`require_think_close` and `timeout_s` (the spec's `reward`), exactly as the samples are graded."""


def is_oracle(mode: str) -> bool:
    """`select:` modes pick KPs with the evaluated model and the gold answers: oracle-assisted."""
    return mode.startswith("select:")


def mode_label(mode: str) -> str:
    return f"{mode} (oracle-assisted)" if is_oracle(mode) else mode


def sample_seed(seed: int, problem_id: str, index: int) -> int:
    """Per-sample seed shared by every hint mode, so modes are compared on common random numbers."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{problem_id}/{index}".encode()).digest()[:4], "big") >> 1


@dataclass
class EvalRequest:
    suite: Suite
    hint_modes: list[str]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    limit: int | None = None
    require_think_close: bool = True
    timeout_s: float = 5.0
    suffix: str = DEFAULT_PROMPT_SUFFIX

    def fingerprint(self, model_id: str) -> dict:
        return {
            "model": model_id,
            "suite": self.suite.name,
            "benchmarks": [[b.name, b.source, b.samples] for b in self.suite.benchmarks],
            "sampling": asdict(self.sampling),
            "seed": self.seed,
            "limit": self.limit,
            "require_think_close": self.require_think_close,
            "suffix": self.suffix,
        }


@dataclass
class EvalResult:
    out_dir: Path
    scores: dict[tuple[str, str], dict[str, float]]
    """(benchmark or "Avg.", hint mode) -> metrics."""
    distribution: dict[tuple[str, str], dict[int, int]]
    benchmarks: list[str]
    hint_modes: list[str]


def shard_path(out_dir: Path, benchmark: str, mode: str) -> Path:
    return out_dir / "samples" / benchmark / f"{mode.replace(':', '-')}.parquet"


def run_eval(
    generator: Generator,
    request: EvalRequest,
    out_dir: Path,
    *,
    selector: Selector | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalResult:
    """Run every (benchmark, hint mode) shard that is not already on disk, then score them all."""
    from knowrl.grading import Grader

    # The shards are parquet: import pyarrow (~0.3 s) while the first generate call runs, not after it.
    threading.Thread(target=importlib.import_module, args=("pyarrow.parquet",), daemon=True).start()
    out_dir = Path(out_dir)
    benchmarks = load_benchmarks(request.suite, request.limit)
    _claim(out_dir, request.fingerprint(generator.model_id))
    grader = Grader(require_think_close=request.require_think_close, timeout_s=request.timeout_s)
    rows_by_shard: dict[tuple[str, str], list[dict]] = {}
    try:
        for bench in request.suite.benchmarks:
            for mode in request.hint_modes:
                path = shard_path(out_dir, bench.name, mode)
                if not path.exists():
                    rows = _run_shard(
                        generator,
                        grader,
                        request,
                        benchmarks[bench.name],
                        bench.name,
                        bench.samples,
                        mode,
                        selector,
                        progress,
                    )
                    write_rows(path, rows)
                rows_by_shard[(bench.name, mode)] = _read(path)
    finally:
        grader.close()
    return score(out_dir, rows_by_shard, [b.name for b in request.suite.benchmarks], request.hint_modes)


def _claim(out_dir: Path, fingerprint: dict) -> None:
    manifest = out_dir / "eval.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != fingerprint:
            changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
            raise KnowrlError(
                f"{out_dir} holds an eval with other settings ({', '.join(changed)} differ)",
                hint="choose another --out, or delete the folder to start over",
            )
        return
    atomic_write_bytes(manifest, json.dumps(fingerprint, indent=2).encode())


def _selections(
    problems: list[Problem], mode: str, selector: Selector | None, grader: Grader
) -> dict[str, tuple[int, ...]]:
    if is_oracle(mode):
        if selector is None:
            raise KnowrlError(
                f"hint mode {mode} needs KP selection at test time, which this run cannot do",
                hint="use precomputed modes (none, css, cbrs, all)",
            )
        return selector(problems, mode.split(":", 1)[1], grader)
    return {p.id: p.selection(mode) for p in problems}


def _run_shard(
    generator: Generator,
    grader,
    request: EvalRequest,
    problems: list[Problem],
    benchmark: str,
    n: int,
    mode: str,
    selector: Selector | None,
    progress,
) -> list[dict]:
    selected = _selections(problems, mode, selector, grader)
    prompts = [render_prompt(p, selected[p.id], request.suffix) for p in problems]
    seeds = [[sample_seed(request.seed, p.id, j) for j in range(n)] for p in problems]
    if progress:
        progress(f"{benchmark} / {mode_label(mode)}", 0, len(problems) * n)
        generator.on_batch = lambda done: progress(f"{benchmark} / {mode_label(mode)}", done, 0)  # type: ignore
    completions = generator.generate([user_prompt(t) for t in prompts], request.sampling, n, seeds)
    verdicts = grader.grade_many((p.answer, c.text) for p, row in zip(problems, completions, strict=True) for c in row)
    rows, k = [], 0
    for p, row in zip(problems, completions, strict=True):
        for j, c in enumerate(row):
            v = verdicts[k]
            k += 1
            rows.append(
                {
                    "benchmark": benchmark,
                    "problem_id": p.id,
                    "hint_mode": mode,
                    "oracle_assisted": is_oracle(mode),
                    "sample_index": j,
                    "seed": c.seed,
                    "kps": len(selected[p.id]),
                    "response": c.text,
                    "response_tokens": c.tokens,
                    "finish_reason": c.finish_reason,
                    "extracted_answer": v.answer,
                    "correct": v.correct,
                    "reason": v.reason,
                }
            )
    return rows


def _read(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(
        path, columns=["problem_id", "correct", "extracted_answer", "response_tokens", "finish_reason", "kps"]
    ).to_pylist()


def _samples(rows: Sequence[dict]) -> list[Sample]:
    return [
        Sample(
            r["problem_id"],
            r["correct"],
            r["extracted_answer"],
            r["response_tokens"],
            r["finish_reason"] == "length",
            r["kps"],
        )
        for r in rows
    ]


def score(
    out_dir: Path, rows_by_shard: dict[tuple[str, str], list[dict]], benchmarks: list[str], hint_modes: list[str]
) -> EvalResult:
    """Metrics per shard and per hint mode over the suite; written to scores.parquet and distribution.parquet."""
    scores: dict[tuple[str, str], dict[str, float]] = {}
    dist: dict[tuple[str, str], dict[int, int]] = {}
    for key, rows in rows_by_shard.items():
        samples = _samples(rows)
        scores[key] = shard_metrics(samples)
        dist[key] = correct_count_distribution(samples)
    for mode in hint_modes:
        scores[(AVG, mode)] = suite_means({b: scores[(b, mode)] for b in benchmarks})
    write_rows(
        out_dir / "scores.parquet",
        [
            {"benchmark": b, "hint_mode": m, "oracle_assisted": is_oracle(m), "metric": k, "value": v}
            for (b, m), metrics in scores.items()
            for k, v in metrics.items()
        ],
    )
    write_rows(
        out_dir / "distribution.parquet",
        [
            {"benchmark": b, "hint_mode": m, "correct": c, "problems": n}
            for (b, m), hist in dist.items()
            for c, n in hist.items()
        ],
    )
    return EvalResult(out_dir, scores, dist, benchmarks, hint_modes)
