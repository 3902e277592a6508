"""The shipped experiments: all valid, all pointing editors at the schema, the schema current."""

from __future__ import annotations

import pytest
from conftest import EXPERIMENTS, ROOT, run_cli

from knowrl.spec import load_spec, schema_text, spec_hash

SPECS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if "data" not in p.parts)


def test_the_expected_experiments_ship():
    names = {str(p.relative_to(EXPERIMENTS)) for p in SPECS}
    assert {
        "base/knowrl_nemotron_1p5b.yaml",
        "css_main.yaml",
        "cbrs_main.yaml",
        "ablations/no_kp.yaml",
        "ablations/all_kp.yaml",
        "ablations/no_annealing.yaml",
        "quickstart-tiny.yaml",
        "quickstart.yaml",
        "sweeps/clip_high.yaml",
    } <= names


@pytest.mark.parametrize("path", [p for p in SPECS if "base" not in p.parts], ids=lambda p: p.stem)
def test_every_experiment_validates(path):
    spec = load_spec(path)
    assert len(spec_hash(spec)) == 64


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_yaml_points_at_the_schema(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=")[1]).resolve()
    assert target == (ROOT / "schemas/experiment.schema.json").resolve()


def test_checked_in_schema_is_current():
    assert (ROOT / "schemas/experiment.schema.json").read_text() == schema_text(), "run `knowrl schema`"


def test_every_field_is_documented():
    from knowrl.spec import ExperimentSpec
    from knowrl.spec._docs import field_docs, models_under

    missing = [
        f"{name}.{field}"
        for name, cls in models_under(ExperimentSpec).items()
        for field in cls.model_fields
        if not field_docs(cls).get(field)
    ]
    assert missing == []


def test_paper_setup_is_declared_exactly():
    s = load_spec(EXPERIMENTS / "css_main.yaml")
    a = s.algorithm
    assert s.model.path == "nvidia/OpenMath-Nemotron-1.5B"
    assert (a.name, a.learning_rate, a.prompts_per_step, a.generation_batch_size) == ("dapo", 1e-6, 256, 512)
    assert (a.samples_per_prompt, a.max_prompt_length, a.max_response_length, a.mini_batch_size) == (8, 8192, 32768, 64)
    assert (a.loss_aggregation, a.kl_coef, a.entropy_coef, a.clip.low) == ("token-mean", 0.0, 0.0, 0.2)
    assert a.dynamic_sampling.enabled and a.dynamic_sampling.max_generation_batches == 10
    assert (a.rollout.temperature, a.rollout.top_p) == (1.0, 1.0)
    assert (a.validation.temperature, a.validation.top_p, a.validation.n) == (0.7, 0.9, 32)
    assert (a.save_every, a.validate_every, a.total_steps) == (10, 10, 2960)
    assert (s.resources.nodes, s.resources.gpus_per_node, s.resources.gpu_type) == (8, 8, "H100-80GB")
    phases = [(start, end, b.high) for start, end, b in a.phases()]
    assert phases == [(0, 2590, 0.28), (2590, 2960, 0.26)]
    assert s.hints.strategy == "css" and s.eval.hint_modes == ["none", "cbrs", "css"]
    assert s.data.prompt_suffix == "Please reason step by step, and put your final answer within \\boxed{}."


def test_ablations_differ_from_main_only_where_they_say():
    main = load_spec(EXPERIMENTS / "css_main.yaml").model_dump()
    for name, changed in {"no_kp": {"hints"}, "all_kp": {"hints"}, "no_annealing": {"algorithm"}}.items():
        other = load_spec(EXPERIMENTS / f"ablations/{name}.yaml").model_dump()
        diff = {k for k in main if main[k] != other[k]} - {"name", "description", "tags"}
        assert diff == changed, name
    assert load_spec(EXPERIMENTS / "ablations/no_kp.yaml").hints.model_dump() == {
        "source": "precomputed",
        "field": None,
        "strategy": "none",
    }


def test_cli_validate_show_and_schema(tmp_path):
    r = run_cli("validate", "experiments/css_main.yaml", "algorithm.learning_rate=2e-6", "eval.hint_modes=[none]")
    assert r.returncode == 0, r.stderr
    assert "css-main" in r.stdout
    resolved = run_cli("show", "experiments/css_main.yaml", "algorithm.learning_rate=2e-6", "--resolved")
    assert "learning_rate: 2.0e-06" in resolved.stdout
    as_json = run_cli("show", "experiments/css_main.yaml", "--json")
    import json

    assert json.loads(as_json.stdout)["algorithm"]["clip_schedule"] == [{"step": 2590, "low": None, "high": 0.26}]
    h = run_cli("show", "experiments/css_main.yaml", "--hash").stdout.strip()
    assert h == spec_hash(load_spec(EXPERIMENTS / "css_main.yaml"))
    out = tmp_path / "s.json"
    assert run_cli("schema", "--out", str(out)).returncode == 0
    assert out.read_text() == schema_text()
    assert run_cli("schema", "--check").returncode == 0


def test_validate_imports_nothing_heavy_and_scans_no_plugins():
    """`knowrl validate` is the command users run most: no heavy import, and pydantic's plugin discovery (a read of
    every installed distribution's entry points) stays off while the spec's validators build, and only then."""
    code = (
        "import os, sys; from knowrl.cli import main; rc = main(['validate', 'experiments/css_main.yaml']);"
        "heavy = [m for m in ('torch', 'ray', 'aim', 'vllm', 'transformers', 'duckdb', 'datasets')"
        " if m in sys.modules];"
        "from pydantic.plugin import _loader;"
        "off = 'PYDANTIC_DISABLE_PLUGINS' in os.environ;"
        "print('HEAVY', heavy, 'SCANNED', _loader._plugins is not None, 'OFF', off);"
        "sys.exit(rc)"
    )
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "HEAVY [] SCANNED False OFF False" in r.stdout


def test_explain_documents_keys():
    from knowrl.spec._explain import explain

    rows = {r[0]: r for r in explain("algorithm.clip")}
    assert rows["algorithm.clip.high"][1:] == ("float", "0.28", "Upper clip epsilon (DAPO's clip-higher).")
    strategy = {r[0]: r for r in explain("hints")}["hints.strategy"]
    assert "'css'" in strategy[1] and "'t_loo'" in strategy[1]
    r = run_cli("explain", "algorithm.learnig_rate")
    assert r.returncode == 2 and "did you mean 'learning_rate'?" in r.stderr
