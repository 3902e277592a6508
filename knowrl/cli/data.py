"""`knowrl data ...` and `knowrl grade`: data inspection, prompt rendering and offline grading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import UsageError

data_app = typer.Typer(help="Inspect datasets and render hint prompts.", no_args_is_help=True, rich_markup_mode=None)

SourceArg = Annotated[str, typer.Argument(help="A .jsonl/.parquet file, a folder of them, or hf://org/name@split.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Record format, or auto to detect it.")]
SkipOpt = Annotated[bool, typer.Option("--skip-bad", help="Skip records that break their format (counted).")]


@data_app.command("inspect")
def inspect(
    source: SourceArg,
    fmt: FormatOpt = "auto",
    skip_bad: SkipOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Record count, format, per-benchmark counts, mean #KP and the size of each precomputed selection."""
    from knowrl.data import inspect_result, load_problems

    stats = inspect_result(load_problems(source, fmt, skip_bad=skip_bad))
    if as_json:
        typer.echo(json.dumps(stats.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{stats.source}[/]  format {stats.format}  {stats.records} problems"
        + (f"  ({stats.skipped} bad records skipped)" if stats.skipped else "")
        + f"  mean #KP {stats.mean_kps:.2f}"
    )
    bench = Table("benchmark", "problems")
    for name, n in stats.benchmarks.items():
        bench.add_row(name, str(n))
    console.print(bench)
    if stats.selections:
        sel = Table("selection", "problems", "mean #KP", "empty", "empty %")
        for s in stats.selections:
            sel.add_row(
                s.name, str(s.problems), f"{s.mean_size:.2f}", str(s.empty), f"{100 * s.empty / s.problems:.1f}"
            )
        console.print(sel)


@data_app.command("render")
def render(
    source: SourceArg,
    strategy: Annotated[
        str, typer.Option(help="Selection to render: none, all, or a precomputed one such as css or cbrs.")
    ] = "css",
    limit: Annotated[int, typer.Option(help="Problems to render.")] = 3,
    fmt: FormatOpt = "auto",
    suffix: Annotated[str | None, typer.Option(help="Answer-format suffix (default: KnowRL's).")] = None,
) -> None:
    """Print the hint prompts a strategy's selections produce, exactly as the model sees them."""
    from knowrl.data import load_problems
    from knowrl.kp import render_prompt
    from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX

    result = load_problems(source, fmt, limit=limit)
    for p in result.problems:
        selection = p.selection(strategy)
        typer.echo(f"===== {p.benchmark} {p.id} ({p.origin}) {strategy}: {len(selection)} of {len(p.kps)} KPs =====")
        typer.echo(render_prompt(p, selection, suffix or DEFAULT_PROMPT_SUFFIX))


@data_app.command("synthetic")
def synthetic(
    out: Annotated[Path, typer.Argument(help="The .jsonl file to write (plain format, with KPs).")],
    problems: Annotated[int, typer.Option(help="Problems to write.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed of the distractors, wording and order.")] = 0,
    benchmark: Annotated[str, typer.Option(help="Benchmark name recorded in each problem.")] = "counts",
) -> None:
    """Write the counting-facts family the quickstart trains on: one fact answers each problem, the rest distract."""
    from knowrl._io import write_rows
    from knowrl.data import counting_problems

    if problems < 1:
        raise UsageError("--problems must be at least 1")
    write_rows(out, counting_problems(problems, seed=seed, benchmark=benchmark))
    typer.echo(f"wrote {problems} problems to {out}")


grade_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@grade_app.command("grade")
def grade(
    responses: Annotated[Path, typer.Argument(help="JSONL of {example_id or problem_id, response, [answer]}.")],
    gold: Annotated[str | None, typer.Option(help="Dataset with the gold answers (matched by problem id).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write per-sample verdicts here (.jsonl or .parquet).")] = None,
    require_think_close: Annotated[bool, typer.Option(help="Grade 0 without a closing </think>.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds per equivalence check.")] = 5.0,
) -> None:
    """Grade existing generations and print accuracy per benchmark."""
    from knowrl.data import load_problems
    from knowrl.data._sources import iter_records
    from knowrl.grading import Grader

    problems = {p.id: p for p in load_problems(gold).problems} if gold else {}
    rows: list[dict] = []
    for where, rec in iter_records(str(responses)):
        if not isinstance(rec, dict) or not isinstance(rec.get("response"), str):
            raise UsageError(f"{where}: each record needs a string `response`")
        pid = str(rec.get("example_id", rec.get("problem_id", rec.get("id", ""))))
        answer = rec.get("answer")
        if answer is None:
            if pid not in problems:
                raise UsageError(
                    f"{where}: no `answer` and problem id {pid!r} is not in the gold data",
                    hint="pass --gold DATA, or add `answer` to each record",
                )
            answer = problems[pid].answer
        bench = rec.get("benchmark") or (problems[pid].benchmark if pid in problems else "all")
        rows.append({"benchmark": bench, "problem_id": pid, "gold": str(answer), "response": rec["response"]})
    grader = Grader(require_think_close=require_think_close, timeout_s=timeout)
    try:
        verdicts = grader.grade_many((r["gold"], r["response"]) for r in rows)
    finally:
        grader.close()
    per: dict[str, list[bool]] = {}
    for r, v in zip(rows, verdicts, strict=True):
        r.update(correct=v.correct, extracted=v.answer, reason=v.reason)
        del r["response"]
        per.setdefault(r["benchmark"], []).append(v.correct)
    for bench, marks in sorted(per.items()):
        typer.echo(f"{bench:20} {100 * sum(marks) / len(marks):6.2f}%  ({sum(marks)}/{len(marks)})")
    if out:
        from knowrl._io import write_rows

        write_rows(out, rows)
        typer.echo(f"wrote {len(rows)} verdicts to {out}")
