"""`knowrl run | status | logs | cancel`: a spec run (locally or on a cluster), its state, its logs, its stop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError

run_app = typer.Typer(add_completion=False, rich_markup_mode=None)
status_app = typer.Typer(add_completion=False, rich_markup_mode=None)
logs_app = typer.Typer(add_completion=False, rich_markup_mode=None)
cancel_app = typer.Typer(add_completion=False, rich_markup_mode=None)
StorageOpt = Annotated[str, typer.Option(help="Storage root.")]


@logs_app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a prefix).")],
    job: Annotated[str | None, typer.Argument(help="Job id (default: every job).")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing as the log grows.")] = False,
    storage: StorageOpt = ".knowrl",
) -> None:
    """Print a run's job logs (what each job wrote while it ran)."""
    import time

    from knowrl._rundir import find_run

    run = find_run(run_id, storage)
    files = [run / job / "job.log"] if job else sorted(run.glob("*/job.log"))
    if not files or not all(f.exists() for f in files):
        raise KnowrlError(f"no log for {job or 'any job'} in {run}", hint="jobs write job.log once they start")
    from knowrl._rundir import job_status
    from knowrl.runtime._locks import driver_gone

    offsets = {}
    while True:
        ended = driver_gone(run) or all(job_status(run, f.parent.name)["status"] != "running" for f in files)
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace")[offsets.get(f, 0) :]
            if text:
                prefix = "" if job else f"[{f.parent.name}] "
                typer.echo("".join(prefix + line for line in text.splitlines(keepends=True)), nl=False)
                offsets[f] = offsets.get(f, 0) + len(text)
        if not follow or ended:  # read once more after the job ended, then stop following
            return
        time.sleep(1)


@cancel_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id (or a prefix).")],
    storage: StorageOpt = ".knowrl",
    grace: Annotated[float, typer.Option(help="Seconds to wait at each step before asking harder.")] = 30.0,
) -> None:
    """Stop a run: its cluster jobs, or the local `knowrl run` driving it; finished jobs are kept.

    A local run is asked with SIGINT, then SIGTERM, then SIGKILL, each after `--grace` seconds, and the
    command returns once the run has stopped."""
    from knowrl._rundir import find_run, read_json

    run = find_run(run_id, storage)
    manifest = read_json(run / "manifest.json")
    if manifest.get("ray_address"):
        from knowrl.runtime._cluster import cancel_run

        stopped = cancel_run(run, manifest["ray_address"])
        typer.echo(
            f"cancelled run {run.name}: stopped {', '.join(stopped) or 'no running job'}; nothing more is submitted "
            "until `knowrl run` resumes it (finished jobs are kept)"
        )
        return
    from knowrl.runtime._locks import cancel_local

    how, cancelled = cancel_local(run, grace)
    typer.echo(
        f"stopped the `knowrl run` driving {run.name} ({how}); cancelled: {', '.join(cancelled) or 'no job'}; "
        "finished jobs are kept and `knowrl run` resumes it"
    )


@run_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides.", show_default=False)] = None,
    address: Annotated[str | None, typer.Option(help="A Ray cluster's Jobs API (http://head:8265).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="With --address: submit and return at once.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Submit from a git tree with changes.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and write the compiled inputs.")] = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="With --address: check the cluster's GPUs and installed backend before submitting "
            "(skip for an autoscaling cluster that grows on demand).",
        ),
    ] = True,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Run the spec shrunk by the smoke profile (`knowrl plan --smoke` shows it): the same backend, "
            "release, data and checkpoint hand-overs in minutes, as a run of its own.",
        ),
    ] = False,
    same_inputs: Annotated[
        bool,
        typer.Option(
            "--same-inputs",
            help="Refuse to start when the data or model changed since this spec's last run (rather than start a "
            "new run).",
        ),
    ] = False,
) -> None:
    """Run a spec: every unfinished job of its plan, on an embedded local Ray or a cluster; resumable.

    The run id is the spec hash with the fingerprints of the data and model it reads: the same spec on changed
    inputs is a new run, and says so."""
    from rich.console import Console

    from knowrl.cli._common import load

    s, profile = load(spec, overrides, smoke)
    console = Console()
    if smoke:
        console.print(f"smoke run of {spec}: {len(profile)} overrides of the smoke profile (`knowrl plan --smoke`)")
    from knowrl.plan import plan

    address = address or s.resources.ray_address
    if address or dry_run:  # a cluster's jobs start in Ray's working directory: every local path absolute
        from knowrl.runtime._cluster import for_cluster

        s = for_cluster(s)
    p = plan(s)
    _say_changed_inputs(s, p, console, refuse=same_inputs)
    if dry_run:
        from knowrl.backends._compile import compiled_dir, write_compiled
        from knowrl.cli._common import print_plan

        print_plan(p, s)
        out = compiled_dir(s, p)
        write_compiled(s, p, out, say=console.print)
        console.print(f"compiled inputs in {out}/ (nothing submitted)")
        return
    if address:
        from knowrl._rundir import git_state
        from knowrl.runtime._cluster import submit_run

        _, dirty = git_state()
        if dirty and not allow_dirty:
            raise KnowrlError(
                "the git tree has uncommitted changes; a cluster run records the commit it ran",
                hint="commit first, or pass --allow-dirty (recorded in the manifest)",
            )
        statuses = submit_run(s, address, detach=detach, preflight=preflight, say=console.print)
        if detach:
            console.print(f"submitted; follow with `knowrl status {p.run_id} --storage {s.resources.storage}`")
            return
    else:
        from knowrl.runtime._engine import run_spec

        statuses = run_spec(s, console=console)
    registry = s.registry.path
    evaluated = any(j.kind == "eval" and statuses.get(j.id) == "succeeded" for j in p.jobs)
    if evaluated and Path(registry).exists():
        from knowrl.cli.compare import compare

        for effects in (False, True):
            compare(
                runs=[p.run_id],
                hint_mode=None,
                checkpoint=None,
                with_reference=False,
                diff=None,
                effects=effects,
                registry=registry,
                fmt="table",
            )
    console.print(
        f"\ninspect later:\n  knowrl status {p.run_id}\n  knowrl show-run {p.run_id} --registry {registry}\n"
        f"  knowrl compare {p.run_id} --registry {registry}\n  ls {s.resources.storage}/runs/{p.run_id}/"
    )
    if any(v != "succeeded" for v in statuses.values()):
        raise typer.Exit(1)


def _say_changed_inputs(s, p, console, *, refuse: bool) -> None:
    from knowrl.plan._inputs import earlier_run

    if (Path(s.resources.storage) / "runs" / p.run_id).exists():
        return  # resuming this run
    earlier = earlier_run(s.resources.storage, p)
    if earlier is None:
        return
    other, changed = earlier
    what = ", ".join(f"{k} ({p.inputs[k]['source']})" if k in p.inputs else k for k in changed)
    if refuse:
        raise KnowrlError(
            f"the inputs of {s.name} changed since its run {other}: {what}",
            hint=f"restore them, or drop --same-inputs to start the new run {p.run_id}",
        )
    console.print(f"[yellow]inputs changed since run {other}[/]: {what}; this is a new run, {p.run_id}")


@status_app.command("status")
def status(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: every run).")] = None,
    storage: Annotated[str, typer.Option(help="Storage root.")] = ".knowrl",
) -> None:
    """Every planned job of each run and its state, from the run directories (a damaged one is named, not fatal)."""
    from knowrl.runtime._status import run_states

    for run in run_states(storage, run_id, say=typer.echo):
        if not run.started:
            typer.echo(f"{run.run_id}  (not started: no manifest.json)")
            continue
        note = ("  (running)" if run.driven else "") + (f"  ({run.trouble})" if run.trouble else "")
        typer.echo(f"{run.run_id}  {run.name or '?'}{note}")
        for job in run.jobs:
            err = f"  {job.error[:160]}" if job.error else ""
            typer.echo(f"  {job.job_id:40} {job.state:11} attempts {job.attempts}{err}")
