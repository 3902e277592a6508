"""The run's own bookkeeping: who holds a run, what a rerun records, and errors that must not hide others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, run_cli
from runfactory import quickstart_args

from knowrl.plan import plan
from knowrl.spec import load_spec

HOLD = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, and no pid written yet: the window after the flock
print("locked", flush=True)
sys.stdin.read()
"""


def test_the_holder_of_a_run_is_known_before_it_writes_its_pid(tmp_path):
    from knowrl.runtime._locks import lock_holder

    (tmp_path / ".lock").touch()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / ".lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "locked\n"
        assert lock_holder(tmp_path) == child.pid  # was None: "not running"
    finally:
        child.communicate("")
    assert lock_holder(tmp_path) is None


def test_status_lists_every_run_while_one_cluster_run_is_followed_elsewhere(tmp_path):
    """A `knowrl run --address` attached to one run held its lock: `knowrl status` aborted the whole listing."""
    from knowrl._rundir import read_json, run_path, write_json, write_manifest
    from knowrl.runtime._locks import lock_run

    store = tmp_path / "store"
    runs = []
    for seed in (1, 2):
        spec = load_spec(EXPERIMENTS / "quickstart-tiny.yaml", [f"seed={seed}", f"resources.storage={store}"])
        p = plan(spec)
        run = run_path(store, p.run_id)
        write_manifest(run, spec, p)
        write_json(run / "manifest.json", {**read_json(run / "manifest.json"), "ray_address": "http://127.0.0.1:9"})
        runs.append(run)
    held = lock_run(runs[0])
    try:
        r = run_cli("status", "--storage", str(store))
    finally:
        held.close()
    assert "(followed by `knowrl run`" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0 and runs[1].name in r.stdout  # the other run is still listed
    assert "(not reconciled with Ray: cannot reach the Ray Jobs API at http://127.0.0.1:9" in r.stdout


def test_a_finished_run_rerun_with_another_registry_records_everything_there(tmp_path, tiny_model):
    """The no-op rerun ingested only its `runs` row into the new registry, then exited 2 ("nothing to compare")."""
    import duckdb

    args = quickstart_args(tmp_path, tiny_model, "data.train=[]", "eval.checkpoints=[base]", "eval.limit=2")
    first = run_cli("run", *args)
    assert first.returncode == 0, first.stderr
    again = run_cli("run", *args, f"registry.path={tmp_path / 'other.duckdb'}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already complete" in again.stdout

    def rows(db: Path) -> dict:
        con = duckdb.connect(str(db), read_only=True)
        try:
            tables = ("runs", "jobs", "eval_samples", "eval_scores")
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        finally:
            con.close()

    assert rows(tmp_path / "other.duckdb") == rows(tmp_path / "reg.duckdb")
    assert rows(tmp_path / "other.duckdb")["eval_samples"] > 0


def test_closing_the_tracker_does_not_replace_the_error_on_its_way(tmp_path, tiny_model, monkeypatch):
    from knowrl.runtime import _engine

    spec = load_spec(
        *quickstart_args(tmp_path, tiny_model, "data.train=[]", "eval.checkpoints=[base]")[:1],
        quickstart_args(tmp_path, tiny_model, "data.train=[]", "eval.checkpoints=[base]")[1:],
    )

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("SIGINT")

    def broken_close(self):
        raise RuntimeError("the tracker could not close")

    monkeypatch.setattr(_engine, "_follow", interrupted)
    monkeypatch.setattr(_engine.RunTracker, "close", broken_close)
    with pytest.raises(KeyboardInterrupt):
        _engine.run_spec(spec)
