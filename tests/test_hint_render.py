"""Hint prompts match KnowRL's construction character for character."""

from __future__ import annotations

from datafiles import ANNOTATIONS, KPS, SUFFIX, TRAIN, write_jsonl

from knowrl.data import Problem, load_problems
from knowrl.kp import render_hint_prompt, render_prompt


def test_no_hint_prompt():
    assert render_hint_prompt("Find $x$.", []) == (
        "Find $x$.\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


def test_hint_prompt_exact_bytes():
    got = render_hint_prompt("Find $x$.", ["  first KP\n   **Key Considerations**: a.  ", "second"])
    assert got == (
        "Find $x$.\n\n## Hint\n1. first KP\n   **Key Considerations**: a.\n2. second\n\n"
        "Please reason step by step, and put your final answer within \\boxed{}."
    )


def test_selection_order_follows_kp_list():
    p = Problem(id="x", benchmark="b", problem="P", answer="1", kps=("a", "b", "c"))
    assert render_prompt(p, [2, 0]) == f"P\n\n## Hint\n1. a\n2. c\n\n{SUFFIX}"


def test_custom_suffix():
    assert render_hint_prompt("P", ["k"], suffix="Answer:") == "P\n\n## Hint\n1. k\n\nAnswer:"


def test_rendering_reproduces_the_published_training_prompts(tmp_path):
    for record, problem in zip(
        TRAIN, load_problems(str(write_jsonl(tmp_path / "t.jsonl", TRAIN))).problems, strict=True
    ):
        assert render_prompt(problem, problem.selections["css"]) == record["prompt"][0]["content"]


def test_annotation_selections_render(tmp_path):
    p = load_problems(str(write_jsonl(tmp_path / "a.jsonl", ANNOTATIONS))).problems[0]
    text = render_prompt(p, p.selection("css"))
    assert text == (
        "Find the sum of the squares.\n\n## Hint\n1. " + KPS[0].strip() + "\n2. " + KPS[2].strip() + "\n\n" + SUFFIX
    )
    assert render_prompt(p, p.selection("none")) == f"Find the sum of the squares.\n\n{SUFFIX}"
