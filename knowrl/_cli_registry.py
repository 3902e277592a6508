"""`knowrl ingest | query | compare | runs | show-run | registry | ui | plot`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError, UsageError

DEFAULT_REGISTRY = ".knowrl/registry.duckdb"
REFERENCE = Path(__file__).resolve().parents[1] / "registry" / "reference" / "knowrl_paper.csv"

RegistryOpt = Annotated[str, typer.Option("--registry", help="The DuckDB registry file.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")]

ingest_app = typer.Typer(add_completion=False, rich_markup_mode=None)
query_app = typer.Typer(add_completion=False, rich_markup_mode=None)
compare_app = typer.Typer(add_completion=False, rich_markup_mode=None)
runs_app = typer.Typer(add_completion=False, rich_markup_mode=None)
show_run_app = typer.Typer(add_completion=False, rich_markup_mode=None)
ui_app = typer.Typer(add_completion=False, rich_markup_mode=None)
registry_app = typer.Typer(help="Registry maintenance.", no_args_is_help=True, rich_markup_mode=None)
plot_app = typer.Typer(help="Plots as PNG files.", no_args_is_help=True, rich_markup_mode=None)


def emit(header: list[str], rows: list[list], fmt: str, title: str = "") -> None:
    """Print rows as a rich table, CSV, JSON or Markdown."""
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(header, r, strict=True)) for r in rows], indent=2, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
    elif fmt == "markdown":
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|" + "---|" * len(header))
        for r in rows:
            typer.echo("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        t = Table(*header, title=title or None)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        Console(width=max(120, 14 * len(header))).print(t)
    else:
        raise UsageError(f"unknown format '{fmt}'", hint="use table, csv, json or markdown")


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


def _fmt(v) -> str:
    return "" if v is None else f"{v:.2f}"


@compare_app.command("compare")
def compare(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or prefixes) or names; all if none.")] = None,
    hint_mode: Annotated[str | None, typer.Option(help="Comma-separated hint modes to show.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Only this checkpoint (base, final, step).")] = None,
    with_reference: Annotated[bool, typer.Option("--with-reference", help="Add the published rows.")] = False,
    diff: Annotated[tuple[str, str] | None, typer.Option(help="A B: per-benchmark deltas and a bootstrap CI.")] = None,
    effects: Annotated[
        bool, typer.Option("--effects", help="Within each run: final vs base and hints vs none, with paired CIs.")
    ] = False,
    registry: RegistryOpt = DEFAULT_REGISTRY,
    fmt: FormatOpt = "table",
) -> None:
    """The paper's table: one row per (run, hint mode), benchmarks as columns, unweighted Avg. and mean #KP.

    Each benchmark says how many problems x samples its avg@N rests on; a cell is starred only when it beats
    every other in its column by more than noise. JSON and CSV carry the numbers at full precision."""
    from knowrl.registry import reader
    from knowrl.registry._compare import BENCHMARKS, measured_rows, paired_bootstrap, reference_rows

    modes = [m.strip() for m in hint_mode.split(",")] if hint_mode else None
    if with_reference:
        _ensure_reference(registry)
    with reader(registry) as con:
        if effects:
            _effects(con, runs, fmt)
            return
        if diff:
            d = paired_bootstrap(con, diff[0], diff[1], (modes or ["none"])[0])
            if fmt in ("json", "csv"):
                rows = [[b, v, None, None] for b, v in d["deltas"].items()] + [["Avg.", d["avg_delta"], *d["ci95"]]]
                emit(["benchmark", "delta", "ci95_low", "ci95_high"], rows, fmt)
                return
            rows = [[b, f"{v:+.2f}"] for b, v in d["deltas"].items()]
            rows.append(
                [
                    "Avg.",
                    f"{d['avg_delta']:+.2f}  (95% CI {d['ci95'][0]:+.2f} .. {d['ci95'][1]:+.2f}, "
                    f"paired bootstrap over {d['problems']} problems)",
                ]
            )
            emit(["benchmark", f"{d['b'][:8]} - {d['a'][:8]} ({d['hint_mode']})"], rows, fmt)
            return
        rows = measured_rows(con, runs, modes, checkpoint)
        if with_reference:
            rows += reference_rows(con, modes)
    if not rows:
        raise KnowrlError("nothing to compare", hint="ingest runs with eval results, or add --with-reference")
    benches = [b for b in BENCHMARKS if any(b in r.values for r in rows)]
    benches += sorted({b for r in rows for b in r.values} - set(benches))
    if fmt in ("json", "csv"):
        header = ["run", "hint_mode", "oracle_assisted", *benches, "avg", "published_avg", "mean_kps"]
        out = [
            [r.label, r.hint_mode, r.oracle, *(r.values.get(b) for b in benches), r.avg, r.published_avg, r.mean_kps]
            for r in rows
        ]
        if fmt == "json":  # with the counts each number rests on
            records = [dict(zip(header, o, strict=True)) | {"counts": r.counts} for o, r in zip(out, rows, strict=True)]
            typer.echo(json.dumps(records, indent=2))
        else:
            emit(header, out, fmt)
        return
    starred, caption = _stars(rows, benches)
    counts = {b: {r.counts[b] for r in rows if b in r.counts} for b in benches}

    def head(b: str) -> str:  # one count for the whole column goes in its header, else in every cell
        return f"{b} ({'x'.join(map(str, next(iter(counts[b]))))})" if len(counts[b]) == 1 else b

    header = ["run", "hint mode", *map(head, benches), "Avg.", "published Avg.", "mean #KP"]

    def cell(i: int, r, b: str, v: float | None) -> str:
        text = _fmt(v)
        if v is not None and len(counts.get(b, ())) > 1 and b in r.counts:
            text += f" ({r.counts[b][0]}x{r.counts[b][1]})"
        return f"*{text}" if (b, i) in starred else text

    out = []
    for i, r in enumerate(rows):
        mode = f"{r.hint_mode} (oracle-assisted)" if r.oracle else r.hint_mode
        out.append(
            [
                r.label,
                mode,
                *(cell(i, r, b, r.values.get(b)) for b in benches),
                cell(i, r, "Avg.", r.avg),
                _fmt(r.published_avg),
                _fmt(r.mean_kps),
            ]
        )
    title = "accuracy (%), avg@N over (problems x samples); Avg. = unweighted mean over benchmarks"
    emit(header, out, fmt, title=title)
    typer.echo(caption)


def _effects(con, runs: list[str] | None, fmt: str) -> None:
    """The training and hint effects of each run with their paired bootstrap CIs, then its eval reward sparsity."""
    from knowrl.registry._compare import resolve_runs, reward_sparsity, within_run_effects

    rows, sparsity = [], []
    for run_id, name in resolve_runs(con, runs):
        for a, b, d in within_run_effects(con, run_id):
            what = "training" if a.hint_mode == b.hint_mode else "hints"
            arms = [f"{x.checkpoint} {x.hint_mode}" for x in (a, b)]  # the run is in its own column
            rows.append([name, what, *arms, d["avg_delta"], *d["ci95"], d["problems"]])
        sparsity += [[name, *r] for r in reward_sparsity(con, run_id)]
    if not rows and not sparsity:
        raise KnowrlError("no evaluated runs to compare", hint="ingest runs with eval results")
    header = ["run", "effect", "a", "b", "delta", "ci95_low", "ci95_high", "problems"]
    sparse_header = ["run", "checkpoint", "hint_mode", "problems", "zero_correct", "all_correct"]
    if fmt == "json":
        typer.echo(
            json.dumps(
                {
                    "effects": [dict(zip(header, r, strict=True)) for r in rows],
                    "reward_sparsity": [dict(zip(sparse_header, r, strict=True)) for r in sparsity],
                },
                indent=2,
            )
        )
        return
    if fmt != "table":
        emit(header, rows, fmt)
        return
    shown = [[*r[:4], f"{r[4]:+.1f}", f"{r[5]:+.1f} .. {r[6]:+.1f}", r[7]] for r in rows]
    emit(
        ["run", "effect", "a", "b", "b - a (points)", "95% CI (paired bootstrap)", "problems"],
        shown,
        fmt,
        title="effects: avg@N differences, problems paired and resampled",
    )
    emit(
        ["run", "checkpoint", "hint mode", "problems", "zero-correct problems", "all-correct problems"],
        [[r[0], r[1], r[2], r[3], f"{100 * r[4]:.0f}%", f"{100 * r[5]:.0f}%"] for r in sparsity],
        fmt,
        title="reward sparsity (registry view reward_sparsity): problems no sample / every sample solved",
    )


def _stars(rows, benches: list[str]) -> tuple[set[tuple[str, int]], str]:
    """Which measured cells are best in their column beyond noise, and a caption saying what the stars mean."""
    from knowrl.registry._compare import best_beyond_noise, noise

    starred, tied = set(), []
    for b in [*benches, "Avg."]:
        cells = []
        for i, r in enumerate(rows):
            if r.source != "measured":
                continue
            if b == "Avg.":  # the unweighted mean's SE: the benchmarks' SEs combined
                ses = [noise(r.values[x], *r.counts[x]) for x in r.values]
                cells.append((i, r.avg, (sum(se**2 for se in ses) ** 0.5) / len(ses)))
            elif b in r.values:
                cells.append((i, r.values[b], noise(r.values[b], *r.counts[b])))
        if len(cells) < 2:
            continue
        top = best_beyond_noise([(v, se) for _, v, se in cells])
        if top is None:
            tied.append(b)
        else:
            starred.add((b, cells[top][0]))
    caption = "* = best in its column by more than noise (1.96 standard errors of the difference)"
    if tied:
        caption += f"; no cell stands out beyond noise in: {', '.join(tied)}"
    return starred, caption


def _ensure_reference(registry: str) -> None:
    """`--with-reference` on a registry without the published tables loads them (saying so) rather than add nothing."""
    from knowrl.registry import load_reference, reader

    with reader(registry) as con:
        loaded = con.execute("SELECT count(*) FROM reference_results").fetchone()[0]
    if not loaded:
        n = load_reference(registry, REFERENCE)
        typer.echo(f"loaded the published tables ({n} rows from {REFERENCE.name}) into {registry}", err=True)


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
            _fmt(best.get(rid)),
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
    from knowrl.registry._compare import resolve_runs

    with reader(registry) as con:
        (run_id, name), *_ = resolve_runs(con, [run])
        r = con.execute(
            "SELECT status, spec_hash, git_sha, git_dirty, created_at, spec->>'$.resources.storage', inputs "
            "FROM runs WHERE run_id = ?",
            [run_id],
        ).fetchone()
        typer.echo(
            f"{name} [{run_id}] {r[0]}  spec {r[1][:12]}  git {r[2] or '-'}{' (dirty)' if r[3] else ''}  created {r[4]}"
        )
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
    csv_file: Annotated[Path, typer.Option("--csv", help="Reference results CSV.")] = REFERENCE,
) -> None:
    """Load the published KnowRL tables (marked as published, never mixed with measured runs)."""
    from knowrl.registry import load_reference as load

    typer.echo(f"loaded {load(registry, csv_file)} published rows from {csv_file} into {registry}")


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
