"""Loading, format detection, per-record errors and inspect figures on fixtures in every format."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from datafiles import ANNOTATIONS, KPS, PLAIN, TRAIN, TRAIN_KEPT, VERL, write_jsonl, write_parquet

from knowrl.data import DataError, content_id, detect_format, inspect_result, load_problems


@pytest.mark.parametrize(
    "records, fmt",
    [
        (ANNOTATIONS, "knowrl-annotations"),
        (TRAIN, "knowrl-train"),
        (TRAIN_KEPT, "knowrl-train"),
        (VERL, "verl-math"),
        (PLAIN, "plain"),
    ],
)
def test_detection(records, fmt):
    assert all(detect_format(r) == fmt for r in records)


def test_annotations(tmp_path):
    result = load_problems(str(write_jsonl(tmp_path / "AIME24.jsonl", ANNOTATIONS)))
    a, b, c = result.problems
    assert result.format == "knowrl-annotations"
    assert (a.benchmark, a.problem, a.answer, a.kps) == ("AIME24", "Find the sum of the squares.", "236", tuple(KPS))
    assert a.selections == {"css": (0, 2), "cbrs": (0, 1, 2)}
    assert b.selections == {"css": (), "cbrs": (1,)}
    assert c.benchmark == "OlympiadBench" and c.selections == {"css": (1,), "cbrs": ()}
    assert a.id == content_id("Find the sum of the squares.") and a.origin.endswith("AIME24.jsonl:1")


def test_parquet_reads_the_same_as_jsonl(tmp_path):
    js = load_problems(str(write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS))).problems
    pq = load_problems(str(write_parquet(tmp_path / "b.parquet", ANNOTATIONS))).problems
    assert [(p.id, p.answer, p.kps, dict(p.selections)) for p in js] == [
        (p.id, p.answer, p.kps, dict(p.selections)) for p in pq
    ]
    assert pq[1].origin.endswith("b.parquet:row 2")


def test_train_format_recovers_the_problem_and_selections(tmp_path):
    result = load_problems(str(write_jsonl(tmp_path / "t.jsonl", TRAIN + TRAIN_KEPT)))
    one, two, three = result.problems
    assert (one.problem, one.answer) == ("What is $1+1$?", "2")
    assert one.selections == {"css": (0,), "cbrs": (0, 1)}
    assert (two.problem, two.selections) == ("What is $2+2$?", {"css": (), "cbrs": ()})
    assert (three.problem, three.selections) == ("Compute $3 \\cdot 3$.", {"kept": (1,)})


def test_verl_strips_the_suffix_and_canonicalises_names(tmp_path):
    a, b = load_problems(str(write_jsonl(tmp_path / "v.jsonl", VERL))).problems
    assert (a.problem, a.answer, a.benchmark) == ("Find $xy$.", "25", "Maxwell-Jia/AIME_2024")
    assert b.kps == () and b.selections == {}


def test_same_problem_same_id_across_formats(tmp_path):
    verl = dict(
        VERL[0],
        prompt=[
            {
                "role": "user",
                "content": "Find the sum of the squares.\n\nPlease reason step by "
                "step, and put your final answer within \\boxed{}.",
            }
        ],
    )
    a = load_problems(str(write_jsonl(tmp_path / "v.jsonl", [verl]))).problems[0]
    b = load_problems(str(write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS[:1]))).problems[0]
    assert a.id == b.id


def test_plain_format(tmp_path):
    a, b = load_problems(str(write_jsonl(tmp_path / "p.jsonl", PLAIN))).problems
    assert (a.id, a.answer, a.kps) == ("q1", "42", ("Multiplication facts.",))
    assert (b.answer, b.solution, b.benchmark) == ("\\frac{1}{2}", "1/2.", "plain")


def test_folders_read_every_file_once(tmp_path):
    write_jsonl(tmp_path / "d/AIME24/AIME24.jsonl", ANNOTATIONS[:2])
    write_parquet(tmp_path / "d/AIME24/AIME24.parquet", ANNOTATIONS[:2])  # the published layout ships both
    write_parquet(tmp_path / "d/Olympiad/o.parquet", ANNOTATIONS[2:])
    result = load_problems(str(tmp_path / "d"))
    assert [p.benchmark for p in result.problems] == ["AIME24", "AIME24", "OlympiadBench"]


def test_duplicate_problems_keep_distinct_ids(tmp_path):
    ps = load_problems(str(write_jsonl(tmp_path / "p.jsonl", [PLAIN[1], PLAIN[1]]))).problems
    assert ps[1].id == ps[0].id + "-2"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("kp_list"), "kp_list"),
        (lambda r: r.update(css_kept_kp_index=[0, 7]), "css_kept_kp_index"),
        (lambda r: r.update(css_selected_kps=["not a kp"]), "css_selected_kps"),
        (lambda r: r.update(css_selected_kps=[KPS[1]]), "css_selected_kps"),
        (lambda r: r.update(reward_model={"style": "rule"}), "reward_model.ground_truth"),
        (lambda r: r.update(prompt="just text"), "prompt"),
        (lambda r: r.update(dataset=3), "dataset"),
    ],
)
def test_bad_records_are_located_by_file_line_and_field(tmp_path, mutate, field):
    records = json.loads(json.dumps(ANNOTATIONS))
    mutate(records[1])
    path = write_jsonl(tmp_path / "a.jsonl", records)
    with pytest.raises(DataError) as e:
        load_problems(str(path))
    assert f"{path}:2: field '{field}'" in e.value.message
    skipped = load_problems(str(path), skip_bad=True)
    assert len(skipped.problems) == 2 and len(skipped.skipped) == 1 and skipped.skipped[0].field == field


def test_malformed_json_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(PLAIN[0]) + "\n{oops\n" + json.dumps(PLAIN[1]) + "\n")
    with pytest.raises(DataError, match=r"a.jsonl:2: field '<json>': not valid JSON"):
        load_problems(str(path))
    assert len(load_problems(str(path), skip_bad=True).problems) == 2


def test_unknown_format_and_missing_paths(tmp_path):
    with pytest.raises(DataError, match="matches no known format"):
        load_problems(str(write_jsonl(tmp_path / "x.jsonl", [{"q": 1}])))
    with pytest.raises(DataError, match="no such file or folder"):
        load_problems(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="unknown format"):
        load_problems(str(tmp_path / "x.jsonl"), "csv")


def test_format_override(tmp_path):
    # Annotation records also carry every field the plain reader would need if renamed; forcing a format
    # that does not fit reports the missing field.
    with pytest.raises(DataError, match="field 'problem': missing"):
        load_problems(str(write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS)), "plain")


def test_hf_source_fails_fast_offline():
    import time

    t = time.monotonic()
    with pytest.raises(DataError) as e:
        load_problems("hf://HasuerYu/KnowRL-KP-Annotations@AIME24")
    assert time.monotonic() - t < 30
    assert "HasuerYu/KnowRL-KP-Annotations@AIME24" in e.value.message and "local folder" in e.value.hint


def test_inspect_figures(tmp_path):
    stats = inspect_result(load_problems(str(write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS))))
    assert (stats.records, stats.format, stats.benchmarks) == (
        3,
        "knowrl-annotations",
        {"AIME24": 2, "OlympiadBench": 1},
    )
    assert stats.mean_kps == pytest.approx((3 + 2 + 2) / 3)
    by = {s.name: s for s in stats.selections}
    assert (by["css"].mean_size, by["css"].empty) == (pytest.approx(1.0), 1)
    assert (by["cbrs"].mean_size, by["cbrs"].empty) == (pytest.approx(4 / 3), 1)


def test_cli_inspect_and_render(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS)
    r = run_cli("data", "inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["benchmarks"] == {"AIME24": 2, "OlympiadBench": 1}
    table = run_cli("data", "inspect", str(path))
    assert "OlympiadBench" in table.stdout and "css" in table.stdout
    rendered = run_cli("data", "render", str(path), "--strategy", "css", "--limit", "2")
    assert "## Hint\n1. **Knowledge Point**: Definition of the mode." in rendered.stdout
    bad = run_cli("data", "inspect", str(tmp_path / "missing.jsonl"))
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
