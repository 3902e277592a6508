"""`knowrl run`: the quickstart end to end, resume after a crash, the run lock, capacity errors, learning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, wait_until_session_ends
from runfactory import quickstart_args

from knowrl.spec import load_spec


def quickstart(tmp_path, tiny_model, *extra):
    args = quickstart_args(tmp_path, tiny_model, *extra)
    return load_spec(args[0], args[1:])


def statuses(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/status.json")}


def test_quickstart_end_to_end_then_nothing_to_do(tmp_path, tiny_model):
    from knowrl.plan import plan
    from knowrl.registry import reader
    from knowrl.runtime._engine import run_spec

    spec = quickstart(tmp_path, tiny_model)
    result = run_spec(spec)
    assert set(result.values()) == {"succeeded"}
    run = tmp_path / "store" / "runs" / plan(spec).run_id
    st = statuses(run)
    assert st["train-p2"]["summary"]["resumed_from"].endswith("checkpoint-6")  # phase 2 resumed from phase 1
    assert (run / "kp_select/selections.jsonl").exists() and (run / "checkpoints/step_8/config.json").exists()
    with reader(tmp_path / "reg.duckdb") as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("done",)]
        names = {n for (n,) in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
        assert {"train/reward", "train/correct_fraction", "train/zero_correct_groups", "train/loss"} <= names
        assert con.execute("SELECT count(DISTINCT checkpoint) FROM eval_samples").fetchone()[0] == 2
    first = {k: v["attempts"] for k, v in st.items()}
    again = run_spec(spec)
    assert set(again.values()) == {"succeeded"}
    assert {k: v["attempts"] for k, v in statuses(run).items()} == first  # nothing re-ran


def test_a_killed_run_resumes_without_redoing_finished_jobs(tmp_path, tiny_model):
    from knowrl.plan import plan

    spec = quickstart(tmp_path, tiny_model, "eval.enabled=false")
    run = tmp_path / "store" / "runs" / plan(spec).run_id
    code = (
        "import sys; from knowrl.spec import load_spec; from knowrl.runtime._engine import run_spec; "
        "run_spec(load_spec(sys.argv[1], sys.argv[2:]))"
    )
    args = quickstart_args(tmp_path, tiny_model, "eval.enabled=false")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while statuses(run).get("train-p2", {}).get("status") != "running":  # kill the driver while phase 2 trains
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before phase 2 started")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until_session_ends(proc.pid)  # Ray's workers may outlive the driver a moment: none writes after this
    before = statuses(run)
    assert before["train-p1"]["status"] == "succeeded" and before["train-p2"]["status"] == "running"

    # The kill can land while the Trainer writes a checkpoint, which it completes with trainer_state.json last:
    # the resume must take the newest one that has it, and never a torn one.
    def whole(c: Path) -> bool:
        try:
            return bool(json.loads((c / "trainer_state.json").read_text()))
        except (OSError, ValueError):
            return False

    saved = max(filter(whole, (run / "checkpoints/trl").glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[1]))
    from knowrl.runtime._engine import run_spec

    result = run_spec(spec)
    after = statuses(run)
    assert set(result.values()) == {"succeeded"}
    assert after["kp_select"]["attempts"] == before["kp_select"]["attempts"] == 1
    assert after["train-p1"]["attempts"] == 1 and after["train-p2"]["attempts"] == 2
    assert after["train-p2"]["summary"]["resumed_from"] == str(saved)  # its last whole checkpoint when it was killed


def test_two_runs_of_one_spec_do_not_both_run(tmp_path, tiny_model):
    import fcntl

    from knowrl.plan import plan
    from knowrl.runtime._engine import run_spec
    from knowrl.runtime._locks import RunLocked

    spec = quickstart(tmp_path, tiny_model)
    run = tmp_path / "store" / "runs" / plan(spec).run_id
    run.mkdir(parents=True)
    with (run / ".lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another `knowrl run` would
        with pytest.raises(RunLocked, match="already being run"):
            run_spec(spec)
    assert not (run / "manifest.json").exists()


def test_a_gpu_plan_on_this_machine_stops_at_once(tmp_path):
    r = run_cli("run", "experiments/css_main.yaml", f"resources.storage={tmp_path}", f"registry.path={tmp_path}/r.db")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "needs 64 H100-80GB GPUs for the nemo_rl backend and this Ray cluster has none" in r.stderr
    assert "knowrl plan" in r.stderr and "quickstart" in r.stderr
    assert not list(tmp_path.glob("runs/*"))  # nothing was left behind for a run that cannot start


def test_failed_jobs_retry_with_backoff_unless_the_input_is_bad(tmp_path, tiny_model):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')  # fails inside the job
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n')
    common = [
        "data.train=[]",
        "eval.checkpoints=[base]",
        "hints={strategy: none}",
        "tracking.backend=none",
        "resources.retries.backoff_s=0.2",
        "resources.retries.eval=2",
    ]

    def go(name, *extra):
        store = tmp_path / name
        r = run_cli("run", "experiments/quickstart-tiny.yaml", *common, f"resources.storage={store}",
                    f"registry.path={tmp_path / name}.duckdb", *extra)  # fmt: skip
        return r, statuses(next((store / "runs").iterdir()))

    r, st = go("flaky", f"model.path={broken}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "retrying eval-base-arith-none in 0.2 s (attempt 2 of 2)" in r.stdout
    assert {k: (v["status"], v["attempts"]) for k, v in st.items()} == {
        "eval-base-arith-none": ("failed", 2),
        "eval-base-arith-all": ("failed", 2),
    }
    assert "nothing to compare" not in r.stderr and "run `knowrl" in r.stdout

    r, st = go("bad-input", f"model.path={tiny_model}", f"eval.benchmarks.0.source={bad}")
    assert r.returncode == 1
    assert "not retrying eval-base-arith-none: fix the input" in r.stdout and "retrying eval" not in r.stdout.replace(
        "not retrying eval", ""
    )
    assert st["eval-base-arith-none"]["attempts"] == 1
    assert f"{bad}:2" in st["eval-base-arith-none"]["error"]


def test_a_model_path_that_is_not_a_model_stops_before_ray_starts(tmp_path):
    r = run_cli("run", "experiments/quickstart-tiny.yaml", f"model.path={tmp_path}", f"resources.storage={tmp_path}/s")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"cannot load model '{tmp_path}': the folder has no config.json" in r.stderr
    assert "knowrl model tiny" in r.stderr
    assert not list((tmp_path / "s").glob("runs/*"))


def test_dry_run_writes_compiled_inputs_only(tmp_path):
    r = run_cli("run", "experiments/css_main.yaml", "--dry-run", f"resources.storage={tmp_path}")
    assert r.returncode == 0, r.stderr
    (compiled,) = (tmp_path / "compiled").glob("css-main-*-nemo_rl")  # what `knowrl compile` writes
    assert (compiled / "launch.sh").exists() and (compiled / "train-p1.nemo_rl.yaml").exists()
    assert (compiled / "submit.json").exists()
    assert not (tmp_path / "runs").exists()  # no run is created: nothing was submitted


def test_local_backend_says_what_it_cannot_do(tmp_path, tiny_model):
    from knowrl.plan import PlanError, plan

    with pytest.raises(PlanError, match="dynamic_sampling"):
        plan(quickstart(tmp_path, tiny_model, "algorithm.dynamic_sampling.enabled=true"))


def test_local_grpo_learns_a_rewarded_answer(tmp_path, tiny_model):
    """A toy where one digit is rewarded: two dozen GRPO steps must raise its probability clearly.

    The random model picks that digit with p ~ 0.002, so a step sees it only in
    a big batch (256 samples); a modest learning rate keeps Adam from
    overshooting once it has (at 0.02 with 64 samples, one step threw p to 1e-5).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from knowrl.plan._plan import Job, Resources
    from knowrl.runtime._local_train import train_phase
    from knowrl.spec import validate

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = "Pick a digit."
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)

    def p_digits(path):
        m = AutoModelForCausalLM.from_pretrained(path)
        with torch.no_grad():
            probs = m(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1].softmax(-1)
        return {d: float(probs[tok.convert_tokens_to_ids(d)]) for d in "0123456789"}

    before = p_digits(tiny_model)
    digit = max(before, key=before.get)
    spec = validate(
        {
            "name": "learn",
            "seed": 0,
            "model": {"path": tiny_model, "dtype": "float32"},
            "reward": {"require_think_close": False},
            "algorithm": {
                "name": "grpo",
                "learning_rate": 0.005,
                "prompts_per_step": 16,
                "samples_per_prompt": 16,
                "mini_batch_size": 16,
                "max_prompt_length": 64,
                "max_response_length": 1,
                "total_steps": 24,
                "save_every": 24,
            },
            "resources": {"backend": "local", "nodes": 1, "gpus_per_node": 0, "gpu_type": "none"},
            "eval": {"enabled": False},
        }
    )
    job = Job(
        "train-p1",
        "train",
        Resources(1, 0, 1),
        params={"phase": 1, "start_step": 0, "end_step": 24, "clip_low": 0.2, "clip_high": 0.28, "clip_c": None},
    )
    out = train_phase(spec, job, tmp_path / "run", [prompt] * 16, [digit] * 16)
    after = p_digits(out["checkpoint"])
    assert after[digit] > max(0.5, 5 * before[digit]), (digit, before[digit], after[digit])


def test_local_training_in_epochs_trains_exactly_those_epochs_and_keeps_the_newest_checkpoints(tmp_path, tiny_model):
    """total_epochs becomes the phase's last step at plan time; TRL then ends on that epoch, not its own 3. Of the
    checkpoints, `algorithm.keep_checkpoints` stay, as on the cluster backends (a quickstart's are 1.6 GB each)."""
    from knowrl.plan import plan
    from knowrl.runtime._jobs import train_problems
    from knowrl.runtime._local_train import train_phase

    spec = quickstart(
        tmp_path,
        tiny_model,
        "algorithm.total_steps=null",
        "algorithm.total_epochs=1",
        "algorithm.clip_schedule=[]",
        "algorithm.mini_batch_size=2",
        "algorithm.max_response_length=4",
        "algorithm.save_every=1",
        "algorithm.keep_checkpoints=2",
        "data.train.0.limit=9",
        "hints={strategy: none}",
        "eval.enabled=false",
    )
    job = plan(spec).job("train-p1")
    assert job.params["end_step"] == 4  # 9 // 4 = 2 generations of 4 prompts, 4 // 2 = 2 steps each
    problems = train_problems(spec)
    train_phase(spec, job, tmp_path / "run", [p.problem for p in problems], [p.answer for p in problems])
    kept = sorted(c.name for c in (tmp_path / "run/checkpoints/trl").glob("checkpoint-*"))
    assert kept == ["checkpoint-3", "checkpoint-4"]
    state = json.loads((tmp_path / "run/checkpoints/trl/checkpoint-4/trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"]) == (4, 1.0)


def test_kp_select_is_data_parallel_and_split_independent(tmp_path, tiny_model):
    import dataclasses

    import ray

    from knowrl.plan import plan
    from knowrl.runtime._jobs import run_kp_select

    spec = quickstart(tmp_path, tiny_model, "data.train.0.limit=6")
    job = plan(spec).job("kp_select")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        two = run_kp_select(spec, dataclasses.replace(job, params={**job.params, "workers": 2}), tmp_path / "a")
    finally:
        ray.shutdown()
    one = run_kp_select(spec, job, tmp_path / "b")
    assert (two["workers"], one["workers"], two["problems"]) == (2, 1, 6)
    a = [json.loads(x) for x in (tmp_path / "a/kp_select/selections.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b/kp_select/selections.jsonl").read_text().splitlines()]
    assert [r["id"] for r in a] == [r["id"] for r in b]  # merged back in data order
    assert [r["css_kept_kp_index"] for r in a] == [r["css_kept_kp_index"] for r in b]


def test_logs_and_cancel(tmp_path, tiny_model):
    from knowrl.plan import plan

    spec = quickstart(tmp_path, tiny_model, "eval.enabled=false")
    run = tmp_path / "store" / "runs" / plan(spec).run_id
    args = quickstart_args(tmp_path, tiny_model, "tracking.backend=none", "eval.enabled=false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "knowrl.cli", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (run / "kp_select/job.log").exists():  # the job has started
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    c = run_cli("cancel", run.name, "--storage", str(tmp_path / "store"))
    assert c.returncode == 0, c.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert statuses(run)["kp_select"]["status"] == "cancelled"
    logs = run_cli("logs", run.name, "kp_select", "--storage", str(tmp_path / "store"))
    assert logs.returncode == 0 and "[knowrl] kp_select (kp_select) started" in logs.stdout
    idle = run_cli("cancel", run.name, "--storage", str(tmp_path / "store"))
    assert idle.returncode != 0 and "not running" in idle.stderr
