"""The verl compiler in knowrl's own environment: release-specific commands, the data seed, finished checkpoints.

verl's own code runs these handoffs in `make contract` (tests/contract, verl 0.9.1) and in the rehearsal
(tests/rehearsal/verl: the fork and 0.9.1 with the pinned recipe, each in its own environment); here the compiled
text and the checkpoint rule are held to what that code does, each test naming the finding of issue 20 it covers.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from conftest import think_tokenizer_model

from knowrl import KnowrlError
from knowrl.backends import get_backend, verl
from knowrl.plan import plan
from knowrl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
CSS_MAIN = ROOT / "experiments" / "css_main.yaml"


def _spec(release: str, *overrides: str):
    return load_spec(CSS_MAIN, ["resources.backend=verl", f"resources.backend_version={release}", *overrides])


def _overrides(spec, job_id: str = "train-p1") -> dict[str, str]:
    job = plan(spec).job(job_id)
    return dict(a.split("=", 1) for a in verl.render_overrides(verl.phase_overrides(job, spec, "/run")))


def _export_argv(release: str, backend_dir: str = "/opt/verl-checkout") -> list[str]:
    spec = _spec(release, f"resources.backend_dir={backend_dir}", "eval.checkpoints=[final]")
    p = plan(spec)
    return shlex.split(get_backend("verl").compile(p.job("export-final"), spec, p, "/run").entrypoint)


def test_export_on_04_runs_the_forks_own_merger_from_the_checkout():
    """9: the fork has no `verl.model_merger` package, only `scripts/model_merger.py` (run as a module, so the
    `verl` it imports is the checkout's); 0.9 keeps `verl.model_merger`. Both really run in contract/rehearsal."""
    argv = _export_argv("0.4")
    assert argv[:3] == ["cd", "/opt/verl-checkout", "&&"]
    assert argv[3:6] == ["python3", "-m", "scripts.model_merger"]
    assert argv[6:9] == ["merge", "--backend", "fsdp"]
    assert argv[argv.index("--local_dir") + 1] == "/run/checkpoints/global_step_2960/actor"
    assert argv[argv.index("--target_dir") + 1] == "/run/models/final"
    assert _export_argv("0.9")[3:6] == ["python3", "-m", "verl.model_merger"]


def test_preflight_imports_the_recipe_as_training_will_and_looks_for_the_forks_merger():
    """8: a recipe that does not import against the installed verl is found before anything is submitted."""
    checks = [c for c, _ in verl.requirements(_spec("0.4", "resources.backend_dir=/v"))]
    assert "cd /v && python3 -c 'import recipe.dapo.main_dapo'" in checks
    assert "test -f /v/scripts/model_merger.py" in checks
    assert not any("model_merger" in c for c, _ in verl.requirements(_spec("0.9", "resources.backend_dir=/v")))


def test_the_recipe_pin_is_the_one_the_rehearsal_builds():
    """8: one commit, named in verl.py, is what tests/rehearsal/verl/build.sh checks out as `recipe/`."""
    build = (ROOT / "tests" / "rehearsal" / "verl" / "build.sh").read_text()
    assert f"RECIPE_PIN={verl.RECIPE_PIN}\n" in build
    assert len(verl.RECIPE_PIN) == 40 and not verl.RECIPE_PIN.startswith("e7f8895")  # v0.9.0's submodule: no import


def test_04_shuffles_the_data_in_the_authors_order_and_says_so():
    """13: the fork's sampler seeds with `data.get("seed", 1)` and the authors' script sets none: order of seed 1."""
    spec = _spec("0.4")
    assert spec.seed == 42
    assert _overrides(spec)["+data.seed"] == "1"
    (note,) = [n for n in get_backend("verl").approximations(spec) if "data.seed" in n]
    assert "seed 1" in note and "seed 42" in note
    assert not any("data.seed" in n for n in get_backend("verl").approximations(_spec("0.4", "seed=1")))


def test_09_shuffles_with_the_specs_seed():
    spec = _spec("0.9", "seed=7")
    assert _overrides(spec)["data.seed"] == "7" and "+data.seed" not in _overrides(spec)
    assert not any("data.seed" in n for n in get_backend("verl").approximations(spec))


def _checkpoint(run: Path, step: int, world: int = 2, *, track: bool = True, skip: tuple[str, ...] = ()) -> Path:
    """verl's layout as its trainer and FSDPCheckpointManager leave it (real ones: tests/rehearsal/verl)."""
    folder = run / "checkpoints" / f"global_step_{step}"
    actor = folder / "actor"
    actor.mkdir(parents=True)
    for kind in ("model", "optim", "extra_state"):
        for rank in range(world):
            name = f"{kind}_world_size_{world}_rank_{rank}.pt"
            if name not in skip:
                (actor / name).write_bytes(b"shard")
    if "data.pt" not in skip:
        (folder / "data.pt").write_bytes(b"dataloader")
    if track:
        (run / "checkpoints" / verl.TRACKER).write_text(str(step))
    return folder


def test_checkpoint_done_follows_verls_tracker(tmp_path):
    """11: resume_mode=auto loads the tracked step and trains the next one; a phase whose end is tracked is done."""
    assert not verl.checkpoint_done(tmp_path, 2)  # nothing saved
    _checkpoint(tmp_path, 2)
    assert verl.checkpoint_done(tmp_path, 2) and verl.checkpoint_done(tmp_path, 1)
    assert not verl.checkpoint_done(tmp_path, 3)
    _checkpoint(tmp_path, 3, track=False)  # step 3 saved its shards; killed before the tracker moved
    assert not verl.checkpoint_done(tmp_path, 3) and verl.checkpoint_done(tmp_path, 2)
    (tmp_path / "checkpoints" / verl.TRACKER).write_text("3")
    assert verl.checkpoint_done(tmp_path, 3)
    assert get_backend("verl").checkpoint_done(tmp_path, 3)  # what the runtime calls


@pytest.mark.parametrize(
    "skip",
    ["model_world_size_2_rank_1.pt", "optim_world_size_2_rank_0.pt", "extra_state_world_size_2_rank_1.pt", "data.pt"],
)
def test_a_tracked_checkpoint_missing_a_part_is_not_done(tmp_path, skip):
    _checkpoint(tmp_path, 5, skip=(skip,))
    assert not verl.checkpoint_done(tmp_path, 5)


def test_a_damaged_tracker_is_no_checkpoint(tmp_path):
    _checkpoint(tmp_path, 4)
    (tmp_path / "checkpoints" / verl.TRACKER).write_text("")  # torn write
    assert not verl.checkpoint_done(tmp_path, 4)
    (tmp_path / "checkpoints" / verl.TRACKER).write_text("7")  # names a folder that is not there
    assert not verl.checkpoint_done(tmp_path, 4)


def test_a_tokenizer_with_a_special_think_close_is_refused_for_verl(tiny_model, tmp_path):
    """verl's reward managers decode responses with skip_special_tokens=True: a special </think> never arrives."""
    ordinary = think_tokenizer_model(tiny_model, tmp_path / "ordinary", special=False)
    special = think_tokenizer_model(tiny_model, tmp_path / "special", special=True)
    verl.check_tokenizer(_spec("0.9", f"model.path={ordinary}"))
    with pytest.raises(KnowrlError, match="marks </think> as a special token, which verl's reward manager strips"):
        verl.check_tokenizer(_spec("0.9", f"model.path={special}"))
    verl.check_tokenizer(_spec("0.9", f"model.path={special}", "reward.require_think_close=false"))


def test_backend_overrides_reach_the_command_once_each_and_win():
    """`resources.backend_overrides`: verl's own keys for what the spec does not model, after knowrl's."""
    spec = _spec(
        "0.9",
        "resources.backend_overrides=[actor_rollout_ref.rollout.agent.num_workers=1, trainer.val_before_train=false]",
    )
    p = plan(spec)
    launch = get_backend("verl").compile(p.job("train-p1"), spec, p, "/run")
    argv = shlex.split(launch.entrypoint.split("&&", 1)[1])
    assert argv[-2:] == ["actor_rollout_ref.rollout.agent.num_workers=1", "trainer.val_before_train=false"]
    assert _overrides(_spec("0.9"))["trainer.val_before_train"] == "True"  # knowrl sets it from the spec...
    assert [a for a in argv if a.startswith("trainer.val_before_train=")] == ["trainer.val_before_train=false"]
    assert launch.files["train-p1.verl.overrides"].splitlines()[-2:] == argv[-2:]  # ...and says it once


def test_backend_overrides_are_checked_as_hydra_overrides():
    with pytest.raises(KnowrlError) as e:
        _spec("0.9", "resources.backend_overrides=[trainer.total_epochs 2]")
    assert "resources.backend_overrides.0" in str(e.value) and "key=value" in str(e.value)
    with pytest.raises(KnowrlError, match="local backend"):
        load_spec(CSS_MAIN, ["resources.backend=local", "resources.backend_overrides=[a=1]"])
