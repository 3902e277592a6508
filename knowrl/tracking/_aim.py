"""The Aim adapter: one Aim run per knowrl run, its hash derived from the run id.

A driver killed after Aim created its run but before anything recorded the
run's hash used to leave that run behind (listed "active" by Aim's UI forever)
and start a second one on resume. Deriving the hash from the knowrl run id
makes a second one impossible: every start of the run opens the same hash.
"""

from __future__ import annotations

import hashlib
import threading

from knowrl._errors import KnowrlError

_CREATING = threading.Lock()


def aim_missing() -> KnowrlError:
    return KnowrlError("Aim is not installed", hint="pip install 'knowrl[aim]' (or set tracking.backend: none)")


def aim_run_hash(run_id: str) -> str:
    """The Aim run hash of a knowrl run: 24 lowercase hex digits, the shape Aim draws its own in
    (`uuid4().hex[:24]`, aim/sdk/utils.py), so Aim's UI and queries take it as any other."""
    return hashlib.sha256(f"knowrl-run:{run_id}".encode()).hexdigest()[:24]


def open_aim_run(repo_path: str, run_hash: str, experiment: str):
    """Aim's run `run_hash` in the repo, for writing: reopened when the repo has it, else created under it.

    Aim reopens a hash it has (`Run(run_hash)`; one it lacks raises MissingRunError)
    and creates runs only under a hash it draws itself (aim/sdk/base_run.py calls
    `generate_run_hash()`; custom hashes were withdrawn in Aim 3.13, aimhubio/aim#2007).
    So a new run goes through Aim's own creation path with that one draw answered
    by our hash. `force_resume`: a killed driver leaves the run's soft lock behind,
    and the knowrl run lock already makes this driver the run's only writer.
    """
    import aim.sdk.base_run as base_run
    from aim import Repo, Run
    from aim.sdk.errors import RunLockingError

    repo = Repo.from_path(repo_path, init=not Repo.exists(repo_path))
    if repo.run_exists(run_hash):
        return Run(run_hash, repo=repo, force_resume=True)
    if not callable(getattr(base_run, "generate_run_hash", None)):
        raise _unsupported_aim()
    with _CREATING:  # the one draw Aim makes while this run is created, and no other
        drawn = base_run.generate_run_hash
        base_run.generate_run_hash = lambda hash_length=24: run_hash
        try:
            try:
                run = Run(repo=repo, experiment=experiment)
            except RunLockingError:  # killed after Aim locked the hash, before the run existed, on another host
                run = Run(repo=repo, experiment=experiment, force_resume=True)
        finally:
            base_run.generate_run_hash = drawn
    if run.hash != run_hash:
        run.close()
        raise _unsupported_aim()
    return run


def _unsupported_aim() -> KnowrlError:
    from importlib.metadata import version

    return KnowrlError(
        f"Aim {version('aim')} creates its runs in a way knowrl does not know, so it cannot give a knowrl run "
        "its one Aim run",
        hint="install aim 3.25-3.29 (pip install 'aim>=3.25,<3.30'), or set tracking.backend: none",
    )


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

        from aim import Repo

        Path(self.repo_path).mkdir(parents=True, exist_ok=True)
        run_hash = aim_run_hash(run_id)
        if resume and resume != run_hash and Repo.from_path(self.repo_path).run_exists(resume):
            run_hash = resume  # a run whose Aim run was created before hashes were derived keeps that one
        self.run = open_aim_run(self.repo_path, run_hash, experiment or name)
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
