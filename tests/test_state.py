"""Trustworthy state: kills and resumes in every phase, honest run identity, damaged files, cancel, tracking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, MINIMAL, ROOT, run_cli, wait_until_session_ends
from runfactory import make_run, quickstart_args

from knowrl.spec import load_spec

RUN = "import sys; from knowrl.cli import main; sys.exit(main())"


def args_for(tmp_path: Path, tiny_model: str, *extra: str) -> list[str]:
    return quickstart_args(tmp_path, tiny_model, "eval.enabled=false", *extra)


def statuses(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/status.json")}


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "knowrl.cli", "run", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL the driver and everything it started once `ready()` holds (it fails if the driver exits first)."""
    while not ready():
        if proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{what} never happened (exit {proc.returncode})")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until_session_ends(proc.pid)  # Ray's workers may outlive the driver a moment: none writes after this


def latest(folder: Path) -> Path:
    return max(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def test_a_run_killed_in_each_phase_resumes_each_from_its_checkpoint_and_is_one_aim_run(tmp_path, tiny_model):
    from aim import Repo

    from knowrl.plan import plan
    from knowrl.registry import reader

    args = args_for(tmp_path, tiny_model)
    spec = load_spec(args[0], args[1:])
    run = tmp_path / "store" / "runs" / plan(spec).run_id
    trl = run / "checkpoints" / "trl"
    log = run / "train-p1" / "metrics.jsonl"

    # 1. killed in phase 1, after its first checkpoint and some logged steps
    kill_when(start(args), lambda: any(trl.glob("checkpoint-*/trainer_state.json")) and log.exists(), "a p1 ckpt")
    saved_p1 = latest(trl)
    assert statuses(run)["train-p1"]["status"] == "running"
    kept = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert kept and {r["name"] for r in kept} >= {"train/loss"}  # the killed phase's metrics are on disk

    st = run_cli("status", run.name, "--storage", str(tmp_path / "store"))
    lines = {line.split()[0]: line.split()[1] for line in st.stdout.splitlines()[1:]}
    assert lines == {"kp_select": "succeeded", "train-p1": "interrupted", "train-p2": "pending"}, st.stdout

    # 2. resumed, then killed in phase 2
    proc = start(args)
    kill_when(proc, lambda: statuses(run).get("train-p2", {}).get("status") == "running", "phase 2")
    p1 = statuses(run)["train-p1"]
    assert p1["status"] == "succeeded" and p1["summary"]["resumed_from"] == str(saved_p1)

    # 3. resumed to the end
    done = subprocess.run([sys.executable, "-m", "knowrl.cli", "run", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train-p2 was interrupted" in done.stdout
    final = statuses(run)
    assert "FutureWarning" not in (run / "train-p1" / "job.log").read_text()  # libraries' deprecations left out
    assert final["kp_select"]["attempts"] == 1 and final["train-p2"]["summary"]["resumed_from"]
    with reader(tmp_path / "reg.duckdb") as con:
        steps = con.execute(
            "SELECT job_id, list(step ORDER BY step) FROM metrics WHERE name = 'train/loss' GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert steps == [("train-p1", [1, 2, 3, 4, 5, 6]), ("train-p2", [7, 8])]  # every step of its phase, once

    repo = Repo.from_path(str(tmp_path / "aim"))
    mine = [r for r in repo.iter_runs() if r.get("knowrl_run_id") == run.name]
    assert len(mine) == 1, [r.hash for r in mine]  # one knowrl run is one Aim run
    aim_run = mine[0]
    assert aim_run.name == f"quickstart-tiny ({run.name})" and set(spec.tags) <= set(aim_run.tags)
    assert not aim_run.active  # closed, though two of its drivers were killed
    losses = {
        m.context.to_dict()["phase"]: m.dataframe()["step"].tolist()
        for m in aim_run.metrics()
        if m.name == "train/loss"
    }
    assert losses == {1: [1, 2, 3, 4, 5, 6], 2: [7, 8]}  # all steps, in the one Aim run

    # 4. the finished run goes into whichever registry the spec names
    other = tmp_path / "other.duckdb"
    again = run_cli("run", *args, f"registry.path={other}")
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr
    with reader(other) as con:
        assert con.execute("SELECT run_id, status FROM runs").fetchall() == [(run.name, "done")]
    follow = subprocess.run(
        [sys.executable, "-m", "knowrl.cli", "logs", run.name, "train-p2", "-f", "--storage", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert follow.returncode == 0 and "train-p2 finished" in follow.stdout  # -f on a finished job returns

    # 5. damaged state: named, the job re-runs, the manifest is rewritten, nothing else is lost
    (run / "train-p2" / "status.json").write_text('{"status": "succ')
    (run / "manifest.json").write_text("")
    st = run_cli("status", "--storage", str(tmp_path / "store"))
    assert st.returncode == 0 and "internal error" not in st.stderr
    assert "manifest.json is damaged" in st.stdout and "unknown" in st.stdout, st.stdout
    redo = run_cli("run", *args)
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert "manifest.json" in redo.stdout and any(run.glob("manifest.damaged-*.json"))
    after = statuses(run)
    assert after["train-p2"]["status"] == "succeeded" and after["train-p1"]["attempts"] == 2
    assert json.loads((run / "manifest.json").read_text())["run_id"] == run.name


def test_cancel_stops_a_run_that_ignores_sigint(tmp_path, tiny_model):
    """`knowrl run ... &` from a script starts with SIGINT ignored: cancel still stops it, and says so after."""
    from knowrl.plan import plan

    args = args_for(tmp_path, tiny_model, "tracking.backend=none")
    run = tmp_path / "store" / "runs" / plan(load_spec(args[0], args[1:])).run_id
    cmd = " ".join([sys.executable, "-m", "knowrl.cli", "run", *map(str, args)])
    script = subprocess.Popen(["sh", "-c", f"{cmd} > {tmp_path / 'out.txt'} 2>&1 & wait $!"], cwd=ROOT)
    while not (run / "kp_select" / "job.log").exists():
        assert script.poll() is None, (tmp_path / "out.txt").read_text()
        time.sleep(0.05)
    c = run_cli("cancel", run.name, "--storage", str(tmp_path / "store"), "--grace", "20")
    assert c.returncode == 0, c.stderr
    assert "stopped the `knowrl run`" in c.stdout and "cancelled: kp_select" in c.stdout, c.stdout
    assert script.wait(timeout=30) != 0  # the run had stopped when cancel returned
    assert statuses(run)["kp_select"]["status"] == "cancelled"
    idle = run_cli("cancel", run.name, "--storage", str(tmp_path / "store"))
    assert idle.returncode != 0 and "not running" in idle.stderr


def test_the_run_id_follows_the_data_and_the_model(tmp_path, tiny_model, write):
    import shutil

    from knowrl._rundir import run_path, write_manifest
    from knowrl.plan import plan

    data = write(
        "train.jsonl", "".join(json.dumps({"problem": f"{i}+1?", "answer": str(i + 1)}) + "\n" for i in range(3))
    )
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    spec_file = write("s.yaml", MINIMAL.replace("some/model", str(model)) + f"data: {{train: [{{source: {data}}}]}}\n")
    storage = f"resources.storage={tmp_path / 'store'}"
    spec = load_spec(spec_file, [storage])
    first = plan(spec)
    assert first.inputs["data.train.0"]["sha256"] and first.inputs["model.path"]["files"] >= 3
    assert plan(load_spec(spec_file, [storage])).run_id == first.run_id  # unchanged inputs: the same run
    write_manifest(run_path(tmp_path / "store", first.run_id), spec, first)

    with data.open("a") as f:
        f.write(json.dumps({"problem": "9+1?", "answer": "10"}) + "\n")
    grown = plan(load_spec(spec_file, [storage]))
    assert grown.run_id != first.run_id and grown.spec_hash == first.spec_hash
    refused = run_cli("run", str(spec_file), storage, "--same-inputs")
    assert refused.returncode != 0 and "changed since its run" in refused.stderr and "data.train.0" in refused.stderr
    noted = run_cli("run", str(spec_file), storage, "--dry-run")
    assert f"inputs changed since run {first.run_id}" in noted.stdout, noted.stdout

    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert plan(load_spec(spec_file, [storage])).run_id not in (first.run_id, grown.run_id)
    shown = json.loads((run_path(tmp_path / "store", first.run_id) / "manifest.json").read_text())["inputs"]
    assert shown == first.inputs
    told = run_cli("show", str(spec_file), storage, "--inputs")
    assert told.returncode == 0 and "data.train.0" in told.stdout and "sha256" in told.stdout


def test_a_hub_revision_comes_from_the_local_cache(tmp_path, write):
    cache = tmp_path / "hub"
    ref = cache / "models--org--m" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("0123456789abcdef")
    spec = write("s.yaml", "name: t\nmodel: {path: org/m}\neval: {checkpoints: [base]}\n")
    r = run_cli("plan", str(spec), "--json", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inputs"]["model.path"] == {"source": "org/m", "revision": "0123456789abcdef"}
    ref.write_text("fedcba9876543210")
    r2 = run_cli("plan", str(spec), "--json", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert json.loads(r2.stdout)["run_id"] != json.loads(r.stdout)["run_id"]


def test_an_unreachable_hub_model_stops_a_local_run_before_any_job(tmp_path):
    r = run_cli(
        "run",
        str(EXPERIMENTS / "quickstart-tiny.yaml"),
        "model.path=org/not-cached",
        f"resources.storage={tmp_path / 's'}",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode != 0 and "cannot reach" in r.stderr and "model.path (org/not-cached)" in r.stderr, r.stderr
    assert r.stdout == ""  # refused before the run starts: no Ray, no job, no progress (not one failure per job)
    runs = tmp_path / "s" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no job started, no run left behind


def test_damaged_state_files_are_named_and_other_runs_stay_readable(tmp_path):
    storage = tmp_path / "store"
    good = make_run(tmp_path / "a", name="good", p_correct=0.5, storage=storage, seed=1)
    bad = make_run(tmp_path / "b", name="bad", p_correct=0.5, storage=storage, seed=2)
    (bad / "manifest.json").write_text('{"run_id": ')
    (good / "train-p1" / "status.json").write_bytes(b"\xff\xfe garbage")
    r = run_cli("status", "--storage", str(storage))
    assert r.returncode == 0, r.stderr
    blocks: dict[str, list[str]] = {}
    for line in r.stdout.splitlines():
        if not line.startswith(" "):
            header = line
        blocks.setdefault(header, []).append(line)
    (bad_head,) = [h for h in blocks if h.startswith(bad.name)]
    assert f"{bad}/manifest.json is damaged" in bad_head
    (good_rows,) = [rows for h, rows in blocks.items() if h.startswith(good.name) and "good" in h]
    row = next(line for line in good_rows if line.strip().startswith("train-p1"))
    assert "unknown" in row and "status.json is damaged" in row
    assert any(line.strip().startswith("train-p2") for line in good_rows)  # its other jobs are still listed
    from knowrl.registry import ingest, reader

    db = tmp_path / "r.duckdb"
    ingest(db, [good])
    with reader(db) as con:
        jobs = {j for (j,) in con.execute("SELECT job_id FROM jobs").fetchall()}
    assert "train-p1" not in jobs and "train-p2" in jobs  # the unreadable job is skipped, the rest ingested
    i = run_cli("ingest", str(bad), "--registry", str(db))
    assert i.returncode != 0 and "manifest.json is damaged" in i.stderr and "internal error" not in i.stderr


def test_dry_run_leaves_no_run_behind(tmp_path):
    storage = tmp_path / "store"
    r = run_cli("run", str(EXPERIMENTS / "css_main.yaml"), f"resources.storage={storage}", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not (storage / "runs").exists() or not any((storage / "runs").iterdir())
