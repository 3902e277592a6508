"""`knowrl export` (a trained checkpoint -> a Hugging Face folder) and `knowrl grading-site`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

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
    from knowrl._rundir import find_run
    from knowrl.runtime._export import export_for, run_export

    folder = find_run(run, storage)
    e = export_for(folder, checkpoint, out)
    if dry_run:
        typer.echo(e.command or f"cp -r {shlex.quote(str(e.source))} {shlex.quote(str(out))}")
        return
    if e.command is None:
        run_export(e, out)
        typer.echo(f"copied {e.source} to {out}")
        return
    run_export(e, out)
    typer.echo(f"exported step {e.step} of run {folder.name} to {out}")


@site_app.command("grading-site")
def grading_site(dest: Annotated[Path, typer.Argument(help="Folder to create.", show_default=False)]) -> None:
    """Write the ANTLR runtime knowrl's grader parses with into DEST, for environments pinned to Hydra's."""
    from knowrl.grading._site import SITE_ENV, build_site

    build_site(dest)
    typer.echo(f"export {SITE_ENV}={dest.absolute()}")
