"""The cluster path: a real local Ray head (own temp dir, stopped by its PID), the Jobs API, detach and re-attach."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, run_cli

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    temp = tempfile.mkdtemp(prefix="kr", dir="/tmp")  # Ray's socket paths must stay short
    port, dash = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            "--num-cpus=2",
            "--include-dashboard=true",
            f"--temp-dir={temp}",
            "--block",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + 120
    while True:
        try:
            JobSubmissionClient(address).list_jobs()
            break
        except Exception:
            if time.monotonic() > deadline or head.poll() is not None:
                os.killpg(head.pid, signal.SIGKILL)
                pytest.fail("the local Ray head did not come up")
            time.sleep(1)
    yield address
    os.killpg(head.pid, signal.SIGTERM)  # our own head only, by its process group
    try:
        head.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


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
    r = run_cli("run", "experiments/quickstart.yaml", *overrides, "--address", ray_head, "--detach", "--allow-dirty")
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
