"""The registry: schema and migrations, idempotent and crash-safe ingest, read-only queries, comparisons, Aim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli
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
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == latest() == 5
        assert con.execute("SELECT name FROM runs").fetchall() == [("n",)]  # data survives the migration
        con.execute("SELECT * FROM reward_sparsity")  # views from version 2 exist
        con.execute("SELECT * FROM reference_results")  # table from version 3 exists
        assert con.execute("SELECT inputs FROM runs").fetchall() == [(None,)]  # column from version 4
        ranked = con.execute(
            "SELECT c FROM (VALUES ('final'), ('100'), ('base'), ('20')) t(c) ORDER BY checkpoint_rank(c)"
        )
        assert [c for (c,) in ranked.fetchall()] == ["base", "20", "100", "final"]  # macro from version 5


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
    rows = {(x["run"].split(" ")[0], x["hint_mode"]): x for x in json.loads(r.stdout)}
    # Avg. = unweighted mean of the per-benchmark avg@N written by the eval jobs themselves, as a number at full
    # precision (not a string rounded to 2 places)
    per = {}
    for job_dir in a.glob("eval-final-*-none"):
        scores = pq.read_table(job_dir / "scores.parquet").to_pylist()
        acc = next(s["value"] for s in scores if s["metric"] == "accuracy" and s["benchmark"] != "Avg.")
        per[next(s["benchmark"] for s in scores if s["benchmark"] != "Avg.")] = 100 * acc
    assert rows[("weak", "none")]["avg"] == pytest.approx(sum(per.values()) / len(per), abs=1e-9)
    assert rows[("weak", "none")]["AIME24"] == pytest.approx(per["AIME24"], abs=1e-9)
    assert rows[("strong", "none")]["avg"] > rows[("weak", "none")]["avg"]
    samples = pq.read_table(next(a.glob("eval-final-AIME24-none")) / "samples").to_pylist()
    problems = {r["problem_id"] for r in samples}
    assert rows[("weak", "none")]["counts"]["AIME24"] == [len(problems), len(samples) // len(problems)]
    diff = run_cli(
        "compare", "--diff", "weak", "strong", "--hint-mode", "none", "--registry", str(db), "--format", "json"
    )
    assert diff.returncode == 0, diff.stderr
    avg = json.loads(diff.stdout)[-1]
    assert avg["benchmark"] == "Avg."
    assert (
        0 < avg["ci95_low"] < avg["delta"] < avg["ci95_high"]
    )  # the stronger run is better with a CI that excludes zero


def test_reference_rows_recompute_their_avg(tmp_path):
    db = tmp_path / "r.duckdb"
    assert load_reference(db) == 15
    r = run_cli("compare", "--with-reference", "--registry", str(db), "--format", "json")
    rows = {(x["run"], x["hint_mode"]): x for x in json.loads(r.stdout)}
    css = rows[("KnowRL-1.5B (overall, published)", "css")]
    assert css["published_avg"] == 74.16 and round(css["avg"], 2) == 74.15  # the paper averaged unrounded scores
    for model, mode in [("KnowRL-1.5B", "none"), ("KnowRL-1.5B", "cbrs")]:
        row = rows[(f"{model} (overall, published)", mode)]
        assert abs(row["avg"] - row["published_avg"]) <= 0.01
    for row in rows.values():  # rounding bounds it by 0.01; one published row is 0.00125 further off
        assert abs(row["avg"] - row["published_avg"]) <= 0.0125
    assert rows[("Nemotron-1.5B (strategies, published)", "css")]["mean_kps"] == 2.57


def test_query_is_read_only(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1]])
    ok = run_cli("query", "SELECT count(*) AS n FROM runs", "--registry", str(db), "--format", "csv")
    assert ok.stdout.splitlines() == ["n", "1"]
    for sql in ("DELETE FROM runs", "CREATE TABLE x (a INT)", "COPY runs TO 'x.csv'"):
        bad = run_cli("query", sql, "--registry", str(db))
        assert bad.returncode != 0 and "read-only" in bad.stderr, sql
    two = run_cli("query", "SELECT 1; SELECT 2", "--registry", str(db))
    assert two.returncode != 0 and "one statement; this has 2" in two.stderr and not two.stdout
    assert counts(db)["runs"] == 1


def test_query_is_closed_to_the_host(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1]])
    secret = tmp_path / "secret.csv"
    secret.write_text("a\nhost-file-content\n")
    for sql in (
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS o",
        "SET enable_external_access = true",
    ):
        bad = run_cli("query", sql, "--registry", str(db))
        assert bad.returncode != 0 and "host-file-content" not in bad.stdout, (sql, bad.stdout)
        assert "Traceback" not in bad.stderr, bad.stderr
    read = run_cli("query", f"SELECT * FROM read_text('{secret}')", "--registry", str(db))
    assert "--allow-files" in read.stderr  # the refusal names the opt-in
    opted = run_cli(
        "query", f"SELECT a FROM read_csv('{secret}')", "--registry", str(db), "--allow-files", "--format", "csv"
    )
    assert opted.returncode == 0 and opted.stdout.splitlines() == ["a", "host-file-content"]


def test_readers_wait_out_a_long_ingest(tmp_path):
    """`knowrl runs`-style readers in a loop during a long ingest: every read succeeds, and gets in while the
    ingest goes on; so does a second writer (the ingest hands the file over between two jobs)."""
    storage = tmp_path / "store"
    many = [make_run(tmp_path / f"r{i}", name=f"r{i}", p_correct=0.5, storage=storage, seed=10 + i) for i in range(4)]
    db = tmp_path / "r.duckdb"
    ingest(db, many[:1])
    proc = subprocess.Popen([sys.executable, "-c", INGEST, str(db), *map(str, many[1:3] * 4)], stderr=subprocess.PIPE)
    reads, failures, wrote_during = 0, [], None
    while proc.poll() is None:
        try:
            with reader(db, timeout_s=60) as con:
                con.execute("SELECT count(*) FROM runs").fetchone()
            reads += 1
        except Exception as e:  # noqa: BLE001 -- any failure counts
            failures.append(repr(e))
        if reads == 3 and wrote_during is None:
            ingest(db, many[3:], timeout_s=60)
            wrote_during = proc.poll() is None
    assert proc.returncode == 0, proc.stderr.read()
    assert failures == [] and reads >= 3, (reads, failures[:3])
    assert wrote_during, "the second writer got in only after the long ingest"
    assert counts(db)["runs"] == 4


def test_ingest_keeps_the_file_open_while_no_one_waits(two_runs, tmp_path, monkeypatch):
    """Reopening the file for every job made an ingest 2.3-2.6x DuckDB's bulk load (bench/registry.py)."""
    import duckdb

    opened = []
    connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or connect(*a, **k))
    report = ingest(tmp_path / "r.duckdb", two_runs[1:])
    assert report.jobs > 20 and len(opened) == 1


def test_a_file_that_is_not_a_database_is_named(two_runs, tmp_path):
    for content, what in (
        (b"", "an empty file"),
        (b"SQLite format 3\x00" + bytes(100), "an SQLite database"),
        (b"run_id,name\nabc,x\n", "a text file"),
    ):
        db = tmp_path / "r.duckdb"
        db.write_bytes(content)
        r = run_cli("runs", "--registry", str(db))
        assert r.returncode != 0 and f"is not a DuckDB database: it is {what}" in r.stderr, r.stderr
        assert "another process" not in r.stderr
        w = run_cli("ingest", str(two_runs[1]), "--registry", str(db))
        assert f"is not a DuckDB database: it is {what}" in w.stderr, w.stderr
        assert db.read_bytes() == content  # left as it was


def test_stars_only_beyond_noise(tmp_path):
    from knowrl.registry._compare import best_beyond_noise, noise

    assert best_beyond_noise([(0.0, noise(0, 4, 8))] * 3) is None  # a tie is not "best"
    lucky = (100 / 32, noise(100 / 32, 4, 8))  # one correct sample of 32
    assert best_beyond_noise([lucky, (0.0, noise(0, 4, 8))]) is None
    assert best_beyond_noise([(80.0, noise(80, 30, 8)), (20.0, noise(20, 30, 8))]) == 0
    assert noise(0, 4, 8) > 0  # 0 of 32 is not certainly 0


def test_compare_table_says_what_its_numbers_rest_on(two_runs, tmp_path):
    db = tmp_path / "r.duckdb"
    ingest(db, [two_runs[1]])
    r = run_cli("compare", "weak", "--registry", str(db))
    assert r.returncode == 0, r.stderr
    assert "avg@N over (problems x samples)" in r.stdout and "x32)" in r.stdout and "x8)" in r.stdout
    assert "*" not in r.stdout.split("* =")[0]  # two equal rows per column: a tie, so no star
    assert "no cell stands out beyond noise in: AIME24" in r.stdout
    ref = run_cli("compare", "weak", "--with-reference", "--registry", str(db), "--format", "json")
    assert ref.returncode == 0 and "loaded the published tables" in ref.stderr
    assert any("published" in x["run"] for x in json.loads(ref.stdout))


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
    load_reference(db)
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


def test_runs_shows_list_values_as_json_not_python_reprs(tmp_path):
    storage = tmp_path / "store"
    a = make_run(tmp_path / "a", name="one", p_correct=0.5, storage=storage, seed=1, modes=("none",), steps=4)
    b = make_run(tmp_path / "b", name="two", p_correct=0.5, storage=storage, seed=1, modes=("none", "css"), steps=4)
    db = tmp_path / "r.duckdb"
    ingest(db, [a, b])
    table = run_cli("runs", "--registry", str(db), "--format", "csv")
    assert table.returncode == 0, table.stderr
    assert '"[""none"", ""css""]"' in table.stdout and "['none'" not in table.stdout
    as_json = json.loads(run_cli("runs", "--registry", str(db), "--format", "json").stdout)
    assert {tuple(r["eval.hint_modes"]) for r in as_json} == {("none",), ("none", "css")}


def test_effects_pair_checkpoints_and_hint_modes_within_a_run(tmp_path):
    """`compare --effects`: training (final vs base) and hints (css vs none), each with a paired bootstrap CI,
    and the reward-sparsity view; `--diff` compares final checkpoints instead of pooling base and final."""
    accuracy = {("base", "none"): 0.1, ("base", "css"): 0.6, ("final", "none"): 0.5, ("final", "css"): 0.6}
    run = make_run(
        tmp_path / "a",
        name="knowrl",
        p_correct=lambda ckpt, mode: accuracy[ckpt, mode],
        storage=tmp_path / "s",
        checkpoints=("base", "final"),
        seed_per_job=True,  # base css and final css, both at 0.6, answer independently: a delta near, not at, 0
    )
    flat = make_run(tmp_path / "b", name="flat", p_correct=0.5, storage=tmp_path / "s2", modes=("none",))
    db = tmp_path / "r.duckdb"
    ingest(db, [run, flat])
    r = run_cli("compare", "knowrl", "--effects", "--registry", str(db), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    effects = {(e["a"], e["b"]): e for e in out["effects"]}
    assert set(effects) == {
        ("base none", "final none"),
        ("base css", "final css"),
        ("base none", "base css"),
        ("final none", "final css"),
    }
    trained = effects["base none", "final none"]
    assert trained["effect"] == "training" and 0 < trained["ci95_low"] < trained["delta"] < trained["ci95_high"]
    hinted = effects["base none", "base css"]
    assert hinted["effect"] == "hints" and hinted["ci95_low"] > 0 and hinted["problems"] == trained["problems"] > 0
    same = effects["base css", "final css"]
    assert same["delta"] != 0 and same["ci95_low"] < 0 < same["ci95_high"]  # equal accuracy: a CI around zero
    sparse = {(x["checkpoint"], x["hint_mode"]): x for x in out["reward_sparsity"]}
    assert (
        set(sparse) == set(accuracy) and sparse["base", "none"]["zero_correct"] > sparse["base", "css"]["zero_correct"]
    )
    table = run_cli("compare", "knowrl", "--effects", "--registry", str(db))
    assert "paired bootstrap" in table.stdout and "reward sparsity" in table.stdout
    # final vs final: both at 0.5 without hints; pooling knowrl's base (0.1) in made it look 20 points worse
    diff = run_cli("compare", "--diff", "knowrl", "flat", "--registry", str(db), "--format", "json")
    assert diff.returncode == 0, diff.stderr
    avg = json.loads(diff.stdout)[-1]
    assert avg["ci95_low"] <= 0 <= avg["ci95_high"] and abs(avg["delta"]) < 15


def test_diff_of_a_name_two_runs_share_names_them_and_takes_a_run_id(tmp_path):
    """One spec on changed inputs is a new run under the same name: `--diff NAME` says which runs match."""
    storage = tmp_path / "s"
    first = make_run(tmp_path / "a", name="dup", p_correct=0.3, storage=storage, seed=1, modes=("none",))
    second = make_run(tmp_path / "b", name="dup", p_correct=0.7, storage=storage, seed=2, modes=("none",))
    other = make_run(tmp_path / "c", name="other", p_correct=0.7, storage=storage, seed=3, modes=("none",))
    db = tmp_path / "r.duckdb"
    ingest(db, [first, second, other])
    for args in (("compare", "--diff", "dup", "other"), ("compare", "--diff", "other", "dup"), ("show-run", "dup")):
        r = run_cli(*args, "--registry", str(db))
        assert r.returncode == 2 and "internal error" not in r.stderr, (args, r.stderr)
        assert "2 runs match the name 'dup'" in r.stderr and first.name in r.stderr and second.name in r.stderr
        assert "run id" in r.stderr and not r.stdout
    by_id = run_cli("compare", "--diff", first.name, "other", "--registry", str(db), "--format", "json")
    assert by_id.returncode == 0, by_id.stderr
    by_prefix = run_cli("compare", "--diff", second.name[:12], "other", "--registry", str(db), "--format", "json")
    assert by_prefix.returncode == 0, by_prefix.stderr
    weak, level = json.loads(by_id.stdout)[-1], json.loads(by_prefix.stdout)[-1]  # other - dup
    assert weak["ci95_low"] > 0 and weak["delta"] > level["delta"]  # each id picked its own run
    table = run_cli("compare", "dup", "--registry", str(db), "--format", "json")  # a table shows every match
    assert {x["run"].split("(")[1][:8] for x in json.loads(table.stdout)} == {first.name[:8], second.name[:8]}


def test_checkpoints_order_base_then_steps_numerically_then_final(tmp_path):
    """Step 100 after step 90 and base first, everywhere: the table, the effects, the sparsity view, the
    checkpoint a diff defaults to (the last evaluated) and the latest_scores view."""
    accuracy = {"base": 0.1, "90": 0.4, "100": 0.9}
    run = make_run(
        tmp_path / "a",
        name="steps",
        p_correct=lambda ckpt, mode: accuracy[ckpt],
        storage=tmp_path / "s",
        modes=("none",),
        steps=200,  # phase 1 ends at step 100
        checkpoints=("base", 100, 90),
    )
    flat = make_run(tmp_path / "b", name="flat", p_correct=0.9, storage=tmp_path / "s2", modes=("none",), seed=5)
    db = tmp_path / "r.duckdb"
    ingest(db, [run, flat])
    rows = json.loads(run_cli("compare", "steps", "--registry", str(db), "--format", "json").stdout)
    assert [x["run"].rsplit("@", 1)[1] for x in rows] == ["base", "90", "100"]
    out = json.loads(run_cli("compare", "steps", "--effects", "--registry", str(db), "--format", "json").stdout)
    assert [(e["a"], e["b"]) for e in out["effects"]] == [("base none", "90 none"), ("90 none", "100 none")]
    assert [x["checkpoint"] for x in out["reward_sparsity"]] == ["base", "90", "100"]
    diff = run_cli("compare", "--diff", "steps", "flat", "--registry", str(db), "--format", "json")
    assert diff.returncode == 0, diff.stderr
    avg = json.loads(diff.stdout)[-1]  # step 100 (0.9) vs flat's final (0.9); step 90 or base is far below
    assert abs(avg["delta"]) < 15, avg
    with reader(db) as con:
        latest = con.execute("SELECT DISTINCT checkpoint FROM latest_scores WHERE name = 'steps'").fetchall()
    assert latest == [("100",)]


def _retime(run, times: dict[str, tuple[str | None, str | None, str]]) -> None:
    """Give a run's jobs their own (started, finished, status), as the engine writes them."""
    from knowrl._rundir import read_json, write_json

    for job, (started, finished, status) in times.items():
        path = run / job / "status.json"
        record = read_json(path) | {"started_at": started, "finished_at": finished, "status": status}
        write_json(path, record)


def test_runs_record_when_they_started_and_finished_and_their_sweep(tmp_path):
    storage = tmp_path / "s"
    run = make_run(tmp_path / "a", name="timed", p_correct=0.5, storage=storage, modes=("none",), steps=4)
    jobs = sorted(p.parent.name for p in run.glob("*/status.json"))
    first, last = jobs[0], jobs[-1]
    times = {j: ("2026-11-22T10:05:00+00:00", "2026-11-22T10:06:00+00:00", "succeeded") for j in jobs}
    times[first] = ("2026-11-22T11:00:00+01:00", "2026-11-22T10:01:00+00:00", "succeeded")  # 10:00 UTC
    times[last] = ("2026-11-22T10:30:00+00:00", "2026-11-22T10:45:30+00:00", "succeeded")
    _retime(run, times)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["sweep_id"] = "5ca1ab1e0001"
    (run / "manifest.json").write_text(json.dumps(manifest))
    definition = {"grid": {"seed": [1, 2]}}
    point = make_run(tmp_path / "b", name="point", p_correct=0.5, storage=storage, modes=("none",), steps=4, seed=2)
    listed = json.loads((point / "manifest.json").read_text())["spec_hash"]  # its manifest names no sweep
    (storage / "sweeps").mkdir()
    record = {"sweep_id": "5ca1ab1e0001", "definition": definition, "points": [manifest["spec_hash"], listed]}
    (storage / "sweeps" / "seeds.json").write_text(json.dumps(record))
    (storage / "sweeps" / "other.json").write_text(json.dumps({"sweep_id": "0ther", "definition": {}, "points": []}))
    db = tmp_path / "r.duckdb"
    ingest(db, [run, point])
    with reader(db) as con:
        assert con.execute("SELECT sweep_id FROM runs WHERE name = 'point'").fetchone() == ("5ca1ab1e0001",)

    def row():
        with reader(db) as con:
            return con.execute(
                "SELECT status, started_at::VARCHAR, finished_at::VARCHAR, sweep_id FROM runs WHERE name = 'timed'"
            ).fetchone()

    assert row() == ("done", "2026-11-22 10:00:00", "2026-11-22 10:45:30", "5ca1ab1e0001")
    with reader(db) as con:
        sweeps = con.execute("SELECT sweep_id, name, definition, created_at FROM sweeps").fetchall()
        job_start = con.execute(
            "SELECT started_at::VARCHAR FROM jobs WHERE run_id = ? AND job_id = ?", [run.name, first]
        ).fetchone()
    assert [(s, n, json.loads(d)) for s, n, d, _ in sweeps] == [("5ca1ab1e0001", "seeds", definition)]
    assert sweeps[0][3] is not None and job_start == ("2026-11-22 10:00:00",)
    shown = run_cli("show-run", "timed", "--registry", str(db))
    assert "started 2026-11-22 10:00:00  finished 2026-11-22 10:45:30  sweep 5ca1ab1e0001" in shown.stdout

    _retime(run, {last: ("2026-11-22T10:30:00+00:00", None, "running")})  # still running: not finished
    ingest(db, [run])
    assert row() == ("running", "2026-11-22 10:00:00", None, "5ca1ab1e0001")
    (run / last / "status.json").unlink()  # planned, never started: the run is not done
    ingest(db, [run])
    assert row()[:3] == ("pending", "2026-11-22 10:00:00", None)


def test_an_unfinished_jobs_logged_metrics_are_ingested(tmp_path):
    """`FROM table` is a syntax error in DuckDB: every unfinished job's partial curve failed the whole ingest."""
    from knowrl.registry._ingest import _partial_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "name": "train/reward", "value": 0.5}\n')
    with writer(tmp_path / "r.duckdb") as con:  # the registry's own schema
        assert _partial_metrics(con, "r", "train-p1", tmp_path) == {"metrics": 1}
        assert con.execute("SELECT run_id, job_id, step, name, value FROM metrics").fetchall() == [
            ("r", "train-p1", 1, "train/reward", 0.5)
        ]
