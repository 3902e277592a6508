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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny offline Qwen2-style model, built once per test session."""
    from knowrl.generation import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0))
