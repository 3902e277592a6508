"""Same experiment, same hash; any semantic change, a new hash."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import EXPERIMENTS

from knowrl.spec import load_data, load_spec, spec_hash, validate


def h(path, overrides=()):
    return spec_hash(load_spec(path, overrides))


@pytest.fixture
def css_main():
    return EXPERIMENTS / "css_main.yaml"


def test_flattening_extends_keeps_the_hash(css_main, write):
    data, _ = load_data(css_main)
    flat = write("flat.yaml", yaml.safe_dump(data, sort_keys=True))
    assert h(flat) == h(css_main)


def test_key_order_formatting_and_spelled_out_defaults_keep_the_hash(css_main, write):
    data, _ = load_data(css_main)
    reordered = dict(reversed(list(data.items())))
    as_json = write("s.json.yaml", json.dumps(reordered, indent=7))
    full = write("full.yaml", yaml.safe_dump(load_spec(css_main).model_dump(mode="json")))
    assert h(as_json) == h(full) == h(css_main)


def test_numbers_written_differently_keep_the_hash(write):
    a = write("a.yaml", "name: t\nmodel: {path: m}\nalgorithm: {learning_rate: 1.0e-6, grad_clip: 1}\n")
    b = write("b.yaml", "name: t\nmodel: {path: m}\nalgorithm: {learning_rate: 0.000001, grad_clip: 1.0}\n")
    assert h(a) == h(b)


@pytest.mark.parametrize(
    "override",
    [
        "name=other",
        "description=hello",
        "tags=[x]",
        "tracking.backend=none",
        "registry.path=/tmp/r.duckdb",
        "resources.ray_address=http://h:8265",
        "resources.storage=/scratch",
    ],
)
def test_non_semantic_fields_do_not_change_the_hash(css_main, override):
    assert h(css_main, [override]) == h(css_main)


@pytest.mark.parametrize(
    "override",
    [
        "seed=1",
        "model.path=other/model",
        "algorithm.learning_rate=2e-6",
        "algorithm.clip_schedule=[]",
        "algorithm.clip_schedule.0.high=0.25",
        "hints.strategy=cbrs",
        "hints.delta=0.1",
        "eval.hint_modes=[none]",
        "eval.sampling.temperature=0.6",
        "reward.require_think_close=false",
        "resources.nodes=4",
        "data.prompt_suffix=Answer.",
        "algorithm.dynamic_sampling.enabled=false",
        "resources.backend_overrides=[trainer.val_before_train=false]",
    ],
)
def test_semantic_changes_change_the_hash(css_main, override):
    assert h(css_main, [override]) != h(css_main)


def test_a_later_field_at_its_default_keeps_the_hashes_made_before_it(css_main):
    """`resources.backend_overrides` came after runs were hashed: without it a spec's run id is what it was
    (css_main's own is held by the plan snapshot, tests/snapshots/css_main.plan.json)."""
    from knowrl.spec._hash import canonical_json

    assert "backend_overrides" not in canonical_json(load_spec(css_main))
    assert "backend_overrides" in canonical_json(load_spec(css_main, ["resources.backend_overrides=[a=1]"]))


def test_hash_is_stable_across_processes(css_main):
    import subprocess
    import sys

    code = "from knowrl.spec import load_spec, spec_hash; print(spec_hash(load_spec('experiments/css_main.yaml')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=EXPERIMENTS.parent)
    assert out.stdout.strip() == h(css_main)


def test_validate_round_trips(css_main):
    spec = load_spec(css_main)
    assert validate(spec.model_dump(mode="json")) == spec
