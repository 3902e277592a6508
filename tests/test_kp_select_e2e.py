"""KP selection end to end with the tiny model: CLI, resume, reading back, extraction, select: eval modes."""

from __future__ import annotations

import json

from conftest import run_cli
from datafiles import PLAIN, write_jsonl

from knowrl.data import load_problems

PROBLEMS = [
    {
        "id": f"q{i}",
        "problem": f"What is {i} plus {i}?",
        "answer": str(2 * i),
        "kp_list": ["Addition of integers.", "Doubling a number.", "Counting."][: 1 + i % 3],
        "css_kept_kp_index": [0],
    }
    for i in range(4)
]


def test_kp_select_writes_loadable_selections_and_resumes(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "p.jsonl", PROBLEMS)
    out = tmp_path / "sel.jsonl"
    args = [
        "kp",
        "select",
        "--data",
        str(data),
        "--strategy",
        "css",
        "--model",
        tiny_model,
        "--out",
        str(out),
        "--param",
        "rollouts_per_subset=2",
        "--param",
        "max_rollouts_per_subset=4",
        "--param",
        "sampling={max_tokens: 8}",
        "--limit",
        "3",
    ]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in records] == ["q0", "q1", "q2"]
    for rec in records:
        assert set(rec) >= {"css_kept_kp_index", "css_selected_kps", "css_estimates", "css_rollouts", "css_trace"}
        assert rec["css_selected_kps"] == [rec["kp_list"][i] for i in rec["css_kept_kp_index"]]
    back = load_problems(str(out))
    assert back.format == "knowrl-annotations"
    assert [p.selections["css"] for p in back.problems] == [tuple(x["css_kept_kp_index"]) for x in records]
    assert [p.answer for p in back.problems] == ["0", "2", "4"]
    assert len(list((tmp_path / "rollouts").glob("rollouts-*.jsonl"))) == 1
    again = run_cli(*args[:-1], "4")  # one more problem: only q3 is new
    assert again.returncode == 0 and "1 problems selected now" in again.stdout
    stats = run_cli("kp", "stats", str(out), "--json")
    rows = {r["strategy"]: r for r in json.loads(stats.stdout)}
    assert rows["all"]["problems"] == 4 and "css" in rows

    # Another strategy beside it re-uses the rollouts already drawn: no subset is rolled out twice.
    def spent(out_file, *extra):
        r = run_cli(*[str(out_file) if a == str(out) else a for a in args[:-1]], "4", "--strategy", "s_loo", *extra)
        assert r.returncode == 0, r.stderr
        return sum(x["s_loo_rollouts"] for x in map(json.loads, out_file.read_text().splitlines()))

    shared, fresh = spent(tmp_path / "sloo.jsonl"), spent(tmp_path / "own.jsonl", "--cache", str(tmp_path / "c2"))
    assert shared < fresh

    # Problems at once over the real transformers generator and grader: every problem, each once, loadable.
    both = tmp_path / "concurrent.jsonl"
    r = run_cli(*[str(both) if a == str(out) else a for a in args[:-1]], "4", "--param", "concurrency=3")
    assert r.returncode == 0, r.stderr
    assert sorted(p.id for p in load_problems(str(both)).problems) == ["q0", "q1", "q2", "q3"]


def test_kp_select_without_a_model_for_a_scored_strategy(tmp_path):
    r = run_cli("kp", "select", "--data", str(write_jsonl(tmp_path / "p.jsonl", PROBLEMS)), "--strategy", "cbrs")
    assert r.returncode == 2 and "needs --model" in r.stderr
    ok = run_cli(
        "kp",
        "select",
        "--data",
        str(tmp_path / "p.jsonl"),
        "--strategy",
        "random",
        "--param",
        "size=1",
        "--out",
        str(tmp_path / "r.jsonl"),
    )
    assert ok.returncode == 0, ok.stderr
    assert all(len(json.loads(x)["random_kept_kp_index"]) == 1 for x in (tmp_path / "r.jsonl").read_text().splitlines())


def test_select_mode_in_eval(tmp_path, tiny_model):
    write_jsonl(
        tmp_path / "data/a.jsonl",
        [
            dict(
                p,
                dataset="AIME24",
                prompt=[{"role": "user", "content": p["problem"]}],
                reward_model={"ground_truth": p["answer"]},
            )
            for p in PROBLEMS
        ],
    )
    r = run_cli(
        "eval",
        "--model",
        tiny_model,
        "--data",
        str(tmp_path / "data"),
        "--benchmarks",
        "AIME24",
        "--hint-modes",
        "none,select:t_loo",
        "--samples",
        "2",
        "--max-tokens",
        "6",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stderr
    assert "oracle-" in r.stdout
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "out/samples/AIME24/select-t_loo.parquet").to_pylist()
    assert len(rows) == 8 and all(row["oracle_assisted"] for row in rows)


def test_extraction_parses_and_drops_leaks():
    from knowrl.grading import Grader
    from knowrl.kp import leaking, parse_kps

    text = (
        "Here they are.\n**Knowledge Point**: Sum of an arithmetic series.\n   **Key Considerations**: "
        "n(a_1+a_n)/2.\n\n2. **Knowledge Point**: The answer is $5050$.\n**Key Considerations**: none.\n"
        "**Knowledge Point**: Use 3 cases.\n   **Key Considerations**: by parity."
    )
    kps = parse_kps(text)
    assert kps[0] == "**Knowledge Point**: Sum of an arithmetic series.\n   **Key Considerations**: n(a_1+a_n)/2."
    assert len(kps) == 3
    g = Grader(workers=1)
    try:
        assert leaking(kps, "5050", g) == [False, True, False]
        assert leaking(kps, "3", g) == [False, False, False]  # single digits are not leaks
    finally:
        g.close()


def test_kp_extract_cli(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "p.jsonl", PLAIN)
    r = run_cli(
        "kp",
        "extract",
        "--data",
        str(data),
        "--teacher",
        tiny_model,
        "--out",
        str(tmp_path / "k.jsonl"),
        "--max-tokens",
        "16",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "k.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["answer"] == "\\frac{1}{2}" and isinstance(rows[0]["kp_list"], list)
    assert "1 problems had no solution" in r.stdout


DISK_FULL = """
import resource, signal, sys
from pathlib import Path
from knowrl.kp._select import done_ids
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    done_ids(Path(sys.argv[1]))
except OSError as e:
    print("failed", e.errno)
"""


def test_dropping_a_torn_record_never_loses_finished_ones(tmp_path):
    """The output is rewritten without its torn last line; a write that fails half-way keeps every record."""
    import subprocess
    import sys

    out = tmp_path / "sel.jsonl"
    records = [{"id": f"q{i}", "css_kept_kp_index": [i % 3], "pad": "x" * 200} for i in range(20)]
    whole = "".join(json.dumps(r) + "\n" for r in records)
    out.write_text(whole + '{"id": "q20", "css_ke')  # a crash mid-append
    r = subprocess.run([sys.executable, "-c", DISK_FULL, str(out), "1024"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("failed")  # the disk is full: the rewrite cannot be done ...
    assert out.read_text().startswith(whole)  # ... but the finished records are all still there
    from knowrl.kp._select import done_ids

    assert done_ids(out) == {f"q{i}" for i in range(20)}
    assert out.read_text() == whole and not list(tmp_path.glob(".sel.jsonl.*"))  # no temporary file left
