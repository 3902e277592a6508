from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_node import free_port, port_flags, stop_node

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the Hub: revisions come from the local cache
ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("KNOWRL_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture
def write(tmp_path):
    """Write a file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def run_cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `knowrl` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("KNOWRL_DEBUG", None) if not (env or {}).get("KNOWRL_DEBUG") else None
    return subprocess.run(
        [sys.executable, "-m", "knowrl.cli", *args], capture_output=True, text=True, cwd=cwd, env=full_env
    )


def snapshot(name: str, text: str, *, update: bool | None = None, folder: Path = SNAPSHOTS) -> None:
    """Compare with a checked-in file, so default changes show as diffs; only KNOWRL_UPDATE_SNAPSHOTS=1 writes it.

    A missing snapshot fails like a changed one: a deleted file, or a new test whose file was never
    reviewed, must not pass by writing what it is compared with."""
    path = folder / name
    if UPDATE_SNAPSHOTS if update is None else update:
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"snapshot {name} is missing; review the output and write it with KNOWRL_UPDATE_SNAPSHOTS=1")
    assert text == path.read_text(), f"{name} changed; review and rerun with KNOWRL_UPDATE_SNAPSHOTS=1"


MINIMAL = "name: t\nmodel: {path: some/model}\n"


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (zombies, which can write nothing, left out)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone while we looked
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(stat.parent.name))
    return members


def wait_until_session_ends(sid: int, bound_s: float = 600) -> None:
    """Wait for every process a killed `start_new_session` driver started (Ray's raylet and workers among them)
    to be gone: the event after which nothing of that run writes. Ray's processes keep the driver's session."""
    import time

    deadline = time.monotonic() + bound_s
    while members := session_members(sid):
        if time.monotonic() > deadline:
            pytest.fail(f"processes {members} of the killed session {sid} are still alive")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny offline Qwen2-style model, built once per test session."""
    from knowrl.generation import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0))


def think_tokenizer_model(tiny_model: str, out: Path, special: bool) -> Path:
    """A copy of the tiny model whose tokenizer has `</think>` as a special token (`special`) or as it came."""
    from transformers import AutoTokenizer

    shutil.copytree(tiny_model, out)
    tok = AutoTokenizer.from_pretrained(out)
    if special:
        tok.add_special_tokens({"additional_special_tokens": ["</think>"]}, replace_extra_special_tokens=False)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ray_head(request):
    """A real local Ray head of this environment's Ray, its Jobs API's address: its own temp dir and ports, stopped by
    its own process group (never `ray stop`, which would stop every Ray on the machine).

    A test module shapes it with `RAY_HEAD_GPUS` (logical GPUs; default 8, one node of the paper's 8x8 layout) and
    `RAY_HEAD_ENV` (variables the head and its jobs run with). The head is up once its job agent takes a submission
    (the Jobs API lists jobs before that)."""
    temp = tempfile.mkdtemp(prefix="kr", dir="/tmp")  # Ray's socket paths must stay short
    port, dash = free_port(), free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the nodes' python3: this environment's
        # The dashboard gets 60 s to start and each of its modules 30 s; a loaded 2-core machine can need longer.
        "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "600",
        "RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "600",
        **getattr(request.module, "RAY_HEAD_ENV", {}),
    }
    head = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            *port_flags(),
            "--num-cpus=2",
            f"--num-gpus={getattr(request.module, 'RAY_HEAD_GPUS', 8)}",
            "--include-dashboard=true",
            f"--temp-dir={temp}",
            "--block",
        ],
        env=env,
        stdout=(log := open(f"{temp}/head.log", "w")),  # noqa: SIM115 (the head outlives this block)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + 300
    while True:
        try:  # the job agent is up once a submission is taken
            JobSubmissionClient(address).submit_job(entrypoint="true", submission_id="agent-up")
            break
        except Exception as e:
            if "already exists" in str(e):  # an earlier try went through
                break
            if time.monotonic() > deadline or head.poll() is not None:
                os.killpg(head.pid, signal.SIGKILL)
                log.close()
                pytest.fail(f"the local Ray head did not come up: {str(e)[:300]}\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(1)
    yield address
    stop_node(head)
    log.close()
    shutil.rmtree(temp, ignore_errors=True)
