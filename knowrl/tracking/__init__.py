"""Experiment tracking behind a small protocol: Aim (optional extra) or nothing.

Only the driver logs (the engine after each job), never every worker, and the
engine keeps the Aim run's hash in the run directory and reopens it on resume:
one knowrl run is one Aim run, however often it is killed and resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from knowrl._errors import KnowrlError


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
        """Open the tracker's run (reopening `resume`, the hash an earlier start returned); return its hash."""

    def track(self, name: str, value: float, step: int | None = None, context: Mapping | None = None) -> None: ...

    def close(self) -> None: ...


class NoopTracker:
    def start(self, run_id, name, hparams, experiment=None, *, resume=None, tags=()) -> None:
        return None

    def track(self, name, value, step=None, context=None) -> None:
        pass

    def close(self) -> None:
        pass


def aim_missing() -> KnowrlError:
    return KnowrlError("Aim is not installed", hint="pip install 'knowrl[aim]' (or set tracking.backend: none)")


class AimTracker:
    """One Aim run per knowrl run; indexed on close so queries see it at once (Aim indexes lazily otherwise)."""

    def __init__(self, repo: str) -> None:
        try:
            import aim  # noqa: F401
        except ImportError:
            raise aim_missing() from None
        self.repo_path, self.run = repo, None

    def start(self, run_id, name, hparams, experiment=None, *, resume=None, tags=()) -> str:
        from pathlib import Path

        from aim import Repo, Run

        Path(self.repo_path).mkdir(parents=True, exist_ok=True)
        if resume and Repo.from_path(self.repo_path).get_run(resume) is not None:
            # force: a killed driver left the run's soft lock behind; the knowrl run lock makes us its only writer
            self.run = Run(resume, repo=self.repo_path, force_resume=True)
        else:
            self.run = Run(repo=self.repo_path, experiment=experiment or name)
        self.run.name = f"{name} ({run_id})"
        self.run["knowrl_run_id"] = run_id
        self.run["hparams"] = dict(hparams)
        for tag in set(tags) - set(self.run.tags):
            self.run.add_tag(tag)
        return self.run.hash

    def track(self, name, value, step=None, context=None) -> None:
        self.run.track(float(value), name=name, step=step, context=dict(context or {}))

    def close(self) -> None:
        if self.run is None:
            return
        from aim import Repo
        from aim.sdk.index_manager import RepoIndexManager

        run_hash = self.run.hash
        self.run.close()
        RepoIndexManager.get_index_manager(Repo.from_path(self.repo_path)).index(run_hash)
        self.run = None


def make_tracker(backend: str, repo: str) -> Tracker:
    return AimTracker(repo) if backend == "aim" else NoopTracker()
