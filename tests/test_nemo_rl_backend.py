"""NeMo-RL v0.7.0 handoffs that stop a run between the contract's checks (issue #20, findings 5-7, 11).

Each holds what NeMo-RL's own source does at 81aa43dd: `init_ray` inside a
Ray job (virtual_cluster.py), `validate()`'s batch count (grpo.py), the Python
its environment actors run in (ray_actor_environment_registry.py), the
`skip_special_tokens=True` decode (experience/rollouts.py) and how
CheckpointManager marks a step complete (utils/checkpoint.py). The same code
paths run for real in the rehearsal (tests/rehearsal/nemo_rl).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
from conftest import think_tokenizer_model

from knowrl import KnowrlError
from knowrl.backends import nemo_rl
from knowrl.plan import plan
from knowrl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
CSS_MAIN = ROOT / "experiments" / "css_main.yaml"


def _spec(*overrides: str):
    spec = load_spec(CSS_MAIN, ["resources.backend=nemo_rl", *overrides])
    return spec, plan(spec)


# --- finding 5: NeMo-RL's init_ray inside the training job -------------------------------------------------------

INIT_RAY = """
import os, ray
from knowrl.backends.nemo_rl_launch import driver_environment
driver_environment()  # what the compiled launch does before NeMo-RL's script
# nemo_rl/distributed/virtual_cluster.py, init_ray(), v0.7.0: the driver passes its whole environment on.
env_vars = dict(os.environ)
env_vars.pop("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES", None)
ray.init(address="auto", log_to_driver=True, include_dashboard=False, runtime_env={"env_vars": env_vars})

@ray.remote
def actor_side():  # what an environment actor of this job sees
    import knowrl.backends.nemo_rl_env  # noqa: F401  (py_modules survived the merge)
    return os.environ["KNOWRL_GRADER_SITE"]

@ray.remote(num_gpus=1)
class GpuWorker:  # a policy or vLLM worker of the job, on one of the placement group's GPUs
    def gpus(self):
        return ray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

print("actor sees", ray.get(actor_side.remote()))
print("gpu worker sees", ray.get(GpuWorker.remote().gpus.remote()))
"""


RAY_HEAD_GPUS = 2
RAY_HEAD_ENV = {
    # Ray 2.55.1 (NeMo-RL v0.7.0's uv.lock) sets CUDA_VISIBLE_DEVICES="" in processes given no GPUs; Ray 2.60 no
    # longer does by default.
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1",
}
"""The conftest's `ray_head`, set to behave as NeMo-RL's pinned Ray where they differ."""


def _retrying(fn, timeout_s: float = 600):
    """fn(), again while a loaded head's dashboard is not ready: it drops connections ("Remote end closed connection
    without response") or answers 500 while its job agent starts (minutes when this 2-core machine is busy)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except (requests.exceptions.ConnectionError, RuntimeError, KnowrlError) as e:
            transient = isinstance(e, requests.exceptions.ConnectionError) or "500" in str(e)
            if time.monotonic() > deadline or not transient:
                raise
            time.sleep(2)


def test_nemo_rls_init_ray_joins_the_training_jobs_runtime_env(ray_head, tmp_path):
    """Ray refuses to merge the job's env vars with init_ray's unless RAY_OVERRIDE_JOB_RUNTIME_ENV=1 (finding 5);
    the driver of a job with entrypoint resources has CUDA_VISIBLE_DEVICES="", which init_ray would hand to every GPU
    worker of the job (Ray then fails to set up their GPUs) unless the launch clears it first."""
    from knowrl.backends._submission import submission
    from knowrl.runtime._cluster import ACTIVE, call, client

    spec, p = _spec("resources.nodes=1", "resources.gpus_per_node=2")
    request, _ = submission(p.job("train-p1"), spec, p, str(tmp_path), attempt=int(time.time() * 1000))
    script = tmp_path / "init_ray.py"
    script.write_text(INIT_RAY)
    request["entrypoint"] = f"{sys.executable} {script}"  # NeMo-RL's own call, in the compiled job's runtime env
    c, sid = client(ray_head), request["submission_id"]
    _retrying(lambda: call(lambda: c.submit_job(**request), "submitting"))  # a resubmission "already exists"
    deadline = time.monotonic() + 300
    while (status := str(_retrying(lambda: c.get_job_status(sid))).split(".")[-1]) in ACTIVE:
        assert time.monotonic() < deadline, _retrying(lambda: c.get_job_logs(sid))
        time.sleep(1)
    logs = _retrying(lambda: c.get_job_logs(sid))
    assert status == "SUCCEEDED", logs
    assert f"actor sees {tmp_path}/data/grading-site" in logs
    assert "gpu worker sees ([0], '0')" in logs or "gpu worker sees ([1], '1')" in logs


def test_the_launch_clears_only_an_empty_cuda_visible_devices(monkeypatch):
    from knowrl.backends.nemo_rl_launch import driver_environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    driver_environment()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    driver_environment()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_the_training_env_carries_nemo_rls_own_job_settings():
    spec, p = _spec()
    launch = nemo_rl.compile_train(p.job("train-p1"), spec, p, "/run")
    env = launch.runtime_env["env_vars"]
    assert env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] == "1"  # default_runtime_env.yaml
    assert env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"  # docker/Dockerfile: the `uv run` driver's actors stay put
    assert launch.runtime_env["py_modules"]  # knowrl still reaches every actor


# --- finding 6: validate() over every validation problem --------------------------------------------------------


def test_validation_takes_every_problem_of_the_specs_validation_sets():
    """validate() runs `max_val_samples // val_batch_size` batches of the validation loader (grpo.py ~3164)."""
    small = ("algorithm.prompts_per_step=4", "algorithm.generation_batch_size=8", "algorithm.mini_batch_size=2")
    for overrides in ((), small):
        spec, p = _spec(*overrides)
        for job in (j for j in p.jobs if j.kind == "train"):
            g = nemo_rl.phase_config(job, spec, "/run", "/opt/nemo-rl")["grpo"]
            assert isinstance(g["max_val_samples"], int) and isinstance(g["val_batch_size"], int)
            for problems in (120, 30 * 4 + 500, 10**6):  # the paper's four 30-problem sets, and larger ones
                assert g["max_val_samples"] // g["val_batch_size"] >= math.ceil(problems / g["val_batch_size"])


def test_the_contract_refuses_a_null_validation_bound():
    spec, p = _spec()
    cfg = nemo_rl.phase_config(p.job("train-p1"), spec, "/run", "/opt/nemo-rl")
    cfg["grpo"]["max_val_samples"] = None
    with pytest.raises(KnowrlError, match=r"grpo.max_val_samples=None is not int"):
        nemo_rl.check_config(cfg, "v0.7.0")


# --- finding 7: knowrl's reward environment in NeMo-RL's Python ------------------------------------------------


def _requirement_check(spec, needle: str) -> tuple[str, str]:
    (check,) = [c for c in nemo_rl.requirements(spec) if needle in c[0]]
    return check


def test_the_reward_packages_are_knowrls_own_requirements():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in nemo_rl.REWARD_PACKAGES.values():
        assert any(d.startswith(requirement.split(">")[0]) and requirement.split(">", 1)[1] in d for d in deps)


def test_the_preflight_names_what_to_pip_install_where_the_reward_actor_runs(tmp_path):
    """The check runs `uv run python` in the checkout -- the Python NeMo-RL starts knowrl's actor with -- and fails,
    naming the pip command, exactly when that Python cannot import pebble."""
    checkout, bin_dir, no_pebble = tmp_path / "nemo-rl", tmp_path / "bin", tmp_path / "no-pebble"
    (checkout / "examples").mkdir(parents=True)
    (checkout / "examples" / "run_grpo.py").write_text("")
    bin_dir.mkdir()
    uv = f'#!/bin/sh\n[ "$1" = run ] && shift\n[ "$1" = python ] && shift\nexec {sys.executable} "$@"\n'
    (bin_dir / "uv").write_text(uv)  # `uv run python ARGS` as the checkout's environment runs it
    (bin_dir / "uv").chmod(0o755)
    (no_pebble / "pebble").mkdir(parents=True)
    (no_pebble / "pebble" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pebble'\")\n")
    spec, _ = _spec(f"resources.backend_dir={checkout}")
    command, missing = _requirement_check(spec, "import pebble")
    assert "pip install 'pebble>=5'" in missing and str(checkout) in missing

    def run(pythonpath: str) -> int:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": pythonpath}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True).returncode

    assert run("") == 0
    assert run(str(no_pebble)) != 0


def test_a_tokenizer_with_a_special_think_close_is_refused_for_nemo_rl(tiny_model, tmp_path):
    """NeMo-RL decodes responses with skip_special_tokens=True: a special </think> would make every reward 0."""
    ordinary = think_tokenizer_model(tiny_model, tmp_path / "ordinary", special=False)
    special = think_tokenizer_model(tiny_model, tmp_path / "special", special=True)
    nemo_rl.check_tokenizer(_spec(f"model.path={ordinary}")[0])
    with pytest.raises(KnowrlError, match="marks </think> as a special token, which NeMo-RL strips"):
        nemo_rl.check_tokenizer(_spec(f"model.path={special}")[0])
    nemo_rl.check_tokenizer(_spec(f"model.path={special}", "reward.require_think_close=false")[0])


# --- finding 11: which checkpoint NeMo-RL holds as complete ------------------------------------------------------


def _save(run: Path, step: int, name: str | None = None, info: dict | None = None) -> Path:
    """A step directory as CheckpointManager lays it out (init_tmp_checkpoint, then the policy's files)."""
    d = run / "checkpoints" / (name or f"step_{step}")
    (d / "policy" / "weights" / "model").mkdir(parents=True)
    (d / "policy" / "weights" / "model" / ".metadata").write_bytes(b"dcp")
    base = {"consumed_samples": 4 * step, "current_step": step, "current_epoch": 0, "total_valid_tokens": 9}
    (d / "training_info.json").write_text(json.dumps(info if info is not None else {**base, "total_steps": step}))
    (d / "config.yaml").write_text("grpo: {}\n")
    return d


def test_checkpoint_done_means_a_finalized_step_of_that_number(tmp_path):
    run = tmp_path / "run"
    _save(run, 2, name="tmp_step_2")  # written, not yet renamed by finalize_checkpoint: torn by a kill
    assert not nemo_rl.checkpoint_done(run, 2)
    _save(run, 2)
    assert nemo_rl.checkpoint_done(run, 2)
    assert not nemo_rl.checkpoint_done(run, 3)
    _save(run, 4, name="old_step_4")  # finalize moved the previous step_4 aside and died before the rename
    assert not nemo_rl.checkpoint_done(run, 4)
    (_save(run, 5) / "training_info.json").write_text('{"total_ste')  # unreadable training info
    assert not nemo_rl.checkpoint_done(run, 5)
    _save(run, 6, info={"total_steps": 5})
    assert not nemo_rl.checkpoint_done(run, 6)
    assert nemo_rl.checkpoint_dir(2) == "checkpoints/step_2"  # where phase_config points checkpointing.checkpoint_dir


def test_backend_overrides_follow_the_config_on_run_grpos_command_line():
    """`resources.backend_overrides`: run_grpo.py applies them over the compiled config (parse_hydra_overrides)."""
    spec, p = _spec("resources.backend_overrides=[policy.generation.vllm_cfg.gpu_memory_utilization=0.5]")
    argv = shlex.split(nemo_rl.compile_train(p.job("train-p1"), spec, p, "/run").entrypoint.split("&&", 1)[1])
    assert argv[argv.index("--config") + 2 :] == ["policy.generation.vllm_cfg.gpu_memory_utilization=0.5"]
