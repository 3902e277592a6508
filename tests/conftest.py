from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the Hub: revisions come from the local cache
ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


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
