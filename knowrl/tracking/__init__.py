"""Experiment tracking behind a small protocol: Aim (optional extra) or nothing.

Only the driver logs (the engine after each job), never every worker. The Aim
run's hash derives from the knowrl run id, so every start of a run opens the
same Aim run: one knowrl run is one Aim run, however often (and wherever) it is
killed and resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from knowrl.tracking._aim import AimTracker, aim_missing, aim_run_hash

__all__ = ["AimTracker", "NoopTracker", "Tracker", "aim_missing", "aim_run_hash", "make_tracker"]


class Tracker(Protocol):
    def start(
        self,
        run_id: str,
        name: str,
        hparams: Mapping,
        experiment: str | None = None,
        *,
        resume: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> str | None:
        """Open the tracker's run for `run_id` (the same one on every start; `resume`, a hash an earlier start
        returned, is reopened when it names another); return its hash."""

    def track(self, name: str, value: float, step: int | None = None, context: Mapping | None = None) -> None: ...

    def close(self) -> None: ...


class NoopTracker:
    def start(self, run_id, name, hparams, experiment=None, *, resume=None, tags=()) -> None:
        return None

    def track(self, name, value, step=None, context=None) -> None:
        pass

    def close(self) -> None:
        pass


def make_tracker(backend: str, repo: str) -> Tracker:
    return AimTracker(repo) if backend == "aim" else NoopTracker()
