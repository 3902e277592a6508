"""Run a selection strategy over a dataset: resumable, written as published-format records.

Each finished problem is appended to the output JSONL at once, so an
interrupted run resumes with the problems it has not done; rollouts live in
the scorer's cache beside it, so a resumed problem re-uses what it drew.
Records keep the published field names (`<strategy>_kept_kp_index`,
`<strategy>_selected_kps`), so the data loader reads them back as
precomputed selections.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from knowrl._io import atomic_write_bytes
from knowrl.data import Problem
from knowrl.kp._scorer import RolloutScorer, ScoringConfig
from knowrl.kp._strategies import Selection, select_kps

SCORED = ("max_score", "s_loo", "t_loo", "cbrs", "css")


def strategy_spec(strategy: str, **params):
    """The validated spec model for a strategy and its parameters (defaults where not given)."""
    from pydantic import TypeAdapter, ValidationError

    from knowrl._errors import UsageError
    from knowrl.spec._hints import HintsSpec

    try:
        return TypeAdapter(HintsSpec).validate_python({"strategy": strategy, **params})
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, x['loc'][1:])) or 'strategy'}: {x['msg']}" for x in e.errors())
        raise UsageError(f"bad selection parameters: {msgs}", hint="`knowrl explain hints` lists them") from None


def make_scorer(
    generator, grader, hints, *, seed: int = 0, cache_dir: Path | None = None, suffix: str | None = None, sampling=None
) -> RolloutScorer | None:
    """A rollout scorer for a scored strategy (None for none/all/random, which need no rollouts)."""
    if hints.strategy not in SCORED:
        return None
    from knowrl.generation import SamplingParams
    from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX

    s = hints.sampling
    sampling = sampling or SamplingParams(s.temperature, s.top_p, s.top_k, s.max_tokens)
    return RolloutScorer(
        generator,
        grader,
        ScoringConfig.from_spec(hints),
        sampling,
        seed=hints.seed + seed,
        suffix=suffix or DEFAULT_PROMPT_SUFFIX,
        cache_dir=cache_dir,
    )


def selection_record(problem: Problem, name: str, sel: Selection) -> dict:
    """A `knowrl-annotations` record carrying the new selection (and the problem's earlier ones)."""
    record = {
        "id": problem.id,
        "dataset": problem.benchmark,
        "prompt": [{"role": "user", "content": problem.problem}],
        "reward_model": {"ground_truth": problem.answer, "style": "rule"},
        "kp_list": list(problem.kps),
    }
    for other, indices in problem.selections.items():
        if other != name:
            record[f"{other}_kept_kp_index"] = list(indices)
    record[f"{name}_kept_kp_index"] = list(sel.indices)
    record[f"{name}_selected_kps"] = [problem.kps[i] for i in sel.indices]
    record[f"{name}_estimates"] = {"chosen": sel.estimated, "empty": sel.empty, "full": sel.full}
    record[f"{name}_rollouts"] = sel.rollouts
    record[f"{name}_trace"] = sel.trace
    return record


def done_ids(out: Path) -> set[str]:
    """Problems already in the output; a torn last line (a crash mid-write) is dropped."""
    if not out.exists():
        return set()
    lines = out.read_text(encoding="utf-8").splitlines()
    good = []
    for line in lines:
        try:
            good.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if len(good) != len(lines):  # a new file in place of the old: a crash here loses no finished record
        atomic_write_bytes(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good).encode())
    return {r["id"] for r in good}


def select_dataset(
    problems: Iterable[Problem],
    hints,
    scorer: RolloutScorer | None,
    out: Path,
    progress: Callable[[Problem, Selection], None] | None = None,
) -> int:
    """Select KPs for every problem not yet in `out`; return how many were done now.

    With `hints.concurrency` > 1, that many problems run at once in threads
    whose rollouts share one merged generate call (`BatchingGenerator`);
    records are appended as problems finish, so the file's order may differ
    from the data's (resuming and loading go by problem id).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out)
    todo = [p for p in problems if p.id not in skip]
    concurrency = _concurrency(hints, scorer)
    with out.open("a", encoding="utf-8") as f:

        def record(problem: Problem, sel: Selection) -> None:
            f.write(json.dumps(selection_record(problem, hints.strategy, sel), ensure_ascii=False) + "\n")
            f.flush()
            if progress:
                progress(problem, sel)

        if concurrency == 1:
            for problem in todo:
                record(problem, select_kps(problem, hints, scorer))
        else:
            _select_concurrently(todo, hints, scorer, concurrency, record)
    return len(todo)


def _concurrency(hints, scorer: RolloutScorer | None) -> int:
    """Problems selected at once: the strategy's `concurrency` when it draws rollouts, else one."""
    return getattr(hints, "concurrency", 1) if scorer is not None else 1


def _select_concurrently(problems: list[Problem], hints, scorer: RolloutScorer, concurrency: int, record) -> None:
    """`concurrency` threads, each taking the next problem as it finishes one, share a `BatchingGenerator`.

    A thread takes its next problem itself rather than leaving and being replaced: the broker's
    membership stays whole until the problems run out, so no round goes on without a thread that is
    merely between problems (on a loaded machine that made merged calls twice as many). The records
    are still written by this thread alone, in the order problems finish.
    """
    import queue
    import threading

    from knowrl._errors import KnowrlError
    from knowrl.generation._batching import BatchingGenerator

    inner = scorer.generator
    broker = scorer.generator = BatchingGenerator(inner)
    todo, take, stopping = iter(problems), threading.Lock(), threading.Event()
    finished: queue.SimpleQueue = queue.SimpleQueue()

    def lane() -> None:
        try:
            while not stopping.is_set():
                with take:
                    problem = next(todo, None)
                if problem is None:
                    return
                finished.put((problem, select_kps(problem, hints, scorer), None))
        except BaseException as e:  # the engine's error or the broker's stop: this thread's last word
            finished.put((None, None, e))
        finally:
            broker.leave()

    lanes = min(concurrency, len(problems))
    for _ in range(lanes):  # every member counted before any thread starts: a first call waits for all
        broker.enter()
    threads = [threading.Thread(target=lane, name=f"kp-select-{i}", daemon=True) for i in range(lanes)]
    try:
        for t in threads:
            t.start()
        for _ in problems:
            problem, selection, error = finished.get()
            if error is not None:
                raise error
            record(problem, selection)
    except BaseException as e:  # an error or Ctrl-C: the other threads stop at their next call or problem
        stopping.set()
        broker.stop(KnowrlError(f"selection stopped: {type(e).__name__}: {e}"))
        raise
    finally:
        for t in threads:
            t.join()
        scorer.generator = inner


def make_selector(
    generator,
    grader=None,
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    suffix: str | None = None,
    sampling=None,
    like=None,
) -> Callable[..., dict[str, tuple[int, ...]]]:
    """For eval's `select:<strategy>` modes: selection at test time with the evaluated model and sampling.

    `like` (the spec's `hints`) lends its parameters -- rollouts, budget, bounds -- to the strategy it names,
    so test-time selection scores subsets the way training-time selection did; other strategies get defaults.
    The rollouts are graded by the grader `run_eval` passes (the eval's own: its `</think>` rule and
    `reward.timeout_s`), so selection and the samples it is judged by grade alike; `grader` serves callers
    that pass none."""

    def selector(problems: list[Problem], strategy: str, eval_grader=None) -> dict[str, tuple[int, ...]]:
        hints = like if like is not None and like.strategy == strategy else strategy_spec(strategy)
        use = eval_grader if eval_grader is not None else grader
        if use is None:
            raise ValueError("test-time selection needs a grader: run_eval passes its own")
        scorer = make_scorer(generator, use, hints, seed=seed, cache_dir=cache_dir, suffix=suffix, sampling=sampling)
        concurrency = _concurrency(hints, scorer)
        if concurrency == 1:
            return {p.id: select_kps(p, hints, scorer).indices for p in problems}
        chosen: dict[str, tuple[int, ...]] = {}
        _select_concurrently(problems, hints, scorer, concurrency, lambda p, sel: chosen.update({p.id: sel.indices}))
        return {p.id: chosen[p.id] for p in problems}

    return selector
