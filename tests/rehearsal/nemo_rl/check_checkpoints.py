"""knowrl's `nemo_rl.checkpoint_done` against NeMo-RL's own CheckpointManager, in NeMo-RL's environment.

Run by rehearse.py with the rehearsal environment's Python and knowrl on the
PYTHONPATH: CheckpointManager (nemo_rl/utils/checkpoint.py, v0.7.0) writes,
finalizes, rewrites and prunes steps; after each of its operations a step is
done for knowrl exactly when NeMo-RL would resume from it (its own checkpoint
history lists it with a training_info.json naming the step).
Usage: python check_checkpoints.py WORK_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from nemo_rl.utils.checkpoint import CheckpointManager, _load_checkpoint_history

from knowrl.backends.nemo_rl import checkpoint_done


def _agree(run: Path, steps: range, when: str) -> None:
    nemo = {s for s, _, info in _load_checkpoint_history(run / "checkpoints") if info.get("total_steps") == s}
    knowrl = {s for s in steps if checkpoint_done(run, s)}
    assert knowrl == nemo, f"{when}: knowrl says {sorted(knowrl)} complete, NeMo-RL's history {sorted(nemo)}"
    print(f"  {when}: complete steps {sorted(knowrl)} (NeMo-RL agrees)")


def main(work: Path) -> None:
    run = work / "run"
    manager = CheckpointManager(
        {"enabled": True, "checkpoint_dir": str(run / "checkpoints"), "metric_name": None, "higher_is_better": True,
         "save_period": 1, "keep_top_k": 2, "save_optimizer": True}
    )  # fmt: skip

    def save(step: int, finalize: bool = True) -> Path:
        info = {"consumed_samples": 2 * step, "current_step": step, "current_epoch": 0, "total_steps": step}
        path = Path(manager.init_tmp_checkpoint(step, info))
        (path / "policy" / "weights" / "model").mkdir(parents=True)
        (path / "policy" / "weights" / "model" / ".metadata").write_bytes(b"")
        if finalize:
            manager.finalize_checkpoint(path)
        return path

    steps = range(0, 8)
    save(1, finalize=False)
    _agree(run, steps, "step 1 written, not finalized (a kill mid-save)")
    manager.finalize_checkpoint(run / "checkpoints" / "tmp_step_1")
    _agree(run, steps, "step 1 finalized")
    save(2)
    save(2)  # a retried phase writes its last step again: step_2 -> old_step_2, tmp_step_2 -> step_2
    _agree(run, steps, "step 2 written twice")
    save(3)
    save(4)  # keep_top_k 2 (latest by step): step 1 and 2 removed
    _agree(run, steps, "steps 3, 4 saved with keep_top_k=2")
    assert manager.get_latest_checkpoint_path().endswith("step_4") and checkpoint_done(run, 4)
    print("checkpoint_done agrees with NeMo-RL's CheckpointManager")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
