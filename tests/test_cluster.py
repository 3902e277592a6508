"""The cluster path: a real local Ray head (own temp dir, stopped by its PID), the Jobs API, detach and re-attach."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, run_cli
from ray_node import RAY_NODE_PORTS


def test_the_ray_head_sets_every_port_ray_start_has():
    """Each single port `ray start` binds is one conftest's head chooses free (worker ports are a range Ray checks),
    so a Ray release with a new port shows here rather than as two heads fighting over its default."""
    import re
    import subprocess

    text = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "start", "--help"], capture_output=True, text=True, check=True
    ).stdout
    ports = set(re.findall(r"--([a-z-]+)-port(?![a-z-])", text)) - {"min-worker", "max-worker"}
    assert ports == {*RAY_NODE_PORTS, "dashboard"}


def test_submit_detach_reattach_and_ingest(ray_head, tmp_path, tiny_model):
    val = EXPERIMENTS / "data/quickstart/val.jsonl"
    overrides = [
        f"model.path={tiny_model}",
        "data.train=[]",
        f"eval.benchmarks.0.source={val}",
        "eval.checkpoints=[base]",
        "eval.limit=3",
        f"resources.storage={tmp_path / 'store'}",
        f"registry.path={tmp_path / 'reg.duckdb'}",
        "tracking.backend=none",
        "hints={strategy: none}",
    ]
    r = run_cli(
        "run", "experiments/quickstart-tiny.yaml", *overrides, "--address", ray_head, "--detach", "--allow-dirty"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("submitted eval-base-arith-") == 2 and "knowrl status" in r.stdout
    run = next((tmp_path / "store/runs").iterdir())
    statuses = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # re-attach: each `knowrl status` reconciles with Ray and ingests
        s = run_cli("status", run.name, "--storage", str(tmp_path / "store"))
        assert s.returncode == 0, s.stderr
        statuses = {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/status.json")}
        if all(st["status"] in ("succeeded", "failed") and not st.get("active") for st in statuses.values()):
            break
        time.sleep(2)
    assert {k: v["status"] for k, v in statuses.items()} == {
        "eval-base-arith-none": "succeeded",
        "eval-base-arith-all": "succeeded",
    }
    assert all(v["submission_id"] == f"knowrl-{run.name}-{k}-1" for k, v in statuses.items())
    q = run_cli(
        "query",
        "SELECT hint_mode, count(*) AS n FROM eval_samples GROUP BY 1 ORDER BY 1",
        "--registry",
        str(tmp_path / "reg.duckdb"),
        "--format",
        "json",
    )
    assert json.loads(q.stdout) == [{"hint_mode": "all", "n": 12}, {"hint_mode": "none", "n": 12}]


def test_a_plan_is_checked_against_the_cluster_before_anything_is_submitted(ray_head, tmp_path):
    store = tmp_path / "store"
    common = [f"resources.storage={store}", "tracking.backend=none", "--address", ray_head, "--allow-dirty"]
    r = run_cli("run", "experiments/css_main.yaml", *common)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "needs 8 node(s) with 8 H100-80GB GPUs each (64 GPUs for the nemo_rl backend)" in r.stderr
    assert "has 1 alive node(s): 8 GPUs" in r.stderr and "--no-preflight" in r.stderr
    assert not store.exists()  # no manifest, nothing submitted
    r = run_cli(
        "run",
        "experiments/quickstart-tiny.yaml",
        "resources.backend=verl",
        "resources.gpus_per_node=1",
        "resources.backend_dir=/nonexistent/verl",
        "eval.generator=transformers",
        *common,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cannot run this plan: " in r.stderr and "a verl checkout at /nonexistent/verl" in r.stderr, r.stderr
    assert "verl's DAPO recipe importable by python3" in r.stderr
    assert "the module vllm for python3 (kp_select jobs: pip install 'vllm')" in r.stderr  # hints on GPUs: vLLM
    assert r.stderr.count("the module") == 1  # everything else knowrl's jobs import is on these nodes
    assert not store.exists()


def test_on_a_cluster_failures_are_resubmitted_after_backoff_unless_the_input_is_bad(ray_head, tmp_path, tiny_model):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')  # fails inside the job

    def run(name, *extra):
        store = tmp_path / name
        args = [
            "data.train=[]",
            "eval.checkpoints=[base]",
            "eval.hint_modes=[none]",
            "hints={strategy: none}",
            f"resources.storage={store}",
            f"registry.path={tmp_path / name}.duckdb",
            "tracking.backend=none",
            "resources.retries.backoff_s=0.5",
            "resources.retries.eval=2",
            *extra,
        ]
        r = run_cli("run", "experiments/quickstart-tiny.yaml", *args, "--address", ray_head, "--allow-dirty")
        assert r.returncode == 1, r.stdout + r.stderr
        return r, json.loads(next(store.glob("runs/*/eval-base-arith-none/status.json")).read_text())

    r, st = run("bad", f"model.path={tiny_model}", f"eval.benchmarks.0.source={bad}")
    assert (st["status"], st["attempts"], st["retryable"]) == ("failed", 1, False)
    assert f"{bad}:2" in st["error"]

    r, st = run("flaky", f"model.path={broken}")
    assert (st["status"], st["attempts"], st["retryable"]) == ("failed", 2, True)
    assert st["submission_id"].endswith("-eval-base-arith-none-2")
    assert r.stdout.count("submitted eval-base-arith-none") == 2


STAND_IN = """
import ray
from ray.util.placement_group import placement_group
ray.init(address="auto")
pg = placement_group([{"GPU": 1}] * 8, strategy="STRICT_PACK")  # one node's bundles, as the backends reserve them
ray.get(pg.ready(), timeout=60)
print("placed", ray.util.placement_group_table(pg)["state"])
"""


@pytest.mark.parametrize("backend", ["verl", "nemo_rl"])
def test_a_training_submission_is_placed_and_its_placement_group_gets_the_gpus(ray_head, tmp_path, backend):
    """Finding 2: the driver asks for no GPUs, so the backend's own placement group can take all 8."""
    from knowrl.backends._submission import submission
    from knowrl.plan import plan
    from knowrl.runtime._cluster import ACTIVE, call, client
    from knowrl.spec import load_spec

    spec = load_spec(EXPERIMENTS / "css_main.yaml", [f"resources.backend={backend}", "resources.nodes=1"])
    p = plan(spec)
    request, _ = submission(p.job("train-p1"), spec, p, str(tmp_path), attempt=int(time.time()))
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    request["entrypoint"] = f"{sys.executable} {script}"  # the job's placement, not NeMo-RL or verl itself
    c = client(ray_head)
    call(lambda: c.submit_job(**request), "submitting the stand-in")
    deadline = time.monotonic() + 180
    while (status := str(c.get_job_status(request["submission_id"])).split(".")[-1]) in ACTIVE:
        assert time.monotonic() < deadline, c.get_job_logs(request["submission_id"])
        time.sleep(1)
    assert status == "SUCCEEDED", c.get_job_logs(request["submission_id"])
    assert "placed CREATED" in c.get_job_logs(request["submission_id"])


def _wait_until_settled(run: Path, storage: Path, timeout_s: float = 300) -> dict:
    """`knowrl status` (which reconciles with Ray) until no job is active; the final states."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = run_cli("status", run.name, "--storage", str(storage))
        assert s.returncode == 0, s.stderr
        states = {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/status.json")}
        if states and not any(st.get("active") for st in states.values()):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(1)


def test_a_run_submitted_from_another_directory_with_relative_paths_runs(ray_head, tmp_path, tiny_model):
    """Finding 2: storage, data and model given relative to the submitting directory reach the jobs absolute."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data/val.jsonl").write_text((EXPERIMENTS / "data/quickstart/val.jsonl").read_text())
    (work / "model").symlink_to(tiny_model)
    r = run_cli(
        "run",
        str(EXPERIMENTS / "quickstart-tiny.yaml"),
        "model.path=model",
        "data.train=[]",
        "eval.benchmarks.0.source=data/val.jsonl",
        "eval.checkpoints=[base]",
        "eval.hint_modes=[none]",
        "eval.limit=2",
        "hints={strategy: none}",
        "resources.storage=store",
        "registry.path=reg.duckdb",
        "tracking.backend=none",
        "--address",
        ray_head,
        "--allow-dirty",
        cwd=work,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((work / "store/runs").iterdir())
    spec = json.loads((run / "manifest.json").read_text())["spec"]
    assert spec["model"]["path"] == str(work / "model")
    assert spec["eval"]["benchmarks"][0]["source"] == str(work / "data/val.jsonl")
    assert spec["resources"]["storage"] == str(work / "store")
    assert json.loads((run / "eval-base-arith-none/status.json").read_text())["status"] == "succeeded"


def test_a_cancelled_cluster_run_stays_cancelled(ray_head, tmp_path, tiny_model):
    """Finding 4: `knowrl status` after `knowrl cancel` resubmits nothing, running or pending."""
    store = tmp_path / "store"
    big = tmp_path / "many.jsonl"
    big.write_text("".join(f'{{"problem": "What is {i} + {i}?", "answer": "{2 * i}"}}\n' for i in range(400)))
    args = [
        f"model.path={tiny_model}",
        "data.train=[]",
        f"eval.benchmarks.0.source={big}",
        "eval.checkpoints=[base]",
        "eval.hint_modes=[none, all]",
        "eval.samples={arith: 8}",
        "hints={strategy: none}",
        f"resources.storage={store}",
        f"registry.path={tmp_path / 'reg.duckdb'}",
        "tracking.backend=none",
        "resources.cpus_per_job=2",  # one eval at a time on the 2-CPU head: the other waits in Ray's queue
    ]
    r = run_cli("run", "experiments/quickstart-tiny.yaml", *args, "--address", ray_head, "--detach", "--allow-dirty")
    assert r.returncode == 0, r.stderr
    run = next((store / "runs").iterdir())
    deadline = time.monotonic() + 180
    while not list(run.glob("*/job.log")):  # a job is running on the cluster
        assert time.monotonic() < deadline
        time.sleep(0.5)
    c = run_cli("cancel", run.name, "--storage", str(store))
    assert c.returncode == 0, c.stderr
    assert "cancelled run" in c.stdout and "eval-base-arith-" in c.stdout
    for _ in range(2):  # each `knowrl status` reconciles and would resubmit what has attempts left
        states = _wait_until_settled(run, store)
    assert {k: v["status"] for k, v in states.items()} == {
        "eval-base-arith-none": "cancelled",
        "eval-base-arith-all": "cancelled",
    }
    assert all(v["attempts"] == 1 for v in states.values()), states
    from ray.job_submission import JobSubmissionClient

    ids = [j.submission_id for j in JobSubmissionClient(ray_head).list_jobs() if f"{run.name}-eval" in j.submission_id]
    assert sorted(ids) == [f"knowrl-{run.name}-eval-base-arith-all-1", f"knowrl-{run.name}-eval-base-arith-none-1"]
