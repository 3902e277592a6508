"""The handoffs to NeMo-RL and to Ray that run in knowrl's own environment (verl's own code: tests/contract).

NeMo-RL cannot be installed here, so its side is `nemo_rl_v0.7.0.yaml`, the
contract written from its source at v0.7.0 (81aa43dd); each test below names
the finding of issue #13 it holds down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from knowrl import KnowrlError
from knowrl.backends import get_backend, nemo_rl
from knowrl.plan import plan
from knowrl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
CSS_MAIN = ROOT / "experiments" / "css_main.yaml"


def _phases(backend: str, *overrides: str):
    spec = load_spec(CSS_MAIN, [f"resources.backend={backend}", *overrides])
    p = plan(spec)
    return spec, p, [j for j in p.jobs if j.kind == "train"]


def test_nemo_rl_configs_satisfy_the_v070_contract_and_keep_the_papers_protocol():
    spec, p, phases = _phases("nemo_rl")
    assert spec.resources.backend_version == "v0.7.0"
    for job in phases:
        cfg = nemo_rl.phase_config(job, spec, "/run", "/opt/nemo-rl")  # check_config passes inside
        assert isinstance(cfg["checkpointing"]["keep_top_k"], int)  # 5: null is refused by MasterConfig
        assert cfg["checkpointing"]["metric_name"] is None  # the latest checkpoint survives for the next phase
        assert cfg["data"]["train"]["split_validation_size"] == 0.0  # 8: no training prompts held out
        assert cfg["policy"]["scheduler"][0]["name"].endswith("ConstantLR")  # 9: the spec has no warmup
        assert cfg["policy"]["train_micro_batch_size"] == 1 and cfg["policy"]["sequence_packing"]["enabled"] is False
        assert cfg["policy"]["dtensor_cfg"]["activation_checkpointing"] is True  # 11: 40,960 tokens on 80 GB
        assert cfg["policy"]["logprob_chunk_size"] == nemo_rl.LOGPROB_CHUNK
        assert cfg["data"]["default"]["env_name"] == "knowrl" and cfg["env"]["knowrl"]["require_think_close"]  # 10
        assert cfg["grpo"]["skip_reference_policy_logprobs_calculation"] is True  # KL 0: no reference log-probs
        assert [d["data_path"] for d in cfg["data"]["validation"]] == [
            f"/run/data/validation-{i}.jsonl" for i in range(4)
        ]
    caps = get_backend("nemo_rl").approximations(spec)
    assert any("algorithm.validation" in n for n in caps)  # validation sampling is named, not dropped
    assert not any("require_think_close" in n for n in caps)  # knowrl's own environment: no reward approximation


def test_nemo_rl_warmup_is_the_specs_own():
    spec, _, phases = _phases("nemo_rl", "algorithm.warmup_steps=20")
    sched = nemo_rl.phase_config(phases[0], spec, "/run", "/opt")["policy"]["scheduler"]
    assert sched[0]["kwargs"]["total_iters"] == 20 and sched[-1] == {"milestones": [20]}


def test_the_nemo_rl_contract_catches_unknown_keys_wrong_types_and_inherited_settings():
    good = nemo_rl.phase_config(_phases("nemo_rl")[2][0], _phases("nemo_rl")[0], "/run", "/opt")
    for mutate, message in [
        (lambda c: c["grpo"].update(num_prompt_per_step=1), "unknown key 'grpo.num_prompt_per_step'"),
        (lambda c: c["checkpointing"].update(keep_top_k=None), "checkpointing.keep_top_k=None is not int"),
        (lambda c: c["data"]["train"].pop("split_validation_size"), "data.train.split_validation_size"),
        (lambda c: c["data"]["validation"][0].update(path="x"), "unknown key 'data.validation[].path'"),
    ]:
        bad = json.loads(json.dumps(good))
        mutate(bad)
        with pytest.raises(KnowrlError, match=message.replace("[", r"\[").replace("]", r"\]")):
            nemo_rl.check_config(bad, "v0.7.0")


def test_nemo_rl_loads_the_compiled_file_with_its_file_path_defaults(tmp_path):
    """NeMo-RL's `load_config` merges `defaults` (a path) under the file: the base must exist there."""
    from omegaconf import OmegaConf

    checkout = tmp_path / "nemo-rl"
    base = checkout / nemo_rl.contract("v0.7.0")["base_config"]
    base.parent.mkdir(parents=True)
    base.write_text("data:\n  train:\n    dataset_name: OpenMathInstruct-2\n    split_validation_size: 0.05\n")
    spec, p, phases = _phases("nemo_rl", f"resources.backend_dir={checkout}")
    launch = get_backend("nemo_rl").compile(phases[0], spec, p, "/run")
    (text,) = launch.files.values()
    cfg = yaml.safe_load(text)
    merged = OmegaConf.merge(OmegaConf.load(cfg.pop("defaults")), cfg)
    assert merged.data.train.split_validation_size == 0.0 and merged.data.train.dataset_name == "ResponseDataset"
    assert launch.entrypoint.startswith(f"cd {checkout} && uv run python -m knowrl.backends.nemo_rl_launch")


def test_knowrls_nemo_rl_environment_keeps_the_step_contract():
    from grading_cases import CASES

    from knowrl.backends import nemo_rl_env

    fields = nemo_rl.contract("v0.7.0")["environment"]["return_fields"]
    assert list(nemo_rl_env.EnvironmentReturn._fields) == fields
    env = nemo_rl_env.KnowrlEnvironment({"require_think_close": True, "timeout_s": 5.0, "num_workers": 2})
    try:
        cases = [c for c in CASES if c[3] != "timeout"][:40]
        logs = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": c[1]}] for c in cases]
        out = env.step(logs, [{"ground_truth": c[0]} for c in cases])
        assert out.rewards.tolist() == [1.0 if c[2] else 0.0 for c in cases]
        assert out.terminateds.tolist() == [1.0] * len(cases) and out.next_stop_strings == [None] * len(cases)
        assert all("extracted_answer" in m for m in out.metadata)
    finally:
        env.shutdown()


def test_submissions_a_cluster_can_place(tmp_path):
    """2, 3, 4: backend drivers ask for no GPUs; knowrl travels as py_modules; no shell syntax anywhere."""
    from knowrl.backends._submission import submission

    for backend in ("nemo_rl", "verl"):
        spec, p, _ = _phases(backend)
        for job in p.jobs:
            request, files = submission(job, spec, p, str(tmp_path))
            expected = 1 if job.kind == "eval" else 0
            assert request["entrypoint_num_gpus"] == expected, (job.id, request)
            (module,) = request["runtime_env"]["py_modules"]
            assert (Path(module) / "__init__.py").is_file() and "pip" not in request["runtime_env"]
            text = json.dumps(request) + "".join(files.values())
            assert "$RUN_DIR" not in text and "${" not in text and "HF_HOME" not in text, job.id


def test_compile_writes_a_self_contained_run_directory(tmp_path, write):
    from conftest import run_cli

    data = write("train.jsonl", json.dumps({"problem": "What is 1+1?", "answer": "2", "kp_list": ["Add."]}) + "\n")
    out = tmp_path / "compiled"
    for backend, train_file in (("verl", "data/train.parquet"), ("nemo_rl", "data/train.jsonl")):
        r = run_cli(
            "compile",
            str(CSS_MAIN),
            f"data.train=[{{source: {data}, format: plain}}]",
            "data.validation=[]",
            "hints.strategy=all",
            "--backend",
            backend,
            "--out",
            str(out / backend),
        )
        assert r.returncode == 0, r.stderr
        folder = out / backend
        assert (folder / train_file).exists() and (folder / "data/grading-site/antlr4").is_dir()
        requests = json.loads((folder / "submit.json").read_text())
        assert [q["job"] for q in requests][:3] == ["data", "train-p1", "train-p2"]
        script = (folder / "launch.sh").read_text()
        assert str(folder.absolute()) in script and "$RUN_DIR" not in script
        assert "export-final" in {q["job"] for q in requests}


STAND_IN_DAPO = """\
import json, os, sys
if __name__ == "__main__":
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "timeout": os.environ.get("KNOWRL_GRADING_TIMEOUT"),
               "path": os.environ.get("PYTHONPATH", "")}, open(os.environ["STAND_IN_RECORD"], "w"))
"""


def test_an_embedded_backend_run_never_trains_with_trl_in_its_place(tmp_path, monkeypatch):
    """12: a verl spec either runs verl's command or stops, naming what is missing."""
    from knowrl._rundir import write_manifest
    from knowrl.runtime import _jobs
    from knowrl.runtime._engine import check_backend_here

    spec, p, phases = _phases("verl", "resources.backend_dir=/nonexistent/verl")
    with pytest.raises(KnowrlError, match="cannot run on this machine: missing a verl checkout at /nonexistent/verl"):
        check_backend_here(spec, p)
    # A verl checkout whose DAPO entry point only records how it was started: the command knowrl runs is verl's.
    checkout = tmp_path / "verl"
    (checkout / "recipe/dapo").mkdir(parents=True)
    (checkout / "scripts").mkdir()
    for empty in ("recipe/__init__.py", "recipe/dapo/__init__.py", "scripts/model_merger.py"):
        (checkout / empty).write_text("")
    (checkout / "recipe/dapo/main_dapo.py").write_text(STAND_IN_DAPO)
    spec, p, phases = _phases("verl", f"resources.backend_dir={checkout}", "reward.timeout_s=9")
    check_backend_here(spec, p)  # the checkout is there and its recipe imports: nothing is missing
    monkeypatch.setenv("STAND_IN_RECORD", str(tmp_path / "record.json"))
    monkeypatch.setattr("knowrl.runtime._local_train.train_phase", lambda *a: pytest.fail("TRL ran for verl"))
    run = tmp_path / "run"
    write_manifest(run, spec, p)
    (run / "train-p1").mkdir()  # the job's folder, which the engine makes before it starts a job
    summary = _jobs.run_train(spec, phases[0], run)
    record = json.loads((tmp_path / "record.json").read_text())
    assert summary["exit_code"] == 0 and record["cwd"] == str(checkout)
    assert record["argv"] == (run / "train-p1.verl.overrides").read_text().splitlines()  # every override, as compiled
    assert f"trainer.default_local_dir={run}/checkpoints" in record["argv"] and record["timeout"] == "9.0"
    assert str(ROOT) in record["path"].split(os.pathsep)  # knowrl reaches the reward workers, as py_modules would


def test_transient_jobs_api_answers_are_retried_within_a_bound():
    from knowrl.runtime._cluster import call

    answers = iter([RuntimeError("500: No available agent to submit job, please try again later")] * 2 + ["ok"])

    def flaky():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert call(flaky, "asking", pause_s=0) == "ok"
    assert (
        call(
            lambda: (_ for _ in ()).throw(RuntimeError("Job with submission_id x already exists")),
            "submitting x",
            pause_s=0,
        )
        is None
    )  # a retried submission that went through the first time
    with pytest.raises(KnowrlError, match="kept answering"):
        call(
            lambda: (_ for _ in ()).throw(RuntimeError("No available agent to submit job")),
            "asking",
            timeout_s=0.05,
            pause_s=0.01,
        )
    with pytest.raises(ValueError):  # anything else is not retried
        call(lambda: (_ for _ in ()).throw(ValueError("bad")), "asking", pause_s=0)


def test_trl_trains_each_local_phase_in_float32_without_recomputation(tmp_path, tiny_model):
    """TRL's own defaults are bf16 and gradient checkpointing: on a CPU the first autocasts every matmul to a
    reference bfloat16 GEMM, the second recomputes each forward (a quickstart step took 545-605 s; 59-83 s without)."""
    from knowrl.runtime._local_train import grpo_config

    spec = load_spec(ROOT / "experiments" / "quickstart-tiny.yaml", [f"model.path={tiny_model}"])
    phases = [j for j in plan(spec).jobs if j.kind == "train"]
    configs = [grpo_config(spec, j.params, tmp_path / "trl") for j in phases]
    assert len(configs) == 2
    assert [(c.bf16, c.fp16, c.gradient_checkpointing, c.use_cpu) for c in configs] == [(False, False, False, True)] * 2
    assert [(c.max_steps, c.epsilon_high) for c in configs] == [
        (j.params["end_step"], j.params["clip_high"]) for j in phases
    ]
