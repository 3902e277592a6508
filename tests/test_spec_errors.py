"""Every kind of bad input gets one located, actionable message; all problems come together."""

from __future__ import annotations

import pytest
from conftest import MINIMAL, run_cli

from knowrl import KnowrlError
from knowrl._errors import SpecError
from knowrl.spec import load_spec


def problems(path, overrides=()):
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return info.value.problems


def one(path, overrides=()):
    found = problems(path, overrides)
    assert len(found) == 1, [p.render() for p in found]
    return found[0]


def test_unknown_key_is_located_with_a_suggestion(write):
    path = write("s.yaml", MINIMAL + "algorithm:\n  learning_rte: 1e-6\n")
    p = one(path)
    assert (p.key, p.where, p.message) == ("algorithm.learning_rte", f"{path}:4", "unknown key")
    assert p.hint == "did you mean 'learning_rate'?"


def test_unknown_key_inside_a_strategy_suggests_that_strategys_fields(write):
    p = one(write("s.yaml", MINIMAL + "hints:\n  strategy: t_loo\n  delt: 0.1\n"))
    assert p.key == "hints.delt" and p.hint == "did you mean 'delta'?"


def test_a_parameter_of_another_strategy_is_rejected(write):
    p = one(write("s.yaml", MINIMAL + "hints:\n  strategy: s_loo\n  budget: 10\n"))
    assert p.key == "hints.budget" and p.message == "unknown key"


def test_unknown_strategy(write):
    p = one(write("s.yaml", MINIMAL + "hints:\n  strategy: csss\n"))
    assert p.key == "hints.strategy" and "'csss'" in p.message and p.hint == "did you mean 'css'?"


def test_wrong_type_says_expected_and_given(write):
    path = write("s.yaml", MINIMAL + "algorithm:\n  prompts_per_step: lots\n")
    p = one(path)
    assert p.key == "algorithm.prompts_per_step" and p.where == f"{path}:4"
    assert "valid integer" in p.message and "'lots'" in p.message


@pytest.mark.parametrize(
    "schedule, needle",
    [
        ("[{step: 100, high: 0.26}, {step: 50, high: 0.25}]", "strictly increasing"),
        ("[{step: 3000, high: 0.26}]", "must be < total_steps (2960)"),
        ("[{step: 100, high: 1.2}]", "less than 1"),
        ("[{step: 100}]", "must set `low`, `high` or both"),
        ("[{step: 0, high: 0.2}]", "greater than 0"),
    ],
)
def test_bad_clip_schedule(write, schedule, needle):
    p = one(write("s.yaml", MINIMAL + f"algorithm:\n  clip_schedule: {schedule}\n"))
    assert p.key.startswith("algorithm.clip_schedule") and needle in p.message


def test_schedule_needs_steps_not_epochs(write):
    text = MINIMAL + "algorithm:\n  total_steps: null\n  total_epochs: 3\n  clip_schedule: [{step: 5, high: 0.2}]\n"
    assert "needs `total_steps`" in one(write("s.yaml", text)).message


def test_cross_field_rules_are_each_reported_at_their_key(write):
    text = MINIMAL + (
        "model: {path: m, max_context: 1000}\n"
        "algorithm:\n  samples_per_prompt: 1\n  prompts_per_step: 100\n  mini_batch_size: 64\n"
        "  generation_batch_size: 50\n  dynamic_sampling: {enabled: true}\n"
    )
    keys = {p.key for p in problems(write("s.yaml", text.replace("name: t\nmodel: {path: some/model}\n", "name: t\n")))}
    assert keys == {"algorithm.samples_per_prompt", "algorithm.mini_batch_size", "algorithm.generation_batch_size"}


def test_prompt_and_response_must_fit_the_model_context(write):
    p = one(write("s.yaml", "name: t\nmodel: {path: m, max_context: 32768}\n"))
    assert p.key == "algorithm.max_response_length" and "exceeds model.max_context (32768)" in p.message


def test_broken_interpolation(write):
    path = write("s.yaml", MINIMAL + "seed: ${algorithm.nothing}\n")
    p = one(path)
    assert p.key == "seed" and p.where == f"{path}:3" and "interpolation failed" in p.message


def test_interpolation_works(write):
    s = load_spec(write("s.yaml", MINIMAL + "seed: 7\nalgorithm:\n  warmup_steps: ${seed}\n"))
    assert s.algorithm.warmup_steps == 7


def test_missing_extends_file(write):
    path = write("s.yaml", "extends: [nope.yaml]\n" + MINIMAL)
    p = one(path)
    assert p.key == "extends" and "nope.yaml" in p.message and p.where == f"{path}:1"


def test_extends_cycle(write):
    write("a.yaml", "extends: b.yaml\n" + MINIMAL)
    path = write("b.yaml", "extends: a.yaml\n")
    assert "cycle" in problems(path)[0].message


@pytest.mark.parametrize(
    "text, line",
    [("name: t\nmodel: {path: m\n", 3), ("name: t\n  bad: indent\n", 2), ("name: [t\n", 2), ("- a\n- b\n", 1)],
)
def test_malformed_yaml(write, text, line):
    path = write("s.yaml", text)
    p = one(path)
    assert p.where == f"{path}:{line}"
    assert "YAML" in p.message or "mapping" in p.message


def test_duplicate_keys_are_an_error(write):
    path = write("s.yaml", MINIMAL + "seed: 1\nseed: 2\n")
    p = one(path)
    assert p.key == "seed" and p.where == f"{path}:4" and "twice" in p.message


@pytest.mark.parametrize("override", ["algorithm.learning_rate", "=3", "a..b=1", "algorithm.learning_rate=[1"])
def test_bad_override_syntax(write, override):
    p = one(write("s.yaml", MINIMAL), [override])
    assert p.where and override in p.where


def test_override_errors_name_the_override(write):
    p = one(write("s.yaml", MINIMAL), ["algorithm.learning_rate=fast"])
    assert p.key == "algorithm.learning_rate" and p.where == "override #1 'algorithm.learning_rate=fast'"


def test_problems_in_base_files_point_at_the_base(write):
    base = write("base.yaml", "algorithm:\n  clip: {low: 2.0}\n")
    child = write("child.yaml", "extends: base.yaml\n" + MINIMAL + "eval: {hint_modes: [nah]}\n")
    found = {p.key: p.where for p in problems(child)}
    assert found == {"algorithm.clip.low": f"{base}:2", "eval.hint_modes.0": f"{child}:4"}


def test_all_problems_are_reported_together(write):
    text = MINIMAL + "seed: x\nalgorithm: {learning_rte: 1, loss_aggregation: mean}\nfoo: 1\neval: {hint_modes: [x]}\n"
    assert len(problems(write("s.yaml", text))) == 5


def test_missing_required_key(write):
    p = one(write("s.yaml", "name: t\n"))
    assert p.key == "model" and "missing" in p.message


def test_spec_error_is_a_knowrl_error(write):
    with pytest.raises(KnowrlError):
        load_spec(write("s.yaml", "name: t\n"))


def test_cli_exits_2_without_traceback(write):
    path = write("s.yaml", MINIMAL + "algorithm: {learning_rte: 1}\n")
    r = run_cli("validate", str(path))
    assert r.returncode == 2
    assert f"{path}:3: algorithm.learning_rte: unknown key" in r.stderr
    assert "did you mean 'learning_rate'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_debug_shows_the_traceback(write):
    r = run_cli("validate", str(write("s.yaml", "name: t\n")), env={"KNOWRL_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_cli_missing_spec_file(tmp_path):
    r = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "spec file not found" in r.stderr and "Traceback" not in r.stderr


def test_an_alias_bomb_is_refused_at_once_and_located(write):
    import tracemalloc

    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    path = write("bomb.yaml", MINIMAL + "\n".join(levels) + "\n")  # 9**9 values from ~400 bytes
    ok = write("ok.yaml", MINIMAL + "tags: &t [a, b]\ndescription: fine\n")
    assert load_spec(ok).tags == ["a", "b"]  # ordinary aliases still work (and the loader is imported)
    tracemalloc.start()
    try:
        p = one(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # it never expands the document (3 GB and 28 s before)
    assert "alias bomb" in p.message and p.where.startswith(f"{path}:")


@pytest.mark.parametrize("key", ["seed", "hints.seed", "sweep.random.seed"])
def test_seeds_a_backend_rejects_are_rejected_at_validate(write, key):
    extra = {
        "seed": "seed: -1\n",
        "hints.seed": "hints: {strategy: random, seed: 4294967296}\n",
        "sweep.random.seed": "sweep: {random: {n: 2, seed: -3, params: {seed: {choices: [1, 2]}}}}\n",
    }[key]
    p = one(write("s.yaml", MINIMAL + extra))
    assert p.key == key and "equal to" in p.message


def test_an_unknown_override_key_is_blamed_on_the_command_line(write):
    path = write("s.yaml", MINIMAL)
    p = one(path, ["seed=3", "foo.bar=1"])
    assert p.key == "foo" and p.where == "override #2 'foo.bar=1'"


def test_a_spec_error_without_listed_problems_says_what_is_wrong(write):
    assert str(SpecError([], source="sweep key a.0.b: no list item at that index")) == (
        "sweep key a.0.b: no list item at that index"
    )
    assert "0 problems" not in str(SpecError([])) and str(SpecError([]))
    path = write("s.yaml", MINIMAL + "algorithm: {clip_schedule: [{step: 5, high: 0.26}]}\n")
    path.write_text(path.read_text() + "sweep: {grid: {algorithm.clip_schedule.3.high: [0.2, 0.25]}}\n")
    r = run_cli("sweep", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: sweep key algorithm.clip_schedule.3.high: no list item at that index"
