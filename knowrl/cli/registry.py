"""`knowrl ingest | query | runs | show-run | registry | ui | plot`: the registry read and filled (`compare` has a
module of its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError
from knowrl.cli._common import DEFAULT_REGISTRY, FormatOpt, RegistryOpt, emit, fmt_number

ingest_app = typer.Typer(add_completion=False, rich_markup_mode=None)
query_app = typer.Typer(add_completion=False, rich_markup_mode=None)
runs_app = typer.Typer(add_completion=False, rich_markup_mode=None)
show_run_app = typer.Typer(add_completion=False, rich_markup_mode=None)
ui_app = typer.Typer(add_completion=False, rich_markup_mode=None)
registry_app = typer.Typer(help="Registry maintenance.", no_args_is_help=True, rich_markup_mode=None)
plot_app = typer.Typer(help="Plots as PNG files.", no_args_is_help=True, rich_markup_mode=None)


@ingest_app.command("ingest")
def ingest(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (<storage>/runs/<id>).")],
    registry: RegistryOpt = DEFAULT_REGISTRY,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for another writer.")] = 60.0,
) -> None:
    """Read run directories' artifacts into the registry (idempotent, one transaction per job)."""
    from knowrl.registry import ingest as do_ingest

    r = do_ingest(registry, run_dirs, timeout_s=timeout)
    rows = ", ".join(f"{v} {k}" for k, v in sorted(r.rows.items())) or "no artifact rows"
    typer.echo(f"ingested {r.runs} runs, {r.jobs} jobs ({rows}) into {registry}")


@query_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement.")],
    registry: RegistryOpt = DEFAULT_REGISTRY,
    fmt: FormatOpt = "table",
    allow_files: Annotated[
        bool, typer.Option("--allow-files", help="Let the query read files and URLs (read_parquet on your own data).")
    ] = False,
) -> None:
    """Run read-only SQL against the registry (tables, plus views latest_scores, training_curves, reward_sparsity).

    The query sees the registry and nothing else: no files, no network, unless --allow-files."""
    import duckdb

    from knowrl.registry import reader

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise KnowrlError(f"cannot parse the query: {str(e).splitlines()[0]}") from None
    if len(statements) > 1:
        raise KnowrlError(
            f"`knowrl query` runs one statement; this has {len(statements)}",
            hint="run them one at a time, or combine them with UNION ALL / a CTE",
        )
    kinds = {st.type.name for st in statements}
    if not kinds or not kinds <= {"SELECT", "EXPLAIN"}:
        writes = ", ".join(sorted(kinds - {"SELECT", "EXPLAIN"})) or "empty"
        raise KnowrlError(
            f"`knowrl query` is read-only; refused a {writes} statement",
            hint="query with SELECT; data enters through `knowrl ingest`",
        )
    with reader(registry, sandbox=not allow_files) as con:
        try:
            cur = con.execute(sql)
        except duckdb.PermissionException as e:
            raise KnowrlError(
                f"`knowrl query` reads only the registry: {str(e).splitlines()[0]}",
                hint="pass --allow-files to read your own files (read_parquet, read_csv)",
            ) from None
        except duckdb.Error as e:
            msg = str(e).splitlines()[0]
            if "read-only" in msg.lower():
                raise KnowrlError(
                    "the registry is read-only from `knowrl query`; that statement writes",
                    hint="use `knowrl ingest` to add data",
                ) from None
            raise KnowrlError(f"query failed: {msg}") from None
        header = [d[0] for d in cur.description] if cur.description else []
        emit(header, cur.fetchall(), fmt)


@runs_app.command("runs")
def runs(registry: RegistryOpt = DEFAULT_REGISTRY, fmt: FormatOpt = "table") -> None:
    """Runs with status, spec hash, the hyperparameters that differ between them, and their best Avg."""
    from knowrl.registry import reader
    from knowrl.registry._compare import measured_rows

    with reader(registry) as con:
        data = con.execute("SELECT run_id, name, status, spec_hash, spec FROM runs ORDER BY created_at").fetchall()
        best: dict[str, float] = {}
        for r in measured_rows(con):
            best[r.run_id] = max(best.get(r.run_id, 0.0), r.avg or 0.0)
    flat = [_flatten(json.loads(spec)) for *_, spec in data]
    differ = (
        sorted(
            k
            for k in set().union(*flat)
            if len({json.dumps(f.get(k)) for f in flat}) > 1 and not k.startswith(("name", "description", "tags"))
        )
        if len(flat) > 1
        else []
    )
    header = ["run", "name", "status", "spec hash", *differ, "best Avg."]
    rows = [
        [
            rid,
            name,
            status,
            h[:12],
            *(_value(f.get(k), fmt) for k in differ),
            fmt_number(best.get(rid)),
        ]
        for (rid, name, status, h, _), f in zip(data, flat, strict=True)
    ]
    emit(header, rows, fmt)


def _value(v, fmt: str):
    """A spec value as people read it (lists and mappings as JSON, not Python reprs); JSON output keeps it."""
    return v if fmt == "json" or not isinstance(v, list | dict) else json.dumps(v, separators=(", ", ": "))


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@show_run_app.command("show-run")
def show_run(
    run: Annotated[str, typer.Argument(help="Run id (or prefix) or name.")], registry: RegistryOpt = DEFAULT_REGISTRY
) -> None:
    """One run's jobs, a metrics summary and where its artifacts are."""
    from knowrl.registry import reader
    from knowrl.registry._compare import resolve_run

    with reader(registry) as con:
        run_id, name = resolve_run(con, run)
        r = con.execute(
            "SELECT status, spec_hash, git_sha, git_dirty, created_at, spec->>'$.resources.storage', inputs, "
            "started_at, finished_at, sweep_id FROM runs WHERE run_id = ?",
            [run_id],
        ).fetchone()
        typer.echo(
            f"{name} [{run_id}] {r[0]}  spec {r[1][:12]}  git {r[2] or '-'}{' (dirty)' if r[3] else ''}  created {r[4]}"
        )
        sweep = f"  sweep {r[9]}" if r[9] else ""
        typer.echo(f"  started {r[7] or '-'}  finished {r[8] or '-'}{sweep}")
        from knowrl.plan._inputs import describe_inputs

        for what, line in describe_inputs(json.loads(r[6] or "{}")).items():
            typer.echo(f"  input {what:20} {line}")
        jobs = con.execute(
            "SELECT job_id, kind, status, attempts, started_at, finished_at, error FROM jobs "
            "WHERE run_id = ? ORDER BY job_id",
            [run_id],
        ).fetchall()
        emit(["job", "kind", "status", "attempts", "started", "finished", "error"], [list(j) for j in jobs], "table")
        metrics = con.execute(
            "SELECT name, count(*), min(step), max(step), last(value ORDER BY step) FROM metrics "
            "WHERE run_id = ? GROUP BY name ORDER BY name",
            [run_id],
        ).fetchall()
        if metrics:
            emit(["metric", "points", "first step", "last step", "last value"], [list(m) for m in metrics], "table")
    typer.echo(f"artifacts: {r[5] or '.knowrl'}/runs/{run_id}/")


@registry_app.callback()
def _registry() -> None:
    """Registry maintenance."""  # a callback keeps `registry` a group with sub-commands


@registry_app.command("load-reference")
def load_reference(
    registry: RegistryOpt = DEFAULT_REGISTRY,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Reference results CSV (default: the published KnowRL tables).")
    ] = None,
) -> None:
    """Load the published KnowRL tables (marked as published, never mixed with measured runs)."""
    from knowrl.registry import load_reference as load
    from knowrl.registry._ingest import reference_csv

    n = load(registry, csv_file)
    typer.echo(f"loaded {n} published rows from {csv_file or reference_csv().name} into {registry}")


@ui_app.command("ui")
def ui(
    repo: Annotated[str, typer.Option(help="Aim repository.")] = ".knowrl/aim",
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 43800,
) -> None:
    """Start the Aim UI on 127.0.0.1 for the repo in use."""
    import shutil
    import subprocess
    import sys

    from knowrl.tracking import aim_missing

    aim = shutil.which("aim") or str(Path(sys.executable).parent / "aim")
    if not Path(aim).exists():
        raise aim_missing()
    Path(repo).mkdir(parents=True, exist_ok=True)
    typer.echo(f"Aim UI on http://127.0.0.1:{port} for {repo} (Ctrl-C stops it)")
    raise typer.Exit(subprocess.call([aim, "up", "--host", "127.0.0.1", "--port", str(port), "--repo", repo]))


@plot_app.command("curves")
def plot_curves(
    runs: Annotated[list[str], typer.Argument(help="Runs to plot.")],
    metric: Annotated[str, typer.Option(help="Metric name.")] = "train/reward",
    out: Annotated[Path, typer.Option(help="PNG file.")] = Path("curves.png"),
    registry: RegistryOpt = DEFAULT_REGISTRY,
) -> None:
    """Training curves with the clip-schedule breakpoints marked."""
    from knowrl.registry import reader
    from knowrl.registry._compare import resolve_runs
    from knowrl.registry._plots import curves

    with reader(registry) as con:
        series = {}
        for run_id, name in resolve_runs(con, runs):
            pts = con.execute(
                "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step", [run_id, metric]
            ).fetchall()
            spec = json.loads(con.execute("SELECT spec FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
            breaks = [c["step"] for c in spec["algorithm"]["clip_schedule"]]
            series[f"{name} [{run_id[:8]}]"] = (pts, breaks)
    curves(series, metric, out)
    typer.echo(f"wrote {out}")


@plot_app.command("compare")
def plot_compare(
    runs: Annotated[list[str] | None, typer.Argument(help="Runs to plot (all if none).")] = None,
    hint_mode: Annotated[str, typer.Option(help="Hint mode of the measured runs.")] = "none",
    with_reference: Annotated[bool, typer.Option("--with-reference", help="Add published bars.")] = True,
    out: Annotated[Path, typer.Option(help="PNG file.")] = Path("compare.png"),
    registry: RegistryOpt = DEFAULT_REGISTRY,
) -> None:
    """Grouped bars per benchmark, measured runs beside the published references."""
    from knowrl.registry import reader
    from knowrl.registry._compare import measured_rows, reference_rows
    from knowrl.registry._plots import bars

    with reader(registry) as con:
        rows = measured_rows(con, runs, [hint_mode])
        if with_reference:
            rows += reference_rows(con, [hint_mode])
    bars(rows, out)
    typer.echo(f"wrote {out}")
