"""`knowrl export` (a trained checkpoint -> a Hugging Face folder) and `knowrl grading-site`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError

export_app = typer.Typer(add_completion=False, rich_markup_mode=None)
site_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@export_app.command("export")
def export(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Folder for the Hugging Face model.", show_default=False)],
    checkpoint: Annotated[str, typer.Option(help="`final` or a saved step.")] = "final",
    storage: Annotated[str, typer.Option(help="Storage root.")] = ".knowrl",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the conversion command only.")] = False,
) -> None:
    """Convert a run's checkpoint to a Hugging Face folder with the backend's own tool, as the export jobs do.

    NeMo-RL: examples/converters/convert_dcp_to_hf.py; verl: `python -m
    verl.model_merger merge --backend fsdp`; the local trainer already saves
    Hugging Face folders, which are copied.
    """
    import shutil

    from knowrl._rundir import find_run, read_json
    from knowrl.backends import get_backend
    from knowrl.plan._plan import Job, Plan, Resources
    from knowrl.spec import validate

    folder = find_run(run, storage)
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
        shutil.copytree(source, out, dirs_exist_ok=True)
        typer.echo(f"copied {source} to {out}")
        return
    job = Job(
        f"export-{checkpoint}",
        "export",
        Resources(1, 0, 1),
        [],
        {"checkpoint": backend.checkpoint_dir(step)},
        {"model": str(out.absolute())},
    )
    command = backend.compile(job, spec, p, str(folder.absolute())).entrypoint
    if dry_run:
        typer.echo(command)
        return
    import subprocess

    rc = subprocess.call(command, shell=True)
    if rc:
        raise KnowrlError(f"the {backend.name} conversion exited with {rc}: {command}")
    typer.echo(f"exported step {step} of run {folder.name} to {out}")


@site_app.command("grading-site")
def grading_site(dest: Annotated[Path, typer.Argument(help="Folder to create.", show_default=False)]) -> None:
    """Write the ANTLR runtime knowrl's grader parses with into DEST, for environments pinned to Hydra's."""
    from knowrl.grading._site import SITE_ENV, build_site

    build_site(dest)
    typer.echo(f"export {SITE_ENV}={dest.absolute()}")
