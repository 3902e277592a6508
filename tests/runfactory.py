"""Build real run directories (manifest, job statuses, artifacts) the way the engine lays them out."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from conftest import EXPERIMENTS
from datafiles import KPS, write_jsonl

from knowrl._io import write_rows
from knowrl._rundir import run_path, write_manifest, write_status
from knowrl.eval import EvalRequest, builtin_suite, run_eval
from knowrl.generation import Completion
from knowrl.plan import plan
from knowrl.spec import load_spec


def quickstart_args(tmp: Path, model: str, *extra: str) -> list[str]:
    """`knowrl run` arguments for the quickstart on `model`, with its storage, registry and Aim repo under `tmp`."""
    return [
        str(EXPERIMENTS / "quickstart-tiny.yaml"),
        f"model.path={model}",
        f"resources.storage={tmp / 'store'}",
        f"registry.path={tmp / 'reg.duckdb'}",
        f"tracking.repo={tmp / 'aim'}",
        *extra,
    ]


class Echo:
    model_id = "echo"

    def __init__(self, golds: dict, p_correct: float, seed: int | str = 0):
        self.golds, self.p, self.rng = golds, p_correct, random.Random(seed)

    def generate(self, prompts, params, n, seeds):
        out = []
        for messages, row in zip(prompts, seeds, strict=True):
            gold = self.golds[messages[0]["content"].split("\n\n", 1)[0]]
            out.append(
                [
                    Completion(f"</think> \\boxed{{{gold if self.rng.random() < self.p else gold + 1}}}", 7, "stop", s)
                    for s in row
                ]
            )
        return out

    def close(self):
        pass


def knowrl8_data(folder: Path, per_benchmark: int = 6) -> dict:
    from knowrl.spec import KNOWRL8

    golds = {}
    for b in KNOWRL8:
        recs = []
        for i in range(per_benchmark):
            text = f"{b} question {i}"
            golds[text] = i
            recs.append(
                {
                    "dataset": b,
                    "prompt": [{"role": "user", "content": text}],
                    "reward_model": {"ground_truth": str(i)},
                    "kp_list": KPS,
                    "css_kept_kp_index": [0],
                }
            )
        write_jsonl(folder / f"{b}.jsonl", recs)
    return golds


def make_run(
    tmp: Path,
    *,
    name: str,
    p_correct: float | Callable[[str, str], float],
    storage: Path,
    seed: int = 0,
    modes=("none", "css"),
    steps: int = 20,
    checkpoints=("final",),
    seed_per_job: bool = False,
) -> Path:
    """A finished run: two training phases with metrics and eval jobs with real eval artifacts.

    `p_correct` may depend on the eval job's (checkpoint, hint mode). Every eval job draws its samples from
    one `seed` (so two jobs at one accuracy answer alike: a delta of exactly 0), or with `seed_per_job` from
    its own, so that equal accuracies differ by noise, as two real evals do."""
    data = tmp / "data"
    golds = knowrl8_data(data)
    spec_file = tmp / f"{name}.yaml"
    spec_file.write_text(
        f"name: {name}\nseed: {seed}\nmodel: {{path: m}}\ndata: {{train: [{{source: {data}}}]}}\n"
        f"algorithm: {{total_steps: {steps}, save_every: 5, prompts_per_step: 64, mini_batch_size: 64,\n"
        f"  clip_schedule: [{{step: {steps // 2}, high: 0.26}}]}}\n"
        f"eval: {{data: {data}, hint_modes: [{', '.join(modes)}], samples: {{AIME24: 4}},\n"
        f"  checkpoints: [{', '.join(map(str, checkpoints))}]}}\n"
        f"resources: {{storage: {storage}}}\n"
    )
    spec = load_spec(spec_file)
    p = plan(spec)
    run = run_path(storage, p.run_id)
    write_manifest(run, spec, p)
    rng = random.Random(seed)
    for job in p.jobs:
        if job.kind == "train":
            rows = [
                {
                    "step": s,
                    "name": "train/reward",
                    "value": rng.random(),
                    "context": json.dumps({"phase": job.params["phase"]}),
                }
                for s in range(job.params["start_step"], job.params["end_step"])
            ]
            write_rows(run / job.id / "metrics.parquet", rows)
        elif job.kind == "eval":
            suite = builtin_suite("knowrl8", str(data)).subset([job.params["benchmark"]])
            mode = job.params["hint_mode"]
            acc = p_correct(job.id.split("-")[1], mode) if callable(p_correct) else p_correct
            draws = f"{seed}/{job.id}" if seed_per_job else seed
            run_eval(Echo(golds, acc, draws), EvalRequest(suite, [mode], limit=None), run / job.id)
        write_status(
            run, job, "succeeded", attempts=1, started_at="2026-11-22T00:00:00", finished_at="2026-11-22T00:01:00"
        )
    return run
