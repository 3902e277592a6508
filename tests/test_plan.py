"""Planner, backends and sweeps: snapshots of css_main, loader semantics, edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, MINIMAL, run_cli, snapshot

from knowrl import KnowrlError
from knowrl.backends import get_backend
from knowrl.plan import PlanError, expand, plan
from knowrl.spec import load_data, load_spec

RUN = "/runs/css-main"


def test_a_missing_or_changed_snapshot_fails_and_only_the_flag_writes_it(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="snapshot new.json is missing"):
        snapshot("new.json", "{}\n", update=False, folder=tmp_path)
    assert not (tmp_path / "new.json").exists()
    snapshot("new.json", "{}\n", update=True, folder=tmp_path)
    assert (tmp_path / "new.json").read_text() == "{}\n"
    snapshot("new.json", "{}\n", update=False, folder=tmp_path)
    with pytest.raises(AssertionError, match="new.json changed"):
        snapshot("new.json", "[]\n", update=False, folder=tmp_path)


@pytest.fixture(scope="module")
def css():
    spec = load_spec(EXPERIMENTS / "css_main.yaml")
    return spec, plan(spec)


def test_plan_snapshot(css):
    snapshot("css_main.plan.json", json.dumps(css[1].to_dict(), indent=2) + "\n")


def test_plan_shape(css):
    spec, p = css
    kinds = [j.kind for j in p.jobs]
    assert kinds == ["data", "train", "train", "export"] + ["eval"] * 24
    p1, p2 = p.job("train-p1"), p.job("train-p2")
    assert (p1.params["start_step"], p1.params["end_step"], p1.params["clip_high"]) == (0, 2590, 0.28)
    assert (p2.params["start_step"], p2.params["end_step"], p2.params["clip_high"]) == (2590, 2960, 0.26)
    assert p2.depends_on == ["train-p1"] and p2.inputs["resume_from"] == "checkpoints/step_2590"
    assert p1.inputs["checkpoints"] == p2.inputs["checkpoints"] == "checkpoints"
    assert p1.resources.gpus == 64
    assert p1.depends_on == ["data"] and p.job("export-final").depends_on == ["train-p2"]
    assert p.job("export-final").inputs == {"checkpoint": "checkpoints/step_2960"}
    evals = [j for j in p.jobs if j.kind == "eval"]
    assert all(j.depends_on == ["export-final"] and j.resources.gpus == 1 for j in evals)
    assert {j.inputs["model"] for j in evals} == {"models/final"}  # the exported folder, never raw shards
    assert {(j.params["benchmark"], j.params["hint_mode"]) for j in evals} >= {("AIME24", "css"), ("MATH-500", "none")}
    assert 15_000 < p.total_gpu_hours < 30_000  # the paper: ~13 days on 64 H100 ~ 20k GPU-hours
    assert plan(spec).to_dict() == p.to_dict()  # stable ids and figures


def test_assumptions_can_be_overridden(css):
    spec, p = css
    faster = plan(spec, {"gen_tokens_per_gpu_s": 9000, "train_tokens_per_gpu_s": 16000})
    assert faster.total_gpu_hours == pytest.approx(p.total_gpu_hours / 2, rel=0.01)


def nemo_rl_load(path: Path) -> dict:
    """NeMo-RL's documented loader: `defaults` is a base config file (relative paths from the config's folder),
    merged under the file (the file wins), then `${...}` interpolations are resolved."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    if "defaults" in cfg:
        base_path = Path(cfg.pop("defaults"))
        base_path = base_path if base_path.is_absolute() else path.parent / base_path
        cfg = OmegaConf.merge(nemo_rl_load_raw(base_path), cfg)
    return OmegaConf.to_container(cfg, resolve=True)


def nemo_rl_load_raw(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.load(path)


BASE_GRPO = """\
grpo: {num_prompts_per_step: 32, num_generations_per_prompt: 16, max_num_steps: 1000000, max_num_epochs: 1,
       val_period: 10, seed: 42, use_dynamic_sampling: false}
loss_fn: {reference_policy_kl_penalty: 0.01, ratio_clip_min: 0.2, ratio_clip_max: 0.2, ratio_clip_c: null,
          token_level_loss: true}
checkpointing: {enabled: true, checkpoint_dir: results/grpo, save_period: 10}
policy:
  model_name: Qwen/Qwen2.5-1.5B
  tokenizer: {name: "${policy.model_name}"}
  max_total_sequence_length: 512
  generation: {backend: vllm, max_new_tokens: "${policy.max_total_sequence_length}", temperature: 1.0}
cluster: {gpus_per_node: 1, num_nodes: 1}
"""


def test_nemo_rl_configs_load_with_nemo_rl_semantics(css, tmp_path):
    spec, p = css
    checkout = tmp_path / "nemo-rl"
    (checkout / "examples/configs").mkdir(parents=True)
    (checkout / "examples/configs/grpo_math_1B.yaml").write_text(BASE_GRPO)
    spec = load_spec(EXPERIMENTS / "css_main.yaml", [f"resources.backend_dir={checkout}"])
    backend = get_backend("nemo_rl")
    loaded = {}
    for job_id in ("train-p1", "train-p2"):
        launch = backend.compile(p.job(job_id), spec, p, RUN)
        ((name, text),) = launch.files.items()
        (tmp_path / name).write_text(text)
        loaded[job_id] = nemo_rl_load(tmp_path / name)
        assert launch.entrypoint.endswith(f"nemo_rl_launch examples/run_grpo.py --config {RUN}/{name}")
    one, two = loaded["train-p1"], loaded["train-p2"]
    assert (one["grpo"]["max_num_steps"], two["grpo"]["max_num_steps"]) == (2590, 2960)
    assert (one["loss_fn"]["ratio_clip_max"], two["loss_fn"]["ratio_clip_max"]) == (0.28, 0.26)
    assert one["loss_fn"]["ratio_clip_min"] == two["loss_fn"]["ratio_clip_min"] == 0.2
    assert one["checkpointing"]["checkpoint_dir"] == two["checkpointing"]["checkpoint_dir"] == f"{RUN}/checkpoints"
    assert one["grpo"]["use_dynamic_sampling"] and one["grpo"]["batch_multiplier"] == 2.0
    assert one["policy"]["tokenizer"]["name"] == "nvidia/OpenMath-Nemotron-1.5B"
    assert one["policy"]["generation"]["max_new_tokens"] == 32768  # the file overrides the base's interpolation
    assert one["policy"]["train_global_batch_size"] == 64 * 8 and one["cluster"] == {"num_nodes": 8, "gpus_per_node": 8}
    assert one["loss_fn"]["reference_policy_kl_penalty"] == 0.0 and one["grpo"]["val_at_start"] is True
    assert two["grpo"]["val_at_start"] is False


def test_nemo_rl_snapshots(css):
    spec, p = css
    backend = get_backend("nemo_rl")
    for job_id in ("train-p1", "train-p2"):
        ((name, text),) = backend.compile(p.job(job_id), spec, p, RUN).files.items()
        snapshot(f"css_main.{name}", text)


def test_verl_overrides_parse_back(css):
    from omegaconf import OmegaConf

    spec, p = css
    spec_verl = load_spec(EXPERIMENTS / "css_main.yaml", ["resources.backend=verl"])
    p_verl = plan(spec_verl)
    backend = get_backend("verl")
    for job_id, end, high in (("train-p1", 2590, 0.28), ("train-p2", 2960, 0.26)):
        launch = backend.compile(p_verl.job(job_id), spec_verl, p_verl, RUN)
        text = launch.files[f"{job_id}.verl.overrides"]
        snapshot(f"css_main.{job_id}.verl.overrides", text)
        cfg = OmegaConf.to_container(OmegaConf.from_dotlist(text.splitlines()))
        a = cfg["actor_rollout_ref"]
        assert cfg["trainer"]["total_training_steps"] == end and a["actor"]["clip_ratio_high"] == high
        assert a["actor"]["clip_ratio_low"] == 0.2 and a["actor"]["optim"]["lr"] == 1e-6
        assert (cfg["data"]["train_batch_size"], cfg["data"]["gen_batch_size"]) == (256, 512)
        assert (cfg["data"]["max_prompt_length"], cfg["data"]["max_response_length"]) == (8192, 32768)
        assert a["rollout"]["n"] == 8 and a["rollout"]["val_kwargs"] == {
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": -1,
            "do_sample": True,
            "n": 32,
        }
        assert cfg["algorithm"]["filter_groups"] == {"enable": True, "metric": "seq_reward", "max_num_gen_batches": 10}
        assert a["actor"]["loss_agg_mode"] == "token-mean" and a["actor"]["use_kl_loss"] is False
        assert (cfg["trainer"]["nnodes"], cfg["trainer"]["n_gpus_per_node"]) == (8, 8)
        assert cfg["trainer"]["resume_mode"] == "auto" and cfg["trainer"]["default_local_dir"] == f"{RUN}/checkpoints"
        assert "recipe.dapo.main_dapo" in launch.entrypoint and "data/knowrl_reward.py" in launch.files


def spec_with(write, text, *overrides):
    return load_spec(write("s.yaml", MINIMAL + "data: {train: [{source: t.jsonl}]}\n" + text), overrides)


def test_no_schedule_is_one_phase(write):
    p = plan(spec_with(write, "algorithm: {total_steps: 100}\n"))
    assert [j.id for j in p.jobs if j.kind == "train"] == ["train-p1"]
    assert p.phases == [{"phase": 1, "steps": [0, 100], "clip_low": 0.2, "clip_high": 0.28}]


def test_several_breakpoints(write):
    s = spec_with(
        write, "algorithm: {total_steps: 100, clip_schedule: [{step: 30, high: 0.27}, {step: 60, low: 0.1}]}\n"
    )
    p = plan(s)
    assert [(ph["steps"], ph["clip_low"], ph["clip_high"]) for ph in p.phases] == [
        ([0, 30], 0.2, 0.28),
        ([30, 60], 0.2, 0.27),
        ([60, 100], 0.1, 0.27),
    ]
    assert p.job("train-p3").depends_on == ["train-p2"]


def test_breakpoints_on_and_off_save_boundaries(write):
    on = plan(
        spec_with(
            write,
            "algorithm: {total_steps: 100, save_every: 10, clip_schedule: [{step: 50, high: 0.2}]}\n",
            "eval.checkpoints=[50, final]",
        )
    )
    assert {j.inputs["model"] for j in on.jobs if j.kind == "eval"} == {"models/50", "models/final"}
    assert {j.inputs["checkpoint"] for j in on.jobs if j.kind == "export"} == {
        "checkpoints/step_50",
        "checkpoints/step_100",
    }
    off = plan(
        spec_with(
            write,
            "algorithm: {total_steps: 100, save_every: 10, clip_schedule: [{step: 55, high: 0.2}]}\n",
            "eval.checkpoints=[55]",
        )
    )
    assert {j.inputs["checkpoint"] for j in off.jobs if j.kind == "export"} == {"checkpoints/step_55"}  # a phase end
    with pytest.raises(PlanError, match="deleted before it can be exported"):  # 5 newer saves, 3 kept
        plan(spec_with(write, "algorithm: {total_steps: 100, save_every: 10}\n", "eval.checkpoints=[40]"))
    kept = plan(
        spec_with(
            write, "algorithm: {total_steps: 100, save_every: 10, keep_checkpoints: 7}\n", "eval.checkpoints=[40]"
        )
    )
    assert kept.job("export-40").inputs == {"checkpoint": "checkpoints/step_40"}  # still there when exported
    with pytest.raises(PlanError, match="never saved"):
        plan(spec_with(write, "algorithm: {total_steps: 100, save_every: 10}\n", "eval.checkpoints=[45]"))


def test_packing_and_capability_errors(write):
    with pytest.raises(PlanError, match="tensor_parallel"):
        plan(spec_with(write, "resources: {gpus_per_node: 2}\n", "eval.tensor_parallel=4"))
    with pytest.raises(PlanError, match=r"local backend .*resources.nodes=2"):
        plan(
            spec_with(write, "resources: {backend: local, nodes: 2, gpus_per_node: 0}\n", "eval.generator=transformers")
        )
    with pytest.raises(PlanError, match="seq-mean-token-sum"):
        plan(spec_with(write, "algorithm: {loss_aggregation: seq-mean-token-sum}\n"))
    verl = spec_with(write, "algorithm: {loss_aggregation: seq-mean-token-sum}\nresources: {backend: verl}\n")
    p = plan(verl)  # verl has the aggregation NeMo-RL lacks, and is given it
    text = get_backend("verl").compile(p.job("train-p1"), verl, p, RUN).files["train-p1.verl.overrides"]
    assert "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum" in text.splitlines()


def epochs_spec(write, problems: int, *overrides):
    """A local spec over `problems` training problems, trained for a number of epochs (no step count)."""
    rows = "".join(json.dumps({"problem": f"{i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(problems))
    data = write("train.jsonl", rows)
    text = (
        f"name: t\nmodel: {{path: some/model}}\ndata: {{train: [{{source: {data}, format: plain}}]}}\n"
        "algorithm: {total_steps: null, prompts_per_step: 4, mini_batch_size: 2, dynamic_sampling: {enabled: false},"
        " overlong: {enabled: false}}\n"
        "eval: {enabled: false}\nresources: {backend: local, nodes: 1, gpus_per_node: 0, gpu_type: none}\n"
    )
    return load_spec(write("e.yaml", text), list(overrides))


def test_local_backend_trains_total_epochs_in_its_own_steps(write):
    # 10 problems, 4 prompts a generation: TRL drops the incomplete third batch, so an epoch is 2 generations,
    # each 4 // 2 = 2 optimizer steps; 3 epochs are 12 steps.
    p = plan(epochs_spec(write, 10, "algorithm.total_epochs=3"))
    (train,) = [j for j in p.jobs if j.kind == "train"]
    assert (train.params["start_step"], train.params["end_step"]) == (0, 12)
    assert train.outputs["checkpoint"] == "checkpoints/step_12" and p.phases[0]["steps"] == [0, 12]
    limited = plan(epochs_spec(write, 10, "algorithm.total_epochs=3", "data.train.0.limit=4"))
    assert limited.job("train-p1").params["end_step"] == 6  # the source's limit is what is trained on


def test_total_epochs_that_make_no_step_are_refused(write):
    with pytest.raises(PlanError, match=r"total_epochs=2 over 3 training problems is no training step"):
        plan(epochs_spec(write, 3, "algorithm.total_epochs=2"))
    for backend in ("nemo_rl", "verl"):  # they refuse epochs at plan time, as before
        with pytest.raises(PlanError, match=r"total_epochs"):
            gpus = ["resources.gpus_per_node=8", "resources.gpu_type=H100-80GB"]
            plan(epochs_spec(write, 10, "algorithm.total_epochs=1", f"resources.backend={backend}", *gpus))


def test_computed_hints_add_a_selection_job():
    p = plan(load_spec(EXPERIMENTS / "quickstart-tiny.yaml"))
    assert p.jobs[0].id == "kp_select" and p.job("train-p1").depends_on == ["kp_select"]
    assert p.total_gpu_hours == 0  # the local backend runs on CPUs


def sweep_points(write, sweep):
    path = write("s.yaml", MINIMAL + sweep)
    return expand(load_spec(path), load_data(path)[0])


def test_grid_zip_and_names(write):
    pts = sweep_points(
        write,
        "sweep:\n  grid: {seed: [1, 2, 3], algorithm.learning_rate: [1.0e-6, 2.0e-6]}\n"
        "  zip: {algorithm.clip.high: [0.25, 0.3], algorithm.clip.low: [0.1, 0.2]}\n",
    )
    assert len(pts) == 12
    assert pts[0].name == "t/seed=1,learning_rate=1e-06,high=0.25,low=0.1"
    assert pts[0].spec.algorithm.clip.high == 0.25 and pts[0].spec.sweep is None
    assert len({p.spec_hash for p in pts}) == 12


def test_points_write_their_own_copies_and_leave_the_data_as_it_was(write):
    """A point copies only what it sets; the rest of the spec's data is shared, so a write must never reach it."""
    import copy
    import gc

    path = write(
        "s.yaml",
        MINIMAL + "algorithm:\n  clip_schedule: [{step: 5, high: 0.26}]\n"
        "sweep:\n  grid: {algorithm.clip_schedule.0.high: [0.25, 0.27], algorithm.clip.high: [0.3, 0.31], "
        "eval.sampling.top_p: [0.5]}\n",
    )
    data = load_data(path)[0]
    before = copy.deepcopy(data)
    pts = expand(load_spec(path), data)
    assert data == before
    assert gc.isenabled()  # paused while the points were built, and only then
    got = [
        (p.spec.algorithm.clip_schedule[0].high, p.spec.algorithm.clip.high, p.spec.eval.sampling.top_p) for p in pts
    ]
    assert got == [(0.25, 0.3, 0.5), (0.25, 0.31, 0.5), (0.27, 0.3, 0.5), (0.27, 0.31, 0.5)]
    assert {p.spec.algorithm.clip_schedule[0].step for p in pts} == {5}


def test_zip_length_mismatch_is_a_spec_error(write):
    with pytest.raises(KnowrlError, match="equal lengths"):
        load_spec(write("s.yaml", MINIMAL + "sweep: {zip: {seed: [1, 2], algorithm.grad_clip: [1.0]}}\n"))


def test_unknown_sweep_keys_are_spec_errors(write):
    with pytest.raises(KnowrlError, match="did you mean 'learning_rate'"):
        load_spec(write("s.yaml", MINIMAL + "sweep: {grid: {algorithm.learning_rte: [1.0e-6]}}\n"))


def test_random_is_reproducible(write):
    text = (
        "sweep:\n  random:\n    n: 5\n    seed: 7\n    params:\n"
        "      algorithm.learning_rate: {low: 1.0e-7, high: 1.0e-5, log: true}\n"
        "      algorithm.samples_per_prompt: {choices: [4, 8, 16]}\n"
    )
    a, b = sweep_points(write, text), sweep_points(write, text)
    assert [p.changes for p in a] == [p.changes for p in b] and len(a) == 5
    assert all(1e-7 <= p.spec.algorithm.learning_rate <= 1e-5 for p in a)


def test_equal_points_are_merged(write):
    pts = sweep_points(write, "sweep: {grid: {algorithm.grad_clip: [1.0, 1, 2.0]}}\n")
    assert len(pts) == 2 and pts[0].duplicates == ["t/grad_clip=1"]


def test_cli_plan_compile_sweep(tmp_path):
    r = run_cli("plan", "experiments/css_main.yaml", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_gpu_hours"] > 0
    table = run_cli("plan", "experiments/css_main.yaml", "--assume", "gen_tokens_per_gpu_s=9000")
    assert "train-p2" in table.stdout and "phase 2: steps 2590..2960" in table.stdout
    assert "gen_tokens_per_gpu_s=9000" in table.stdout and "approximation" in table.stdout
    c = run_cli("compile", "experiments/css_main.yaml", "--backend", "verl", "--out", str(tmp_path / "c"))
    assert c.returncode == 0, c.stderr
    launch = (tmp_path / "c/launch.sh").read_text()
    assert launch.index("train-p1") < launch.index("train-p2") < launch.index("eval-final")
    assert (tmp_path / "c/train-p2.verl.overrides").exists()
    s = run_cli("sweep", "experiments/sweeps/clip_high.yaml", "--json")
    rows = json.loads(s.stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"new"}
    bad = run_cli("sweep", "experiments/css_main.yaml")
    assert bad.returncode == 2 and "declares no sweep" in bad.stderr


def test_a_changed_sweep_is_refused_unless_forced(tmp_path, write):
    sweep = (
        MINIMAL + f"resources: {{backend: local, nodes: 1, gpus_per_node: 0, gpu_type: none, storage: {tmp_path}}}\n"
    )
    sweep += f"tracking: {{backend: none}}\nregistry: {{path: {tmp_path}/r.duckdb}}\n"
    write("a.yaml", sweep + "eval: {enabled: false}\nsweep: {grid: {seed: [1]}}\n")
    write("b.yaml", sweep + "eval: {enabled: false}\nsweep: {grid: {seed: [1, 2]}}\n")
    first = run_cli("sweep", str(tmp_path / "a.yaml"), "--run")
    assert first.returncode == 0, first.stderr  # nothing to train or evaluate: the points finish at once
    record = json.loads((tmp_path / "sweeps/t.json").read_text())
    assert record["definition"]["grid"] == {"seed": [1]}
    changed = run_cli("sweep", str(tmp_path / "b.yaml"), "--run")
    assert changed.returncode == 2 and "another definition" in changed.stderr and "--force" in changed.stderr
    assert run_cli("sweep", str(tmp_path / "b.yaml"), "--run", "--force").returncode == 0


def test_sweep_points_run_in_parallel_processes(tmp_path, write):
    sweep = (
        MINIMAL + f"resources: {{backend: local, nodes: 1, gpus_per_node: 0, gpu_type: none, storage: {tmp_path}}}\n"
    )
    sweep += f"tracking: {{backend: none}}\nregistry: {{path: {tmp_path}/r.duckdb}}\neval: {{enabled: false}}\n"
    path = write("p.yaml", sweep + "sweep: {grid: {seed: [1, 2, 3]}}\n")
    r = run_cli("sweep", str(path), "--run", "--max-parallel", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("done t/seed=") == 3
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 3 and all((run / "manifest.json").exists() for run in runs)


def test_plan_keeps_job_ids_whole_at_80_columns():
    r = run_cli("plan", str(EXPERIMENTS / "css_main.yaml"), env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    shown = {line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")}
    assert {j.id for j in plan(load_spec(EXPERIMENTS / "css_main.yaml")).jobs} <= shown  # none cut to "eval-fin…"
