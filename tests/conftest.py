from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
