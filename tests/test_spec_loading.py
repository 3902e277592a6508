"""`extends`, `_replace_`, interpolation and overrides behave like Hydra/OmegaConf users expect."""

from __future__ import annotations

from conftest import MINIMAL

from knowrl.spec import load_data, load_spec


def test_extends_merges_deeply_and_later_wins(write):
    write("a.yaml", "algorithm: {learning_rate: 1.0e-5, clip: {low: 0.1, high: 0.3}}\nseed: 1\n")
    write("b.yaml", "algorithm: {clip: {high: 0.25}}\nseed: 2\n")
    child = write("c.yaml", "extends: [a.yaml, b.yaml]\n" + MINIMAL + "algorithm: {mini_batch_size: 32}\n")
    s = load_spec(child)
    assert (s.algorithm.learning_rate, s.algorithm.clip.low, s.algorithm.clip.high) == (1e-5, 0.1, 0.25)
    assert (s.seed, s.algorithm.mini_batch_size) == (2, 32)


def test_extends_paths_are_relative_to_the_naming_file(write):
    write("base/root.yaml", "seed: 5\n")
    write("base/mid.yaml", "extends: root.yaml\n")
    assert load_spec(write("deep/x/s.yaml", "extends: ../../base/mid.yaml\n" + MINIMAL)).seed == 5


def test_lists_replace_rather_than_merge(write):
    write("a.yaml", "eval: {hint_modes: [none, css, cbrs]}\n")
    spec = load_spec(write("s.yaml", "extends: a.yaml\n" + MINIMAL + "eval: {hint_modes: [all]}\n"))
    assert spec.eval.hint_modes == ["all"]


def test_replace_marker_swaps_a_whole_subtree(write):
    write("a.yaml", "hints: {strategy: css, delta: 0.1, budget: 64}\n")
    merged = write("m.yaml", "extends: a.yaml\n" + MINIMAL + "hints: {strategy: s_loo}\n")
    replaced = write("r.yaml", "extends: a.yaml\n" + MINIMAL + "hints: {_replace_: true, strategy: s_loo}\n")
    import pytest

    from knowrl._errors import SpecError

    with pytest.raises(SpecError) as e:  # merging keeps css's parameters, which s_loo does not take
        load_spec(merged)
    assert {p.key for p in e.value.problems} == {"hints.delta", "hints.budget"}
    assert load_spec(replaced).hints.strategy == "s_loo"


def test_overrides_accept_dotlist_values(write):
    path = write("s.yaml", MINIMAL)
    s = load_spec(
        path,
        [
            "algorithm.learning_rate=2e-6",
            "eval.hint_modes=[none,css]",
            "tags=[a, b]",
            "algorithm.clip={low: 0.1, high: 0.2}",
            "model.dtype=float32",
            "description='x: y'",
        ],
    )
    assert s.algorithm.learning_rate == 2e-6 and s.eval.hint_modes == ["none", "css"]
    assert (s.algorithm.clip.low, s.algorithm.clip.high) == (0.1, 0.2) and s.tags == ["a", "b"]
    assert (s.model.dtype, s.description) == ("float32", "x: y")


def test_overrides_can_create_nested_keys(write):
    s = load_spec(write("s.yaml", MINIMAL), ["algorithm.dynamic_sampling.enabled=true"])
    assert s.algorithm.dynamic_sampling.enabled


def test_scientific_notation_is_a_float(write):
    assert load_spec(write("s.yaml", MINIMAL + "algorithm: {learning_rate: 3e-6}\n")).algorithm.learning_rate == 3e-6


def test_env_interpolation(write, monkeypatch):
    monkeypatch.setenv("KNOWRL_TEST_MODEL", "my/model")
    s = load_spec(write("s.yaml", "name: t\nmodel: {path: '${oc.env:KNOWRL_TEST_MODEL}'}\n"))
    assert s.model.path == "my/model"


def test_locations_follow_extends_and_overrides(write):
    base = write("a.yaml", "seed: 1\nalgorithm:\n  learning_rate: 1.0e-5\n")
    child = write("c.yaml", "extends: a.yaml\n" + MINIMAL + "seed: 3\n")
    _, at = load_data(child, ["algorithm.mini_batch_size=8"])
    assert at["seed"] == f"{child}:4"
    assert at["algorithm.learning_rate"] == f"{base}:3"
    assert at["algorithm.mini_batch_size"].startswith("override #1")
