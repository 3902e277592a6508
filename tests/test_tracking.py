"""One knowrl run is one Aim run, seen the way Aim's own UI sees runs (its web API lists runs nobody indexed)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

# The driver's tracker thread with the spec and plan it reads, as plain objects: the engine's RunTracker, stopped
# (by the stand-in for its state write) after Aim created the run and before anything recorded it.
DRIVER = """
import json, sys, threading
from pathlib import Path
from types import SimpleNamespace

import knowrl._rundir as rundir
from knowrl.runtime._tracking import RunTracker

run, repo = Path(sys.argv[1]), sys.argv[2]
spec = SimpleNamespace(
    name="quick", tags=["smoke"], model_dump=lambda mode: {"seed": 1},
    tracking=SimpleNamespace(backend="aim", repo=repo, experiment=None),
)
plan = SimpleNamespace(run_id=run.name, jobs=[])

def stop_here(path, obj):  # the first write after Aim created its run: report, then wait to be killed
    print("created", flush=True)
    threading.Event().wait()

rundir.write_json = stop_here
RunTracker(spec, plan, run)
threading.Event().wait()
"""


def stand_ins(run: Path, repo: Path):
    spec = SimpleNamespace(
        name="quick",
        tags=["smoke"],
        model_dump=lambda mode: {"seed": 1},
        tracking=SimpleNamespace(backend="aim", repo=str(repo), experiment=None),
    )
    job = SimpleNamespace(id="train-p1", params={"phase": 1})
    return spec, SimpleNamespace(run_id=run.name, jobs=[job]), job


def every_run(repo) -> list[str]:
    """Every run hash the repo holds: `list_all_runs` sees runs nobody indexed, `iter_runs` those whose chunks
    Aim's indexer has already merged into its index (and removed), which `list_all_runs` no longer lists."""
    from aim import Repo

    r = Repo.from_path(str(repo))
    return sorted(set(r.list_all_runs()) | {run.hash for run in r.iter_runs()})


def ui_runs(repo: Path, monkeypatch) -> dict:
    """Every run Aim's web UI lists (`GET /api/runs/search/run/`), served by Aim's own app on 127.0.0.1."""
    import uvicorn
    from aim.storage.treeutils import decode_tree
    from aim.web.api import create_app

    monkeypatch.setenv("__AIM_UI_MOUNT_REPO_PATH__", str(repo))  # what `aim up --repo` sets
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="error"))
    started = threading.Event()
    serving = threading.Thread(target=lambda: server.run(), daemon=True)
    original_startup = server.startup

    async def startup(*args, **kwargs):
        await original_startup(*args, **kwargs)
        started.set()

    server.startup = startup
    serving.start()
    assert started.wait(120), "Aim's web app did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        body = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/runs/search/run/?report_progress=false", timeout=120
        ).read()
    finally:
        server.should_exit = True
        serving.join(60)

    def frames(data: bytes):  # the UI's stream: (u32 length, key, u32 length, value) records of an encoded tree
        i = 0
        while i < len(data):
            (n,) = struct.unpack_from("I", data, i)
            key, i = data[i + 4 : i + 4 + n], i + 4 + n
            (n,) = struct.unpack_from("I", data, i)
            yield key, data[i + 4 : i + 4 + n]
            i += 4 + n

    return decode_tree(frames(body))


def test_a_driver_killed_after_aim_created_its_run_resumes_that_run(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from knowrl._rundir import write_json
    from knowrl.runtime._tracking import RunTracker

    run, repo = tmp_path / "runs" / "0123abcd-run", tmp_path / "aim"
    run.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "KNOWRL_DEBUG"}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(run), str(repo)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert driver.stdout.readline() == "created\n"  # Aim's run exists; nothing has recorded it yet
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    assert not (run / "tracking.json").exists()
    assert len(every_run(repo)) == 1  # the kill landed after the creation

    spec, plan, job = stand_ins(run, repo)  # the resumed driver, with a finished job to log
    (run / job.id).mkdir()
    pq.write_table(
        pa.table({"step": [0, 1], "name": ["train/reward"] * 2, "value": [0.25, 0.5]}), run / job.id / "metrics.parquet"
    )
    write_json(run / job.id / "status.json", {"job_id": job.id, "kind": "train", "status": "succeeded"})
    tracker = RunTracker(spec, plan, run)
    tracker.close()

    hashes = every_run(repo)
    assert len(hashes) == 1, hashes
    listed = ui_runs(repo, monkeypatch)
    runs = {h: r for h, r in listed.items() if isinstance(r, dict) and "props" in r}
    assert list(runs) == hashes == [json.loads((run / "tracking.json").read_text())["hash"]]
    (shown,) = runs.values()
    assert shown["props"]["name"] == f"quick ({run.name})" and shown["props"]["active"] is False
    logged = [t["name"] for t in shown["traces"]["metric"] if not t["name"].startswith("__system__")]
    assert logged == ["train/reward"]  # the resumed driver's metrics went into the one run


def test_every_start_of_a_run_opens_its_one_aim_run(tmp_path):

    from knowrl.tracking import AimTracker, aim_run_hash

    repo = str(tmp_path / "aim")
    hashes = []
    for run_id in ("run-a", "run-a", "run-b"):  # no resume hash handed over: identity from the run id alone
        t = AimTracker(repo)
        hashes.append(t.start(run_id, "quick", {"seed": 1}))
        t.track("train/reward", 0.5, step=len(hashes))
        t.close()
    assert hashes[0] == hashes[1] == aim_run_hash("run-a") != hashes[2] == aim_run_hash("run-b")
    assert every_run(repo) == sorted({hashes[0], hashes[2]})
    assert len(aim_run_hash("x")) == 24 and int(aim_run_hash("x"), 16) >= 0  # Aim's own shape: 24 hex digits
