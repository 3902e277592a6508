"""knowrl's verl handoffs against verl's own code: Hydra config, RLHFDataset, the DAPO reward manager, the merger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from knowrl.backends import get_backend, verl
from knowrl.plan import plan
from knowrl.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
CSS_MAIN = ROOT / "experiments" / "css_main.yaml"
RECIPES = Path(__file__).parent / "verl"


def _compose(checkout: Path, overrides: list[str], monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.chdir(checkout)  # the recipe's searchpath is relative to the checkout
    with initialize_config_dir(config_dir=str(checkout / "recipe" / "dapo" / "config"), version_base=None):
        return compose(config_name="dapo_trainer", overrides=overrides)


@pytest.mark.parametrize("release", ["0.4", "0.9"])
def test_every_compiled_phase_composes_strictly_with_the_release(release, verl_checkout, monkeypatch):
    """Hydra refuses an override of a key the release does not have (the 0.4/0.9 moves of seed and overlong)."""
    spec = load_spec(CSS_MAIN, ["resources.backend=verl", f"resources.backend_version={release}"])
    p = plan(spec)
    checkout = verl_checkout(release)
    for job in (j for j in p.jobs if j.kind == "train"):
        cfg = _compose(checkout, verl.render_overrides(verl.phase_overrides(job, spec, "/run")), monkeypatch)
        actor = cfg.actor_rollout_ref.actor
        assert actor.clip_ratio_high == job.params["clip_high"] and actor.clip_ratio_low == 0.2
        assert cfg.trainer.total_training_steps == job.params["end_step"]
        assert cfg.trainer.max_actor_ckpt_to_keep == spec.algorithm.keep_checkpoints
        assert cfg.data.seed == (verl.FORK_DATA_SEED if release == "0.4" else spec.seed)  # 13: the authors' order
        assert cfg.data.train_files == "/run/data/train.parquet"
        overlong = (
            cfg.reward_model.overlong_buffer if release == "0.4" else cfg.reward.reward_kwargs.overlong_buffer_cfg
        )
        reward_fn = cfg.custom_reward_function if release == "0.4" else cfg.reward.custom_reward_function
        assert overlong.enable == spec.algorithm.overlong.enabled
        assert reward_fn.path == f"/run/{verl.REWARD_FILE}" and reward_fn.name == "compute_score"
        assert "tensorboard" in cfg.trainer.logger


def test_the_09_config_passes_verls_own_validation(verl_checkout, monkeypatch):
    from omegaconf import OmegaConf
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    spec = load_spec(CSS_MAIN, ["resources.backend=verl", "resources.backend_version=0.9"])
    job = plan(spec).job("train-p2")
    cfg = _compose(verl_checkout("0.9"), verl.render_overrides(verl.phase_overrides(job, spec, "/run")), monkeypatch)
    OmegaConf.resolve(cfg)
    validate_config(cfg, use_reference_policy=False, use_critic=False)
    assert omega_conf_to_dataclass(cfg.algorithm).filter_groups.enable is True
    assert omega_conf_to_dataclass(cfg.actor_rollout_ref.actor).clip_ratio_high == 0.26
    assert omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout).val_kwargs.n == 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from knowrl.generation import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def _spec_with_local_data(tmp_path: Path, model: Path):
    data = tmp_path / "train.jsonl"
    rows = [
        {
            "problem": "What is 2 + 3?",
            "answer": "5",
            "kp_list": ["Addition adds.", "Five is 5."],
            "css_selected": ["Five is 5."],
        },
        {"problem": "What is 4 * 4?", "answer": "16", "kp_list": ["Squares."], "css_selected": []},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        "resources.backend=verl",
        "resources.backend_version=0.9",
        f"model.path={model}",
        f"data.train=[{{source: {data}, format: plain}}]",
        f"data.validation=[{{source: {data}, format: plain, name: val}}]",
        "hints.field=css",
    ]
    return load_spec(CSS_MAIN, overrides)


def test_verls_rlhf_dataset_reads_knowrls_parquet_with_the_hint_prompts(tiny, tmp_path, verl_checkout, monkeypatch):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from knowrl.backends._data import rendered_sets, write_backend_data
    from knowrl.grading._site import SITE_ENV

    monkeypatch.setenv(SITE_ENV, os.environ["KNOWRL_TEST_GRADER_SITE"])
    spec = _spec_with_local_data(tmp_path, tiny)
    run = tmp_path / "run"
    counts = write_backend_data(spec, run, get_backend("verl"))
    assert counts == {"data/train.parquet": 2, "data/validation-0.parquet": 2}
    job = plan(spec).job("train-p1")
    cfg = _compose(verl_checkout("0.9"), verl.render_overrides(verl.phase_overrides(job, spec, str(run))), monkeypatch)
    tok = AutoTokenizer.from_pretrained(tiny)
    ds = RLHFDataset(data_files=cfg.data.train_files, tokenizer=tok, config=cfg.data)
    expected = rendered_sets(spec, run)["train"]
    assert "## Hint\n1. Five is 5." in expected[0]["prompt"] and "## Hint" not in expected[1]["prompt"]
    assert len(ds) == len(expected)  # filter_overlong_prompts (on, as compiled) dropped none
    for i, row in enumerate(expected):
        item = ds[i]  # verl 0.9 hands the messages to its agent loop, which applies the chat template
        assert [dict(m) for m in item["raw_prompt"]] == [{"role": "user", "content": row["prompt"]}]
        assert item["reward_model"]["ground_truth"] == row["answer"]
        assert item["data_source"].startswith("knowrl/") and item["extra_info"]["problem_id"] == row["id"]
    assert OmegaConf.to_container(cfg.data.val_files) == [str(run / "data/validation-0.parquet")]


def test_knowrls_reward_through_verls_dapo_reward_manager(tiny, tmp_path, verl_checkout, monkeypatch):
    """verl loads the compiled reward function; its DAPO manager scores a DataProto with the grader's verdicts."""
    import numpy as np
    import torch
    from grading_cases import CASES
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.dapo import DAPORewardManager

    from knowrl.backends._data import write_backend_data
    from knowrl.grading._site import SITE_ENV

    spec = _spec_with_local_data(tmp_path, tiny)
    run, p = tmp_path / "run", plan(spec)
    monkeypatch.setenv(SITE_ENV, os.environ["KNOWRL_TEST_GRADER_SITE"])  # this env's own antlr is Hydra's 4.9
    write_backend_data(spec, run, get_backend("verl"))  # also the grading site the reward parses with
    launch = get_backend("verl").compile(p.job("train-p1"), spec, p, str(run))
    for name, text in launch.files.items():
        (run / name).write_text(text)
    for k, v in launch.runtime_env["env_vars"].items():  # what Ray gives the reward workers
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(Path(launch.runtime_env["py_modules"][0]).parent))
    cfg = _compose(
        verl_checkout("0.9"),
        verl.render_overrides(verl.phase_overrides(p.job("train-p1"), spec, str(run))),
        monkeypatch,
    )
    compute_score = get_custom_reward_fn(cfg)
    tok = AutoTokenizer.from_pretrained(tiny)
    cases = [c for c in CASES if c[3] != "timeout"]
    encoded = [tok.encode(c[1], add_special_tokens=False) for c in cases]
    assert all(tok.decode(e) == c[1] for e, c in zip(encoded, cases, strict=True))  # byte-level BPE round-trips
    width = max(len(e) for e in encoded)
    responses = torch.full((len(cases), width), tok.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros(len(cases), 1 + width, dtype=torch.long)
    mask[:, 0] = 1
    for i, e in enumerate(encoded):
        responses[i, : len(e)] = torch.tensor(e)
        mask[i, 1 : 1 + len(e)] = 1
    batch = DataProto.from_dict(
        tensors={
            "prompts": torch.ones(len(cases), 1, dtype=torch.long),
            "responses": responses,
            "attention_mask": mask,
        },
        non_tensors={
            "reward_model": np.array([{"ground_truth": c[0]} for c in cases], dtype=object),
            "data_source": np.array(["knowrl/test"] * len(cases), dtype=object),
            "extra_info": np.array([{} for _ in cases], dtype=object),
        },
    )
    off = OmegaConf.create({"enable": False, "len": 0, "penalty_factor": 0.0, "log": False})
    manager = DAPORewardManager(
        tok, num_examine=0, compute_score=compute_score, max_resp_len=width, overlong_buffer_cfg=off
    )
    out = manager(batch, return_dict=True)
    scores = out["reward_tensor"].sum(-1).tolist()
    assert scores == [1.0 if c[2] else 0.0 for c in cases]  # the table's verdicts, here beside Hydra's antlr 4.9


def test_beside_hydras_antlr_the_grader_refuses_without_its_site(tmp_path, monkeypatch):
    """Finding 14: beside Hydra's antlr4 4.9.3, math-verify grades `\\boxed{0.5}` vs `50\\%` differently."""
    from grading_cases import CASES

    from knowrl import KnowrlError
    from knowrl.grading import Grader
    from knowrl.grading._site import SITE_ENV, antlr_version

    assert antlr_version().startswith("4.9")  # this environment really is Hydra's
    monkeypatch.delenv(SITE_ENV, raising=False)
    with pytest.raises(KnowrlError, match="4.9"):
        Grader().grade_many([("50\\%", "<think>x</think> \\boxed{0.5}")])
    site = os.environ.get("KNOWRL_TEST_GRADER_SITE")
    assert site, "make contract provides an antlr 4.13.2 site"
    monkeypatch.setenv(SITE_ENV, site)
    grader = Grader()
    try:
        cases = [c for c in CASES if c[3] != "timeout"]
        verdicts = grader.grade_many([(c[0], c[1]) for c in cases])
        assert [(v.correct, v.reason) for v in verdicts] == [(c[2], c[3]) for c in cases]
    finally:
        grader.close()


def _save_fsdp_shards(rank: int, world: int, model_dir: str, out: str, port: int) -> None:
    """One rank of a real FSDP2 job on CPU (gloo) saving its shards the way verl's checkpoint manager does."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",))  # as verl names it
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        torch.save(model.state_dict(), Path(out) / f"model_world_size_{world}_rank_{rank}.pt")  # DTensor shards
    finally:
        dist.destroy_process_group()


def test_verls_merger_turns_fsdp_shards_into_the_folder_eval_loads(tiny, tmp_path):
    """The compiled 0.9 export command, run as written, on a checkpoint in verl's layout (global_step_N/actor).

    9: 0.4's is the fork's own `scripts/model_merger.py`, which needs the fork; the rehearsal runs it
    (tests/rehearsal/verl) on a checkpoint the fork's checkpoint manager wrote."""
    import socket

    import torch
    import torch.multiprocessing as mp
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    checkout = tmp_path / "checkout"  # the command runs from the checkout; here verl is this environment's own
    checkout.mkdir()
    spec = load_spec(
        CSS_MAIN,
        [
            "resources.backend=verl",
            "resources.backend_version=0.9",
            f"resources.backend_dir={checkout}",
            f"model.path={tiny}",
            "eval.checkpoints=[final]",
        ],
    )
    p = plan(spec)
    export = p.job("export-final")
    run = tmp_path / "run"
    actor = run / export.inputs["checkpoint"] / "actor"
    (actor / "huggingface").mkdir(parents=True)
    AutoConfig.from_pretrained(tiny).save_pretrained(actor / "huggingface")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(actor / "huggingface")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 2}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_save_fsdp_shards, args=(2, str(tiny), str(actor), port), nprocs=2, start_method="spawn")
    launch = get_backend("verl").compile(export, spec, p, str(run))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # python3: verl's env
    done = subprocess.run(launch.entrypoint, shell=True, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    merged = AutoModelForCausalLM.from_pretrained(run / export.outputs["model"], dtype=torch.float32)
    original = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    for (name, a), (_, b) in zip(original.state_dict().items(), merged.state_dict().items(), strict=True):
        assert torch.equal(a.to(torch.bfloat16), b.to(torch.bfloat16)), name  # the merger may save bf16
    assert AutoTokenizer.from_pretrained(run / export.outputs["model"]).chat_template


def test_training_metrics_come_back_from_the_backends_tensorboard_files(tmp_path):
    """13: what verl and NeMo-RL log through torch's SummaryWriter becomes the job's metrics.parquet."""
    import pyarrow.parquet as pq
    from torch.utils.tensorboard import SummaryWriter

    from knowrl.runtime._backend_metrics import collect

    job = tmp_path / "train-p1"
    w = SummaryWriter(log_dir=str(job / "tensorboard"))
    for step in (1, 2):
        w.add_scalar("critic/score/mean", 0.25 * step, step)
        w.add_scalar("actor/entropy", 1.5, step, new_style=True)  # the tensor-valued summary form
    w.close()
    assert collect(job, "verl", phase=1) == 8
    rows = {(r["step"], r["name"]): r["value"] for r in pq.read_table(job / "metrics.parquet").to_pylist()}
    assert rows[(2, "train/reward_after_filter")] == 0.5 and rows[(1, "verl/critic/score/mean")] == 0.25
    assert rows[(1, "train/entropy")] == 1.5
    (event,) = (job / "tensorboard").glob("events.out.tfevents.*")
    event.write_bytes(event.read_bytes()[:-7])  # a writer killed mid-record: the torn record is dropped
    assert collect(job, "verl", phase=1) == 6


def test_the_pinned_recipe_imports_against_this_verl(tmp_path):
    """8: verl-recipe at `RECIPE_PIN`, as `recipe/` beside verl 0.9.1, imports; v0.9.0's submodule e7f8895 does not.

    `KNOWRL_VERL_RECIPE_SRC` names verl-recipe's history (a clone or its git bundle), as `make contract` passes it."""
    src = os.environ.get("KNOWRL_VERL_RECIPE_SRC", "")
    if not src:
        pytest.fail("KNOWRL_VERL_RECIPE_SRC must name verl-recipe's history (a clone or a git bundle): make contract")
    recipe = tmp_path / "recipe"
    subprocess.run(["git", "clone", "--quiet", src, str(recipe)], check=True)

    def imports(commit: str) -> subprocess.CompletedProcess:
        subprocess.run(["git", "-C", str(recipe), "checkout", "--quiet", commit], check=True)
        probe = "import recipe.dapo.main_dapo, recipe.dapo.dapo_ray_trainer"  # what `python3 -m` loads first
        return subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)

    pinned = imports(verl.RECIPE_PIN)
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    old = imports("e7f8895")
    assert old.returncode != 0 and "cannot import name 'TaskRunner'" in old.stderr
    with (recipe / "dapo" / "config" / "dapo_trainer.yaml").open() as f, (RECIPES / "recipe-0.9.yaml").open() as g:
        assert yaml.safe_load(f) == yaml.safe_load(g)  # the contract's copy is the pinned recipe's config
