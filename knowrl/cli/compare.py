"""`knowrl compare`: the paper's table, differences between runs, and the effects within one, with their noise."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from knowrl._errors import KnowrlError
from knowrl.cli._common import DEFAULT_REGISTRY, FormatOpt, RegistryOpt, emit, fmt_number

compare_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@compare_app.command("compare")
def compare(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or prefixes) or names; all if none.")] = None,
    hint_mode: Annotated[str | None, typer.Option(help="Comma-separated hint modes to show.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Only this checkpoint (base, final, step).")] = None,
    with_reference: Annotated[bool, typer.Option("--with-reference", help="Add the published rows.")] = False,
    diff: Annotated[
        tuple[str, str] | None,
        typer.Option(help="A B (run ids, prefixes or names): per-benchmark deltas of their last checkpoints, a CI."),
    ] = None,
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
        text = fmt_number(v)
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
                fmt_number(r.published_avg),
                fmt_number(r.mean_kps),
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
        label = f"{name} ({run_id[:8]})"  # runs may share a name (one spec on changed inputs)
        for a, b, d in within_run_effects(con, run_id):
            what = "training" if a.hint_mode == b.hint_mode else "hints"
            arms = [f"{x.checkpoint} {x.hint_mode}" for x in (a, b)]  # the run is in its own column
            rows.append([label, what, *arms, d["avg_delta"], *d["ci95"], d["problems"]])
        sparsity += [[label, *r] for r in reward_sparsity(con, run_id)]
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
        from knowrl.registry._ingest import reference_csv

        n = load_reference(registry)
        typer.echo(f"loaded the published tables ({n} rows from {reference_csv().name}) into {registry}", err=True)
