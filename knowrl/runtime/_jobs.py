"""What each kind of job does when it runs on this machine (inside a Ray worker under `knowrl run`).

Jobs read their inputs from the run directory, write their artifacts into
their own folder, and never touch the registry.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from knowrl.data._training import selections_for, train_problems


def _dtype(spec) -> str:
    """The spec's dtype on GPUs; float32 on CPUs, as the local trainer uses (bfloat16 matmuls are slow there)."""
    return spec.model.dtype if spec.resources.gpus_per_node else "float32"


def select_shard(
    spec_json: dict, problem_ids: list[str] | None, out: str, cache_dir: str, progress_dir: str | None = None
) -> tuple[int, int]:
    """Select KPs for some of the training problems with one model replica (a Ray task when sharded).

    `progress_dir` (the job's folder) gets a progress.json. Returns (problems selected now, problems in the shard)."""
    from knowrl.generation import make_generator
    from knowrl.grading import Grader
    from knowrl.kp import make_scorer, select_dataset
    from knowrl.spec import validate

    spec = validate(spec_json)
    problems = train_problems(spec)
    if problem_ids is not None:
        wanted = set(problem_ids)
        problems = [p for p in problems if p.id in wanted]
    kind = spec.hints.generator
    if kind == "auto":
        kind = "vllm" if spec.resources.gpus_per_node else "transformers"
    gen = make_generator(
        kind,
        spec.model.path,
        dtype=_dtype(spec),
        use_chat_template=spec.model.use_chat_template,
        seed=spec.seed,
        max_model_len=spec.model.max_context,
    )
    grader = Grader(require_think_close=spec.reward.require_think_close, timeout_s=spec.reward.timeout_s, workers=1)
    try:
        scorer = make_scorer(
            gen, grader, spec.hints, seed=spec.seed, cache_dir=Path(cache_dir), suffix=spec.data.prompt_suffix
        )
        progress = None
        if progress_dir:  # one problem finished at a time; the whole dataset is the total
            from knowrl._rundir import ProgressFile

            bar = ProgressFile(Path(progress_dir), "problems", len(problems))
            progress = lambda problem, sel: bar.advance()  # noqa: E731
        return select_dataset(problems, spec.hints, scorer, Path(out), progress=progress), len(problems)
    finally:
        grader.close()
        gen.close()


def run_kp_select(spec, job, run: Path) -> dict:
    """Data-parallel over problems: `workers` Ray tasks, each with its own model replica and output shard.

    Every shard is resumable on its own (finished problems stay in its file), and
    rollouts are seeded per (problem, subset, trial), so the selections do not
    depend on how the problems were split. The shards are merged in data order.
    """
    import json

    out = run / job.outputs["selections"]
    cache = run / job.id / "rollouts"
    workers = max(1, int(job.params.get("workers", 1)))
    if workers == 1:
        done, total = select_shard(spec.model_dump(mode="json"), None, str(out), str(cache), str(run / job.id))
        return {"selected": done, "problems": total, "workers": 1}
    problems = train_problems(spec)
    import ray

    gpus = 1 if spec.resources.gpus_per_node else 0
    task = ray.remote(select_shard).options(num_gpus=gpus, num_cpus=1)
    ids = [p.id for p in problems]
    shards = [run / job.id / f"selections.shard-{i}.jsonl" for i in range(workers)]
    refs = [
        task.remote(spec.model_dump(mode="json"), ids[i::workers], str(shards[i]), str(cache)) for i in range(workers)
    ]
    done = sum(n for n, _ in ray.get(refs))
    by_id = {}
    for shard in shards:
        for line in shard.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            by_id[record["id"]] = line
    from knowrl._io import atomic_write_bytes

    atomic_write_bytes(out, "".join(by_id[i] + "\n" for i in ids if i in by_id).encode())
    return {"selected": done, "problems": len(problems), "workers": workers}


def run_data(spec, job, run: Path) -> dict:
    from knowrl.backends import get_backend
    from knowrl.backends._data import write_backend_data

    backend = get_backend(spec.resources.backend)
    if hasattr(backend.module, "check_tokenizer"):  # verl and NeMo-RL both strip special tokens before the reward
        backend.module.check_tokenizer(spec)
    return {"rows": write_backend_data(spec, run, backend)}


def run_backend_command(spec, job, run: Path) -> dict:
    """A NeMo-RL or verl training phase or export on this machine: the compiled command, as a cluster runs it.

    Only reached when the backend is installed here and the GPUs are there
    (`knowrl run` checks both before it starts); the command's output goes to
    the job's log, and a training phase's metrics are read back afterwards.
    """
    import os
    import subprocess

    from knowrl._rundir import read_json
    from knowrl.backends import get_backend
    from knowrl.plan._plan import Plan

    p = Plan.from_dict(read_json(run / "manifest.json")["plan"])
    launch = get_backend(spec.resources.backend).compile(job, spec, p, str(run))
    for name, text in launch.files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    env = {**os.environ, **launch.runtime_env.get("env_vars", {})}
    modules = [str(Path(m).parent) for m in launch.runtime_env.get("py_modules", [])]  # as Ray would add them
    env["PYTHONPATH"] = os.pathsep.join([*modules, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with (run / job.id / "job.log").open("a") as log:
        rc = subprocess.call(launch.entrypoint, shell=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    summary: dict = {"exit_code": rc}
    if job.kind == "train":
        from knowrl.runtime._backend_metrics import collect

        summary["metrics"] = collect(run / job.id, spec.resources.backend, job.params.get("phase"))
    if rc:
        raise RuntimeError(f"{job.id}: `{launch.entrypoint[:200]}` exited with {rc} (see {run / job.id}/job.log)")
    return summary


def run_train(spec, job, run: Path) -> dict:
    from knowrl.kp import render_prompt
    from knowrl.runtime._local_train import train_phase

    if spec.resources.backend != "local":
        return run_backend_command(spec, job, run)

    problems = train_problems(spec)
    selected = selections_for(spec, run, problems)
    prompts = [render_prompt(p, selected[p.id], spec.data.prompt_suffix) for p in problems]
    return train_phase(spec, job, run, prompts, [p.answer for p in problems])


def run_eval_job(spec, job, run: Path) -> dict:
    from knowrl.eval import EvalRequest, resolve_suite, run_eval
    from knowrl.generation import SamplingParams, make_generator

    p, e = job.params, spec.eval
    model = job.inputs["model"]
    model = model if model == spec.model.path else str(run / model)
    suite = resolve_suite(e.suite, data=e.data, benchmarks=e.benchmarks, samples=e.samples).subset([p["benchmark"]])
    s = e.sampling
    request = EvalRequest(
        suite,
        [p["hint_mode"]],
        SamplingParams(s.temperature, s.top_p, s.top_k, s.max_tokens),
        seed=spec.seed,
        limit=e.limit,
        require_think_close=spec.reward.require_think_close,
        timeout_s=spec.reward.timeout_s,
        suffix=spec.data.prompt_suffix,
    )
    gen = make_generator(
        e.generator,
        model,
        dtype=_dtype(spec),
        use_chat_template=spec.model.use_chat_template,
        server_url=e.server_url,
        tensor_parallel=e.tensor_parallel,
        seed=spec.seed,
        max_model_len=spec.model.max_context,
    )
    selector = grader = None
    if p["hint_mode"].startswith("select:"):
        from knowrl.grading import Grader
        from knowrl.kp import make_selector

        grader = Grader(require_think_close=spec.reward.require_think_close, workers=1)
        selector = make_selector(
            gen,
            grader,
            cache_dir=run / job.id / "rollouts",
            seed=spec.seed,
            suffix=spec.data.prompt_suffix,
            sampling=request.sampling,
            like=spec.hints,
        )
    from knowrl._rundir import ProgressFile

    bar = ProgressFile(run / job.id, "samples")
    try:
        result = run_eval(
            gen,
            request,
            run / job.id,
            selector=selector,
            progress=lambda label, done, total: bar.advance(done, total or None),
        )
    finally:
        gen.close()
        if grader is not None:
            grader.close()
    return {"accuracy": result.scores[(p["benchmark"], p["hint_mode"])]["accuracy"]}


RUNNERS = {
    "kp_select": run_kp_select,
    "data": run_data,
    "train": run_train,
    "export": run_backend_command,
    "eval": run_eval_job,
}


_LIBRARIES = r"(transformers|trl|torch|accelerate|datasets|huggingface_hub|peft|vllm)(\.|$)"
"""Modules whose deprecation warnings a job's log leaves out (KNOWRL_DEBUG=1 keeps them)."""


@contextlib.contextmanager
def job_lock(job_dir: Path, wait_s: float = 600.0):
    """One attempt of a job at a time: a worker of a killed driver can outlive it and still be writing.

    The new attempt waits (bounded, saying so in the job's log) until that
    worker is gone, then resumes from what it left.
    """
    import time

    from knowrl.runtime._locks import claim

    lock, deadline, said = job_dir / ".attempt.lock", time.monotonic() + wait_s, False
    while True:
        try:
            handle = claim(lock)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"an earlier attempt of {job_dir.name} still runs after {wait_s:.0f} s") from None
            if not said:
                print(f"[knowrl] waiting for an earlier attempt (pid {lock.read_text().strip()}) to stop", flush=True)
                said = True
            time.sleep(0.5)
    try:
        yield
    finally:
        handle.close()


class _JobStream(io.TextIOBase):
    """The worker's stdout and stderr: what is written goes to the log of the job running now.

    A Ray worker runs job after job. A library that keeps the stream it found
    when first imported -- vLLM's logger does -- would otherwise keep writing
    to the first job's log file, closed since ("Logging error ... I/O
    operation on closed file" in every later job's log, and its lines lost).
    """

    def __init__(self, fallback) -> None:
        self.fallback, self.target = fallback, None

    @classmethod
    @contextlib.contextmanager
    def to(cls, f):
        streams = []
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not isinstance(stream, cls):
                stream = cls(stream)
                setattr(sys, name, stream)
            streams.append(stream)
        for stream in streams:
            stream.target = f
        try:
            yield
        finally:
            for stream in streams:
                stream.target = None

    def write(self, text: str) -> int:
        return (self.target or self.fallback).write(text)

    def flush(self) -> None:
        (self.target or self.fallback).flush()

    def fileno(self) -> int:
        return (self.target or self.fallback).fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def execute(job_dict: dict, spec_json: dict, run_dir: str) -> dict:
    """Entry point of a job in a worker process: rebuild the spec and job, run, return a summary.

    Everything the job prints or logs goes to `<run>/<job>/job.log` (`knowrl logs`).
    """
    import logging
    import os
    import time
    import traceback
    import warnings

    from knowrl.plan._plan import Job
    from knowrl.spec import validate

    started = time.time()
    job = Job.from_dict(job_dict)
    log = Path(run_dir) / job.id / "job.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f, _JobStream.to(f):
        if not os.environ.get("KNOWRL_DEBUG"):  # libraries' notes to each other, not to the user
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=_LIBRARIES)
        handler = logging.StreamHandler(f)
        logging.getLogger().addHandler(handler)
        try:
            print(f"[knowrl] {job.id} ({job.kind}) started", flush=True)
            with job_lock(log.parent):
                summary = RUNNERS[job.kind](validate(spec_json), job, Path(run_dir))
            print(f"[knowrl] {job.id} finished: {summary}", flush=True)
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            logging.getLogger().removeHandler(handler)
    return {**summary, "work_interval": [started, time.time()]}
