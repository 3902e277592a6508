"""A finished run's checkpoint as a Hugging Face folder, converted after the run as its export jobs convert it.

`knowrl export` runs it for a checkpoint the plan did not export (a saved
step, or a run without eval): the same backend tool, through the same
`compile` of an export job, so the two never disagree about the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from knowrl._errors import KnowrlError


@dataclass
class Export:
    step: int
    source: Path
    """The backend's checkpoint folder in the run."""
    command: str | None
    """The backend's conversion command; None where the checkpoint is a Hugging Face folder already (copied)."""
    backend: str


def export_for(folder: Path, checkpoint: str, out: Path) -> Export:
    """What exporting `checkpoint` (`final` or a step) of the run in `folder` to `out` takes."""
    from knowrl._rundir import read_json
    from knowrl.backends import get_backend
    from knowrl.plan._plan import Job, Plan, Resources
    from knowrl.spec import validate

    manifest = read_json(folder / "manifest.json")
    spec, p = validate(manifest["spec"]), Plan.from_dict(manifest["plan"])
    ends = [j.params["end_step"] for j in p.jobs if j.kind == "train"]
    if not ends:
        raise KnowrlError(f"run {folder.name} trains nothing: there is no checkpoint to export")
    try:
        step = ends[-1] if checkpoint == "final" else int(checkpoint)
    except ValueError:
        raise KnowrlError(f"--checkpoint {checkpoint!r} is neither `final` nor a step number") from None
    backend = get_backend(spec.resources.backend)
    source = folder / backend.checkpoint_dir(step)
    if not source.exists():
        raise KnowrlError(f"run {folder.name} has no checkpoint at {source}", hint="`knowrl status RUN` shows its jobs")
    if not backend.exports:
        return Export(step, source, None, backend.name)
    job = Job(
        f"export-{checkpoint}",
        "export",
        Resources(1, 0, 1),
        [],
        {"checkpoint": backend.checkpoint_dir(step)},
        {"model": str(out.absolute())},
    )
    return Export(step, source, backend.compile(job, spec, p, str(folder.absolute())).entrypoint, backend.name)


def run_export(e: Export, out: Path) -> None:
    """Copy the Hugging Face folder, or run the backend's conversion; a failed conversion is an error."""
    if e.command is None:
        import shutil

        shutil.copytree(e.source, out, dirs_exist_ok=True)
        return
    import subprocess

    rc = subprocess.call(e.command, shell=True)
    if rc:
        raise KnowrlError(f"the {e.backend} conversion exited with {rc}: {e.command}")
