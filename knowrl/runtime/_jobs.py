"""What each kind of job does when it runs on this machine (inside a Ray worker under `knowrl run`).

Jobs read their inputs from the run directory, write their artifacts into
their own folder, and never touch the registry.
"""

from __future__ import annotations

from pathlib import Path

from knowrl.data import Problem, load_problems


def train_problems(spec) -> list[Problem]:
    out: list[Problem] = []
    for source in spec.data.train:
        out += load_problems(source.source, source.format, limit=source.limit, suffix=spec.data.prompt_suffix).problems
    return out


def _selections(spec, run: Path, problems: list[Problem]) -> dict[str, tuple[int, ...]]:
    """KP indices per problem for training prompts: computed by the kp_select job, or precomputed in the data."""
    h = spec.hints
    if h.source == "compute" and h.strategy != "none":
        selected = {
            p.id: p.selections[h.strategy] for p in load_problems(str(run / "kp_select" / "selections.jsonl")).problems
        }
        return {p.id: selected.get(p.id, ()) for p in problems}
    return {p.id: p.selection(h.field or h.strategy) for p in problems}


def run_kp_select(spec, job, run: Path) -> dict:
    from knowrl.generation import make_generator
    from knowrl.grading import Grader
    from knowrl.kp import make_scorer, select_dataset

    problems = train_problems(spec)
    gen = make_generator(
        "transformers" if not spec.resources.gpus_per_node else "vllm",
        spec.model.path,
        use_chat_template=spec.model.use_chat_template,
    )
    grader = Grader(require_think_close=spec.reward.require_think_close, timeout_s=spec.reward.timeout_s, workers=1)
    try:
        scorer = make_scorer(
            gen, grader, spec.hints, seed=spec.seed, cache_dir=run / job.id / "rollouts", suffix=spec.data.prompt_suffix
        )
        done = select_dataset(problems, spec.hints, scorer, run / job.outputs["selections"])
    finally:
        grader.close()
        gen.close()
    return {"selected": done, "problems": len(problems)}


def run_train(spec, job, run: Path) -> dict:
    from knowrl.kp import render_prompt
    from knowrl.runtime._local_train import train_phase

    problems = train_problems(spec)
    selected = _selections(spec, run, problems)
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
        use_chat_template=spec.model.use_chat_template,
        server_url=e.server_url,
        tensor_parallel=e.tensor_parallel,
        seed=spec.seed,
    )
    selector = None
    if p["hint_mode"].startswith("select:"):
        from knowrl.grading import Grader
        from knowrl.kp import make_selector

        grader = Grader(require_think_close=spec.reward.require_think_close, workers=1)
        selector = make_selector(
            gen, grader, cache_dir=run / job.id / "rollouts", seed=spec.seed, sampling=request.sampling
        )
    try:
        result = run_eval(gen, request, run / job.id, selector=selector)
    finally:
        gen.close()
    return {"accuracy": result.scores[(p["benchmark"], p["hint_mode"])]["accuracy"]}


RUNNERS = {"kp_select": run_kp_select, "train": run_train, "eval": run_eval_job}


def execute(job_dict: dict, spec_json: dict, run_dir: str) -> dict:
    """Entry point of a job in a worker process: rebuild the spec and job, run, return a summary."""
    import time

    from knowrl.plan._plan import Job, Resources
    from knowrl.spec import validate

    started = time.time()
    spec = validate(spec_json)
    job = Job(**{**job_dict, "resources": Resources(**job_dict["resources"])})
    summary = RUNNERS[job.kind](spec, job, Path(run_dir))
    return {**summary, "work_interval": [started, time.time()]}
