"""`knowrl export`: a finished run's checkpoint converted with the backend's own tool, or copied where it is one."""

from __future__ import annotations

from conftest import EXPERIMENTS, run_cli

from knowrl._rundir import run_path, write_manifest
from knowrl.backends import verl
from knowrl.plan import plan
from knowrl.spec import load_spec


def _run(storage, spec_file: str, *overrides: str):
    spec = load_spec(EXPERIMENTS / spec_file, [f"resources.storage={storage}", *overrides])
    p = plan(spec)
    run = run_path(storage, p.run_id)
    write_manifest(run, spec, p)
    return spec, p, run


def test_a_local_runs_checkpoint_is_copied(tmp_path):
    spec, p, run = _run(tmp_path / "store", "quickstart-tiny.yaml")
    final = max(j.params["end_step"] for j in p.jobs if j.kind == "train")
    (run / f"checkpoints/step_{final}").mkdir(parents=True)
    (run / f"checkpoints/step_{final}/config.json").write_text("{}")
    out = tmp_path / "hf"
    r = run_cli("export", p.run_id[:8], "--out", str(out), "--storage", str(tmp_path / "store"))
    assert r.returncode == 0, r.stderr
    assert (out / "config.json").read_text() == "{}" and r.stdout.startswith("copied ")
    elsewhere = tmp_path / "not-yet"
    dry = run_cli("export", p.run_id[:8], "--out", str(elsewhere), "--storage", str(tmp_path / "store"), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("cp -r ") and not elsewhere.exists()  # printed, not copied


def test_a_verl_checkpoint_is_merged_by_verls_own_command(tmp_path):
    store = tmp_path / "store"
    spec, p, run = _run(store, "css_main.yaml", "resources.backend=verl", "resources.backend_dir=/opt/verl-checkout")
    ends = [j.params["end_step"] for j in p.jobs if j.kind == "train"]
    for step in ends:
        (run / f"checkpoints/global_step_{step}/actor").mkdir(parents=True)
    out = tmp_path / "hf"
    args = ["--out", str(out), "--storage", str(store), "--dry-run"]
    for checkpoint, step in (("final", ends[-1]), (str(ends[0]), ends[0])):
        r = run_cli("export", p.run_id, "--checkpoint", checkpoint, *args)
        assert r.returncode == 0, r.stderr
        actor = f"{run.absolute()}/checkpoints/global_step_{step}/actor"
        expected = verl.merger_command(spec.resources.backend_version, spec.resources.backend_dir, actor, str(out))
        assert r.stdout.strip() == expected

    missing = run_cli("export", p.run_id, "--checkpoint", "7", *args)
    assert missing.returncode == 1 and "has no checkpoint at" in missing.stderr
    bad = run_cli("export", p.run_id, "--checkpoint", "last", *args)
    assert bad.returncode == 1 and "--checkpoint 'last' is neither `final` nor a step number" in bad.stderr
