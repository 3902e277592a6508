"""What knowrl sends a cluster, checked without one: every job kind has a retry budget, commands a node can run,
paths that survive the change of working directory, one command per job for `submit.json` and `launch.sh`,
and the smoke profile."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, ROOT, run_cli

from knowrl.plan import plan
from knowrl.spec import load_spec

CSS = EXPERIMENTS / "css_main.yaml"


@pytest.mark.parametrize("backend", ["nemo_rl", "verl"])
def test_every_job_of_a_backend_plan_has_a_retry_budget(backend):
    """Finding 1: the follow loops ask the policy for every job's kind; `data` and `export` had none."""
    spec = load_spec(CSS, [f"resources.backend={backend}"])
    kinds = {j.kind for j in plan(spec).jobs}
    assert {"data", "train", "export", "eval"} <= kinds
    assert {k: spec.resources.retries.attempts(k) for k in kinds} == {
        "data": 2,
        "train": 2,
        "export": 2,
        "eval": 3,
    }


@pytest.mark.parametrize("backend", ["nemo_rl", "verl", "local"])
def test_knowrl_jobs_run_with_the_nodes_python_and_knowrl_from_py_modules(backend, tmp_path):
    """Finding 3: no job names the submitting machine's interpreter; knowrl's code travels with each job."""
    from knowrl.backends._submission import submission

    extra = ["hints={strategy: css, source: compute}"] if backend != "local" else []
    spec = load_spec(
        CSS if backend != "local" else EXPERIMENTS / "quickstart-tiny.yaml", [f"resources.backend={backend}", *extra]
    )
    p = plan(spec)
    for job in p.jobs:
        request, _ = submission(job, spec, p, str(tmp_path))
        assert sys.executable not in request["entrypoint"], request["entrypoint"]
        assert str(Path(__file__).parents[1] / "knowrl") in request["runtime_env"]["py_modules"]
        if job.kind in ("kp_select", "data", "eval") or backend == "local":
            assert request["entrypoint"] == f"python3 -m knowrl.runtime.job_main {tmp_path} {job.id}"


@pytest.mark.parametrize("backend", ["nemo_rl", "verl"])
def test_every_job_grades_with_the_runs_grading_site_which_the_submitter_builds(backend, tmp_path, monkeypatch):
    """A node's Hydra pins antlr 4.9: every job (knowrl's own included) gets the run's grading site, and the
    submitting machine, which has knowrl's 4.13.2, builds it before anything is submitted."""
    from knowrl.backends._submission import submission
    from knowrl.grading._site import SITE_ENV, site_ready
    from knowrl.runtime import _cluster

    spec = load_spec(CSS, [f"resources.backend={backend}", f"resources.storage={tmp_path}"])
    p = plan(spec)
    run = tmp_path / "runs" / p.run_id
    for job in p.jobs:
        if job.kind in ("data", "eval", "train"):
            request, _ = submission(job, spec, p, str(run))
            assert request["runtime_env"]["env_vars"][SITE_ENV] == f"{run}/data/grading-site", job.id
    monkeypatch.setattr(_cluster, "follow", lambda run, address, **kw: {})
    _cluster.submit_run(spec, "http://head:8265", preflight=False)
    assert site_ready(run / "data/grading-site")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing outside: antlr's bin/pygrun stays out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [p.run_id]


class _FakeJobsAPI:
    """Ray's JobSubmissionClient as far as the preflight uses it: the job succeeds and its log is empty."""

    def __init__(self) -> None:
        self.submitted: list[dict] = []

    def submit_job(self, **kwargs):
        self.submitted.append(kwargs)

    def get_job_status(self, sid):
        return "SUCCEEDED"

    def get_job_logs(self, sid):
        return "cluster: Python 3.13.0 Ray 2.55.1\n"


def test_the_preflight_asks_of_the_cluster_what_the_jobs_need(monkeypatch):
    """Finding 3: probed with the jobs' own runtime env and `python3`, for knowrl's code and its dependencies."""
    from knowrl.runtime import _cluster

    spec = load_spec(CSS, ["resources.backend=verl", "resources.nodes=1"])
    monkeypatch.setattr(_cluster, "_check_gpus", lambda address, p: None)  # the node count is another test's
    api, said = _FakeJobsAPI(), []
    _cluster.check_cluster(api, "http://head:8265", plan(spec), spec, said.append)
    (probe,) = api.submitted
    assert probe["runtime_env"]["py_modules"] == [str(ROOT / "knowrl")]
    script = shlex.split(probe["entrypoint"])[2]
    assert "python3 -c 'import knowrl.runtime.job_main'" in script and sys.executable not in script
    for module in ("pebble", "math_verify", "pyarrow", "vllm"):  # eval on vLLM; the data job grades nothing
        assert f"import {module}'" in script
    assert "preflight: cluster: Python 3.13.0 Ray 2.55.1" in said


def test_cluster_paths_are_absolute_from_where_the_run_was_submitted(tmp_path, monkeypatch):
    """Finding 2: a Ray job starts in Ray's own working directory; relative paths must not reach it."""
    from knowrl.runtime._cluster import for_cluster

    (tmp_path / "data").mkdir()
    (tmp_path / "data/train.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)
    spec = load_spec(
        CSS, ["data.train.0.source=data/train.jsonl", "data.train.0.format=auto", "resources.storage=store"]
    )
    out = for_cluster(spec)
    assert out.data.train[0].source == str(tmp_path / "data/train.jsonl")
    assert out.resources.storage == str(tmp_path / "store")
    assert out.model.path == "nvidia/OpenMath-Nemotron-1.5B"  # a Hub id stays one
    assert out.data.validation[0].source == spec.data.validation[0].source  # hf:// too


def test_launch_sh_runs_the_same_commands_as_the_submissions(tmp_path):
    """Finding 14: one place builds a job's command; launch.sh had its own, which lost spec settings."""
    out = tmp_path / "compiled"
    r = run_cli(
        "compile",
        str(CSS),
        "resources.backend=verl",
        "eval.suite=null",
        "eval.benchmarks=[{name: tiny, source: /data/tiny.jsonl}]",
        "eval.limit=5",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    script = (out / "launch.sh").read_text()
    requests = json.loads((out / "submit.json").read_text())
    for request in requests:
        assert request["entrypoint"] in script or shlex.quote(request["entrypoint"]) in script, request["job"]
    assert "--suite inline" not in script and "knowrl eval" not in script
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["eval"]["limit"] == 5  # what the eval job reads


def test_a_compiled_launch_sh_runs(tmp_path, tiny_model):
    """The hand-run path: launch.sh of a local eval-only plan runs each job with knowrl's runner."""
    out = tmp_path / "compiled"
    val = EXPERIMENTS / "data/quickstart/val.jsonl"
    r = run_cli(
        "compile",
        str(EXPERIMENTS / "quickstart-tiny.yaml"),
        f"model.path={tiny_model}",
        "data.train=[]",
        f"eval.benchmarks.0.source={val}",
        "eval.checkpoints=[base]",
        "eval.hint_modes=[none]",
        "eval.limit=2",
        "hints={strategy: none}",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    # knowrl's code on launch.sh's PYTHONPATH is a copy of the package alone, never the folder an install put it in
    # (from a wheel, that was site-packages: every package of the submitting Python, in the backend's)
    (line,) = [x for x in (out / "launch.sh").read_text().splitlines() if x.startswith("export PYTHONPATH=")]
    assert line.split("=", 1)[1].split("$", 1)[0] == str(out / "py_modules")
    assert [p.name for p in (out / "py_modules").iterdir()] == ["knowrl"]
    assert (out / "py_modules/knowrl/runtime/job_main.py").exists()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(out / "launch.sh")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    import pyarrow.parquet as pq

    assert json.loads((out / "eval-base-arith-none/status.json").read_text())["status"] == "succeeded"
    (table,) = (out / "eval-base-arith-none/samples").rglob("*.parquet")
    samples = pq.read_table(table).to_pylist()
    assert len({s["problem_id"] for s in samples}) == 2 and len(samples) == 2 * 4  # eval.limit, 4 samples


def test_the_smoke_profile_shrinks_sizes_and_keeps_what_decides_whether_a_run_works():
    from knowrl.plan._smoke import load_smoke

    full = load_spec(CSS)
    smoke, profile = load_smoke(CSS, ["resources.backend=verl", "eval.limit=3"])
    assert "eval.limit=3" not in profile and smoke.eval.limit == 3  # the user's override wins
    assert [(s, e, b.high) for s, e, b in smoke.algorithm.phases()] == [(0, 2, 0.28), (2, 3, 0.26)]
    assert (smoke.resources.backend, smoke.resources.backend_version, smoke.resources.nodes) == ("verl", "0.4", 1)
    assert smoke.model == full.model and smoke.hints == full.hints and smoke.reward == full.reward
    assert [s.source for s in smoke.data.train] == [s.source for s in full.data.train]
    assert smoke.eval.hint_modes == full.eval.hint_modes and smoke.eval.checkpoints == full.eval.checkpoints
    assert smoke.algorithm.prompts_per_step == 8 and smoke.algorithm.max_response_length == 1024
    assert smoke.name == "css-main-smoke" and "smoke" in smoke.tags
    assert plan(smoke).run_id != plan(load_spec(CSS, ["resources.backend=verl", "eval.limit=3"])).run_id


def test_knowrl_plan_smoke_shows_the_profile():
    r = run_cli("plan", str(CSS), "--smoke", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "algorithm.total_steps=3" in out["smoke_overrides"]
    assert [j["params"]["end_step"] for j in out["jobs"] if j["kind"] == "train"] == [2, 3]


def test_a_sharded_selection_leaves_every_gpu_to_its_shards():
    """Ray keeps a task's GPU while it waits in `ray.get`: the driver of W shards held one, so W-1 ran."""
    from knowrl.backends._submission import driver_gpus

    spec = load_spec(CSS, ["hints={strategy: css, source: compute}", "resources.nodes=1", "resources.gpus_per_node=4"])
    jobs = {j.kind: j for j in plan(spec).jobs}
    assert jobs["kp_select"].params["workers"] == 4 and driver_gpus(jobs["kp_select"], spec) == 0
    assert driver_gpus(jobs["eval"], spec) == 1 and driver_gpus(jobs["train"], spec) == 0
    single = load_spec(
        CSS, ["hints={strategy: css, source: compute}", "resources.nodes=1", "resources.gpus_per_node=1"]
    )
    (select,) = [j for j in plan(single).jobs if j.kind == "kp_select"]
    assert driver_gpus(select, single) == 1  # one replica runs in the job's own process


class _ScriptedJobsAPI(_FakeJobsAPI):
    """The Jobs API with the status the test sets."""

    status = "PENDING"

    def get_job_status(self, sid):
        return self.status


def test_a_backend_job_reads_running_while_it_runs_and_a_retry_keeps_no_earlier_finish(tmp_path):
    """A training job writes no status of its own: it read "pending" while it trained, and a retried one kept the
    failed attempt's finish, which the registry's `jobs` table recorded (the rehearsal printed "-1 s")."""
    from knowrl._rundir import job_status, write_manifest, write_status
    from knowrl.runtime._cluster import _reconcile, _submit

    spec = load_spec(CSS, ["resources.backend=verl", f"resources.storage={tmp_path}"])
    p = plan(spec)
    run = tmp_path / "runs" / p.run_id
    write_manifest(run, spec, p)
    job = next(j for j in p.jobs if j.kind == "train")
    api, policy = _ScriptedJobsAPI(), spec.resources.retries
    _submit(api, run, spec, p, job, 1, print)
    assert job_status(run, job.id)["status"] == "pending"
    api.status = "RUNNING"
    _reconcile(api, run, [job], policy, print, "verl")
    first = job_status(run, job.id)
    assert first["status"] == "running" and first["started_at"] and first["active"]
    api.status = "FAILED"
    _reconcile(api, run, [job], policy, print, "verl")
    write_status(run, job, "failed", finished_at="2026-01-01T00:00:00+00:00")  # the first attempt, long ago
    _submit(api, run, spec, p, job, 2, print)
    retried = job_status(run, job.id)
    assert retried["status"] == "pending" and retried["started_at"] is None and retried["finished_at"] is None
    api.status = "SUCCEEDED"
    _reconcile(api, run, [job], policy, print, "verl")
    done = job_status(run, job.id)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["finished_at"] >= done["submitted_at"] > "2026-01-01T00:00:00+00:00"


def _cancelled_run(tmp_path):
    from knowrl._rundir import write_manifest
    from knowrl.runtime._retry import mark_cancelled

    spec = load_spec(EXPERIMENTS / "quickstart-tiny.yaml", [f"resources.storage={tmp_path}"])
    p = plan(spec)
    run = tmp_path / "runs" / p.run_id
    write_manifest(run, spec, p)
    job = next(j for j in p.jobs if j.kind == "eval")
    mark_cancelled(run, job)  # what cancel_run wrote
    return run, job


def test_a_job_starting_as_its_run_is_cancelled_stays_cancelled(tmp_path, monkeypatch):
    """`knowrl cancel` wrote "cancelled" while Ray was starting the job: the job's own "running" came after it and
    nothing corrected it (the run read "running" but not active, forever). The job sees the mark and stops."""
    from knowrl._rundir import job_status
    from knowrl.runtime import _jobs, job_main
    from knowrl.runtime._retry import CANCELLED

    run, job = _cancelled_run(tmp_path)
    (run / CANCELLED).write_text("{}")
    ran = []
    monkeypatch.setattr(_jobs, "execute", lambda *a: ran.append(a))
    assert job_main.main([str(run), job.id]) == 1 and not ran
    assert job_status(run, job.id)["status"] == "cancelled"


def test_a_job_stopped_by_a_cancel_is_cancelled_not_failed(tmp_path, monkeypatch):
    """Ray's stop interrupts the job mid-work; what it raises on the way out is the cancel, not a retryable failure."""
    from knowrl._rundir import job_status
    from knowrl.runtime import _jobs, job_main
    from knowrl.runtime._retry import CANCELLED

    run, job = _cancelled_run(tmp_path)

    def stopped(*args):
        (run / CANCELLED).write_text("{}")
        raise RuntimeError("interrupted by SIGTERM")

    monkeypatch.setattr(_jobs, "execute", stopped)
    assert job_main.main([str(run), job.id]) == 1
    st = job_status(run, job.id)
    assert st["status"] == "cancelled" and st["active"] is False


def test_a_compiled_folder_has_the_grading_site_its_jobs_name_even_before_the_data_job(tmp_path):
    """With hints computed, kp_select grades before the data job renders anything: `knowrl compile` builds the
    site itself (the data job used to be the only one that did)."""
    from knowrl.grading._site import site_ready

    out = tmp_path / "compiled"
    r = run_cli(
        "compile", str(CSS), "resources.backend=verl", "hints={strategy: css, source: compute}", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert "kp_select" in {j["kind"] for j in json.loads((out / "submit.json").read_text())}
    assert site_ready(out / "data/grading-site")
