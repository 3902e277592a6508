"""The registry: schema and migrations, idempotent and crash-safe ingest, read-only queries, comparisons, Aim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_cli
from runfactory import make_run

from knowrl.registry import ingest, latest, load_reference, migrate, reader, writer


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    storage = tmp / "store"
    a = make_run(tmp / "a", name="weak", p_correct=0.3, storage=storage, seed=1)
    b = make_run(tmp / "b", name="strong", p_correct=0.7, storage=storage, seed=2)
    return storage, a, b


def counts(db):
    with reader(db) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("runs", "jobs", "metrics", "eval_samples", "eval_scores")
        }


def test_schema_creation_and_migration_from_an_older_version(tmp_path):
    import duckdb

    db = tmp_path / "r.duckdb"
    con = duckdb.connect(str(db))
    assert migrate(con, target=1) == 1
    con.execute("INSERT INTO runs (run_id, spec_hash, name, status) VALUES ('old', 'h', 'n', 'done')")
    con.close()
    with writer(db) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == latest() == 3
        assert con.execute("SELECT name FROM runs").fetchall() == [("n",)]  # data survives the migration
        con.execute("SELECT * FROM reward_sparsity")  # views from version 2 exist
        con.execute("SELECT * FROM reference_results")  # table from version 3 exists


def test_ingest_is_idempotent(two_runs, tmp_path):
    storage, a, b = two_runs
    db = tmp_path / "r.duckdb"
    report = ingest(db, [a, b])
    assert report.runs == 2 and report.rows["eval_samples"] > 0
    first = counts(db)
    ingest(db, [a, b])
    assert counts(db) == first
    with reader(db) as con:
        assert con.execute("SELECT DISTINCT status FROM runs").fetchall() == [("done",)]
        assert con.execute("SELECT count(DISTINCT checkpoint) FROM eval_samples").fetchone()[0] == 1


def test_compare_matches_the_eval_artifacts(two_runs, tmp_path):
    import pyarrow.parquet as pq

    storage, a, b = two_runs
    db = tmp_path / "r.duckdb"
    ingest(db, [a, b])
    r = run_cli("compare", "weak", "strong", "--registry", str(db), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {(x["run"].split(" ")[0], x["hint mode"]): x for x in json.loads(r.stdout)}
    # Avg. = unweighted mean of the per-benchmark avg@N written by the eval jobs themselves
    per = {}
    for job_dir in a.glob("eval-final-*-none"):
        scores = pq.read_table(job_dir / "scores.parquet").to_pylist()
        acc = next(s["value"] for s in scores if s["metric"] == "accuracy" and s["benchmark"] != "Avg.")
        per[next(s["benchmark"] for s in scores if s["benchmark"] != "Avg.")] = 100 * acc
    assert float(rows[("weak", "none")]["Avg."]) == pytest.approx(sum(per.values()) / len(per), abs=0.006)
    assert float(rows[("weak", "none")]["AIME24"]) == pytest.approx(per["AIME24"], abs=0.006)
    assert float(rows[("strong", "none")]["Avg."]) > float(rows[("weak", "none")]["Avg."])
    diff = run_cli(
        "compare", "--diff", "weak", "strong", "--hint-mode", "none", "--registry", str(db), "--format", "json"
    )
    assert diff.returncode == 0, diff.stderr
    avg = json.loads(diff.stdout)[-1]
    lo, hi = [
        float(x) for x in avg[next(k for k in avg if k != "benchmark")].split("CI ")[1].split(",")[0].split(" .. ")
    ]
    assert 0 < lo < hi  # the stronger run is better with a CI that excludes zero


def test_reference_rows_recompute_their_avg(tmp_path):
    db = tmp_path / "r.duckdb"
    assert load_reference(db, ROOT / "registry/reference/knowrl_paper.csv") == 15
    r = run_cli("compare", "--with-reference", "--registry", str(db), "--format", "json")
    rows = {(x["run"], x["hint mode"]): x for x in json.loads(r.stdout)}
    css = rows[("KnowRL-1.5B (overall, published)", "css")]
    assert (css["Avg."], css["published Avg."]) == ("74.15", "74.16")  # the paper averaged unrounded scores
    for model, mode in [("KnowRL-1.5B", "none"), ("KnowRL-1.5B", "cbrs")]:
        row = rows[(f"{model} (overall, published)", mode)]
        assert abs(float(row["Avg."]) - float(row["published Avg."])) <= 0.01
    for row in rows.values():
        assert abs(float(row["Avg."]) - float(row["published Avg."])) <= 0.011
    assert rows[("Nemotron-1.5B (strategies, published)", "css")]["mean #KP"] == "2.57"


def test_query_is_read_only(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1]])
    ok = run_cli("query", "SELECT count(*) AS n FROM runs", "--registry", str(db), "--format", "csv")
    assert ok.stdout.splitlines() == ["n", "1"]
    for sql in ("DELETE FROM runs", "SELECT 1; DROP TABLE runs", "CREATE TABLE x (a INT)", "COPY runs TO 'x.csv'"):
        bad = run_cli("query", sql, "--registry", str(db))
        assert bad.returncode != 0 and "read-only" in bad.stderr, sql
    assert counts(db)["runs"] == 1


INGEST = "import sys; from knowrl.registry import ingest; ingest(sys.argv[1], sys.argv[2:], timeout_s=120)"


def test_killed_writers_leave_no_partial_job(two_runs, tmp_path):
    storage, a, b = two_runs
    db = tmp_path / "r.duckdb"
    ingest(db, [a])
    expected = {}
    with reader(db) as con:
        for job_id, n in con.execute("SELECT job_id, count(*) FROM eval_samples GROUP BY job_id").fetchall():
            expected[job_id] = n
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for i in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", INGEST, str(db), str(a), str(b)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3 + (i % 10) * 0.08)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with reader(db) as con:
            rows = dict(
                con.execute(
                    "SELECT job_id, count(*) FROM eval_samples WHERE run_id = ? GROUP BY job_id", [a.name]
                ).fetchall()
            )
            jobs = {j for (j,) in con.execute("SELECT job_id FROM jobs WHERE run_id = ?", [a.name]).fetchall()}
        assert rows == expected  # every job of run a complete, never half-replaced
        assert {j for j in expected} <= jobs


def test_two_ingesters_at_once_lose_nothing(two_runs, tmp_path):
    storage, a, b = two_runs
    db = tmp_path / "r.duckdb"
    procs = [
        subprocess.Popen([sys.executable, "-c", INGEST, str(db), str(run)], stderr=subprocess.PIPE, text=True)
        for run in (a, b)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert counts(db)["runs"] == 2
    single = tmp_path / "s.duckdb"
    ingest(single, [a, b])
    assert counts(db) == counts(single)


def test_runs_and_show_run(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1], two_runs[2]])
    r = run_cli("runs", "--registry", str(db), "--format", "json")
    rows = json.loads(r.stdout)
    assert {x["name"] for x in rows} == {"weak", "strong"} and "seed" in rows[0]  # the differing hyperparameter
    s = run_cli("show-run", "strong", "--registry", str(db))
    assert s.returncode == 0 and "train-p2" in s.stdout and "train/reward" in s.stdout


def test_views(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1]])
    with reader(db) as con:
        sparsity = con.execute("SELECT zero_correct, all_correct, problems FROM reward_sparsity").fetchall()
        assert sparsity and all(0 <= z <= 1 and 0 <= a <= 1 for z, a, _ in sparsity)
        curves = con.execute("SELECT count(*) FROM training_curves").fetchone()[0]
        assert curves == 20
        assert con.execute("SELECT count(*) FROM latest_scores").fetchone()[0] == 16


def test_plots(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1], two_runs[2]])
    load_reference(db, ROOT / "registry/reference/knowrl_paper.csv")
    for args in (
        ["plot", "curves", "weak", "strong", "--out", str(tmp_path / "c.png")],
        ["plot", "compare", "--out", str(tmp_path / "b.png")],
    ):
        r = run_cli(*args, "--registry", str(db))
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "b.png").stat().st_size > 10_000


def test_aim_round_trip(tmp_path):
    from aim import Repo

    from knowrl.tracking import AimTracker

    t = AimTracker(str(tmp_path / "aim"))
    t.start("abc123", "quick", {"algorithm": {"learning_rate": 1e-6}})
    for step in range(5):
        t.track("train/reward", step / 10, step=step, context={"phase": 1})
    t.close()
    repo = Repo.from_path(str(tmp_path / "aim"))
    found = []
    for trace_run in repo.query_metrics("metric.name == 'train/reward'").iter_runs():
        for m in trace_run.iter():
            found.append(
                (m.run["knowrl_run_id"], m.context.to_dict(), sorted(float(v) for v in m.values.values_list()))
            )
    assert found == [("abc123", {"phase": 1}, [0.0, 0.1, 0.2, 0.3, 0.4])]


def test_sweep_lists_status_from_the_registry(two_runs, tmp_path, write):
    storage, a, b = two_runs
    db = tmp_path / "r.duckdb"
    ingest(db, [a])
    manifest = json.loads((a / "manifest.json").read_text())
    spec_yaml = write(
        "sw.yaml", json.dumps({**manifest["spec"], "registry": {"path": str(db)}, "sweep": {"grid": {"seed": [1, 5]}}})
    )
    r = run_cli("sweep", str(spec_yaml), "--json")
    assert r.returncode == 0, r.stderr
    status = {row["changes"]["seed"]: row["status"] for row in json.loads(r.stdout)}
    assert status == {1: "done", 5: "new"}
