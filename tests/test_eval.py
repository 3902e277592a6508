"""End-to-end evaluation: the echo generator on knowrl8's real shape, the tiny model, resume."""

from __future__ import annotations

import json
from math import comb

import pyarrow.parquet as pq
import pytest
from conftest import EXPERIMENTS
from datafiles import ANNOTATIONS, KPS, write_jsonl
from scripted import ScriptedGenerator

from knowrl import KnowrlError
from knowrl.eval import AVG, EvalRequest, builtin_suite, resolve_suite, run_eval
from knowrl.generation import Completion, SamplingParams
from knowrl.spec import KNOWRL8


class EchoGenerator:
    """Answers each problem's gold for the first c samples and a wrong number after; c grows with a hint."""

    model_id = "echo"

    def __init__(self, golds: dict[str, int], correct: dict[str, int]):
        self.golds, self.correct, self.calls = golds, correct, 0

    def generate(self, prompts, params, n, seeds):
        self.calls += 1
        out = []
        for messages, row_seeds in zip(prompts, seeds, strict=True):
            text = messages[0]["content"]
            problem = text.split("\n\n", 1)[0]
            c = min(n, self.correct[problem] + (1 if "## Hint" in text else 0))
            gold = self.golds[problem]
            out.append(
                [
                    Completion(f"<think>r</think> \\boxed{{{gold if j < c else gold + 1}}}", 5, "stop", s)
                    for j, s in enumerate(row_seeds)
                ]
            )
        return out

    def close(self):
        pass


def knowrl8_fixture(folder):
    golds, correct = {}, {}
    for b, (size, n) in KNOWRL8.items():
        records = []
        for i in range(size):
            text = f"{b} problem {i}: compute the value."
            golds[text], correct[text] = i, i % (n + 1)
            records.append(
                {
                    "dataset": b,
                    "prompt": [{"role": "user", "content": text}],
                    "reward_model": {"ground_truth": f"\\boxed{{{i}}}", "style": "rule"},
                    "kp_list": KPS[: 1 + i % 3],
                    "css_kept_kp_index": [0] if i % 2 else [],
                    "cbrs_kept_kp_index": [0],
                }
            )
        write_jsonl(folder / f"{b}.jsonl", records)
    return golds, correct


def test_echo_generator_on_knowrl8_gives_the_exact_table(tmp_path):
    golds, correct = knowrl8_fixture(tmp_path / "data")
    suite = builtin_suite("knowrl8", str(tmp_path / "data"))
    gen = EchoGenerator(golds, correct)
    result = run_eval(gen, EvalRequest(suite, ["none", "css", "all"]), tmp_path / "out")
    expected_avg = {}
    for mode in ["none", "css", "all"]:
        per = []
        for b, (size, n) in KNOWRL8.items():
            hinted = [mode == "all" or (mode == "css" and i % 2 == 1) for i in range(size)]
            acc = sum(min(n, i % (n + 1) + hinted[i]) for i in range(size)) / (size * n)
            assert result.scores[(b, mode)]["accuracy"] == pytest.approx(acc), (b, mode)
            assert result.scores[(b, mode)]["problems"] == size
            assert result.scores[(b, mode)]["samples"] == n
            per.append(acc)
        expected_avg[mode] = sum(per) / len(per)
        assert result.scores[(AVG, mode)]["accuracy"] == pytest.approx(expected_avg[mode])
    assert expected_avg["none"] < expected_avg["css"] < expected_avg["all"]
    # the suite mean is over benchmarks, not problems
    pooled = sum(sum(i % (n + 1) for i in range(s)) / n for s, n in KNOWRL8.values()) / sum(
        s for s, _ in KNOWRL8.values()
    )
    assert result.scores[(AVG, "none")]["accuracy"] != pytest.approx(pooled)


def test_every_benchmark_and_mode_is_evaluated_or_the_run_fails(tmp_path):
    golds, correct = knowrl8_fixture(tmp_path / "data")
    (tmp_path / "data" / "HMMT25.jsonl").unlink()
    with pytest.raises(KnowrlError, match="benchmark HMMT25: no problems"):
        run_eval(
            EchoGenerator(golds, correct),
            EvalRequest(builtin_suite("knowrl8", str(tmp_path / "data")), ["none"]),
            tmp_path / "out",
        )


def suite_yaml(tmp_path):
    data = write_jsonl(tmp_path / "aime.jsonl", ANNOTATIONS[:2])
    olymp = write_jsonl(tmp_path / "olymp.jsonl", ANNOTATIONS[2:])
    path = tmp_path / "suite.yaml"
    path.write_text(
        f"name: mini\nbenchmarks:\n  - {{name: AIME24, source: {data}, samples: 4}}\n"
        f"  - {{name: OlympiadBench, source: {olymp}, samples: 2}}\n"
    )
    return path


def test_tiny_model_end_to_end_metrics_match_independent_recomputation(tmp_path, tiny_model):
    from knowrl.generation import make_generator

    suite = resolve_suite(str(suite_yaml(tmp_path)))
    gen = make_generator("transformers", tiny_model, batch_size=4)
    request = EvalRequest(
        suite, ["none", "css", "cbrs", "all"], SamplingParams(1.0, 1.0, -1, 12), require_think_close=False
    )
    result = run_eval(gen, request, tmp_path / "out")
    scores = pq.read_table(tmp_path / "out/scores.parquet").to_pylist()
    table = {(r["benchmark"], r["hint_mode"], r["metric"]): r["value"] for r in scores}
    for bench, n in [("AIME24", 4), ("OlympiadBench", 2)]:
        for mode in ["none", "css", "cbrs", "all"]:
            rows = pq.read_table(tmp_path / f"out/samples/{bench}/{mode}.parquet").to_pylist()
            by = {}
            for r in rows:
                by.setdefault(r["problem_id"], []).append(r)
            assert all(len(v) == n for v in by.values()) and sorted(
                r["sample_index"] for r in by[rows[0]["problem_id"]]
            ) == list(range(n))
            counts = [sum(r["correct"] for r in v) for v in by.values()]
            assert table[(bench, mode, "accuracy")] == pytest.approx(sum(counts) / (n * len(by)))
            for k in {1, 2, n}:
                want = sum(1 - comb(n - c, k) / comb(n, k) for c in counts) / len(by)
                assert table[(bench, mode, f"pass@{k}")] == pytest.approx(want)
            assert table[(bench, mode, "mean_length")] == pytest.approx(
                sum(r["response_tokens"] for r in rows) / len(rows)
            )
            assert table[(bench, mode, "truncation_rate")] == pytest.approx(
                sum(r["finish_reason"] == "length" for r in rows) / len(rows)
            )
            assert all(r["response_tokens"] <= 12 for r in rows)
            kps = {pid: v[0]["kps"] for pid, v in by.items()}
            assert table[(bench, mode, "mean_kps")] == pytest.approx(sum(kps.values()) / len(kps))
            assert table[(bench, mode, "zero_correct")] == pytest.approx(sum(c == 0 for c in counts) / len(counts))
    # hint modes really change the prompt: the css rows carry the css selection sizes
    css = pq.read_table(tmp_path / "out/samples/AIME24/css.parquet").to_pylist()
    assert sorted({r["kps"] for r in css}) == [0, 2]
    assert result.scores[(AVG, "none")]["accuracy"] == pytest.approx(
        (result.scores[("AIME24", "none")]["accuracy"] + result.scores[("OlympiadBench", "none")]["accuracy"]) / 2
    )


def test_interrupted_eval_resumes_and_other_settings_are_refused(tmp_path):
    golds, correct = knowrl8_fixture(tmp_path / "data")
    suite = builtin_suite("knowrl8", str(tmp_path / "data")).subset(["AIME24", "AMC23"])
    request = EvalRequest(suite, ["none", "css"], limit=5)
    gen = EchoGenerator(golds, correct)
    first = run_eval(gen, request, tmp_path / "out")
    assert gen.calls == 4
    (tmp_path / "out/samples/AMC23/css.parquet").unlink()  # as if interrupted during the last shard
    again = run_eval(gen, request, tmp_path / "out")
    assert gen.calls == 5 and again.scores == first.scores
    changed = EvalRequest(suite, ["none"], limit=5, sampling=SamplingParams(temperature=0.6))
    with pytest.raises(KnowrlError, match="other settings .*sampling"):
        run_eval(gen, changed, tmp_path / "out")
    assert json.loads((tmp_path / "out/eval.json").read_text())["limit"] == 5


def test_select_modes_are_labelled_oracle_assisted(tmp_path):
    golds, correct = knowrl8_fixture(tmp_path / "data")
    suite = builtin_suite("knowrl8", str(tmp_path / "data")).subset(["AIME24"])
    picks = lambda problems, strategy, grader: {p.id: (0,) for p in problems}  # noqa: E731
    result = run_eval(
        EchoGenerator(golds, correct),
        EvalRequest(suite, ["none", "select:css"], limit=3),
        tmp_path / "out",
        selector=picks,
    )
    rows = pq.read_table(tmp_path / "out/scores.parquet").to_pylist()
    assert {r["oracle_assisted"] for r in rows if r["hint_mode"] == "select:css"} == {True}
    from knowrl.eval import table_rows

    _, table = table_rows(result)
    assert table[1][0] == "select:css (oracle-assisted)"


def test_test_time_selection_grades_with_the_specs_reward_timeout(tmp_path, monkeypatch):
    """`select:` rollouts are graded as the eval's samples are: with `reward.timeout_s`, not a default 5 s."""
    import knowrl.generation
    from knowrl.grading import _verify
    from knowrl.plan import plan
    from knowrl.runtime._jobs import run_eval_job
    from knowrl.spec import load_spec

    kps = ["Halving.", "Counting."]
    data = write_jsonl(
        tmp_path / "half.jsonl",
        [{"id": f"h{i}", "problem": f"Halve {i}.", "answer": "1/2", "kp_list": kps} for i in (1, 2)],
    )
    # "0.5" against "1/2" is no fast-path match: math-verify (in its pool) decides, with the pool's timeout
    gen = ScriptedGenerator(lambda problem, kps, j, seed: "0.5" if "Halving." in kps else "3", think=False)
    monkeypatch.setattr(knowrl.generation, "make_generator", lambda *a, **k: gen)
    timeouts = []
    check = _verify.VerifyPool.check
    monkeypatch.setattr(
        _verify.VerifyPool, "check", lambda pool, pairs: timeouts.append(pool.timeout_s) or check(pool, pairs)
    )
    spec = load_spec(
        EXPERIMENTS / "quickstart-tiny.yaml",
        [f"eval.benchmarks.0.source={data}", "eval.hint_modes=[select:css]", "eval.checkpoints=[base]",
         "reward.timeout_s=17", "data.train=[]", f"resources.storage={tmp_path}"],
    )  # fmt: skip
    job = next(j for j in plan(spec).jobs if j.kind == "eval")
    assert run_eval_job(spec, job, tmp_path / "run") == {"accuracy": 1.0}  # CSS kept "Halving.", which answers
    assert gen.calls > 1 and set(timeouts) == {17}  # the selection's rollouts and the samples, one timeout
