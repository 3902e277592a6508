"""`knowrl kp select | stats | extract`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import UsageError
from knowrl.cli._common import key_values

kp_app = typer.Typer(
    help="Knowledge points: select subsets with rollouts, summarise, extract.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DataOpt = Annotated[str, typer.Option("--data", help="Problems: a .jsonl/.parquet file, a folder, or hf://...")]
GenOpt = Annotated[str, typer.Option("--generator", help="transformers, vllm or openai.")]


@kp_app.command("select")
def select(
    data: DataOpt,
    strategy: Annotated[str, typer.Option(help="none, all, random, max_score, s_loo, t_loo, cbrs or css.")] = "css",
    model: Annotated[
        str | None, typer.Option(help="Policy model that scores subsets (path, hub id, or served name).")
    ] = None,
    generator: GenOpt = "transformers",
    server_url: Annotated[str | None, typer.Option(help="Base URL for --generator openai.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="Strategy parameter key=value (repeatable).")] = None,
    out: Annotated[Path, typer.Option(help="Output JSONL (resumed when it exists).")] = Path("selections.jsonl"),
    limit: Annotated[int | None, typer.Option(help="Only the first K problems.")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size of the transformers generator.")] = 16,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Rollout cache folder, shared by every strategy and run with the same model and sampling "
            "[default: rollouts/ beside --out]."
        ),
    ] = None,
) -> None:
    """Select KPs per problem; write records the data loader reads back as precomputed selections."""
    from knowrl.data import load_problems
    from knowrl.grading import Grader
    from knowrl.kp import make_scorer, select_dataset, strategy_spec
    from knowrl.kp._select import SCORED

    hints = strategy_spec(strategy, **key_values(param, "--param", "delta=0.1"))
    problems = load_problems(data, limit=limit).problems
    gen = None
    if strategy in SCORED:
        if not model:
            raise UsageError(f"strategy {strategy} scores KP subsets with rollouts and needs --model")
        from knowrl.generation import make_generator

        gen = make_generator(generator, model, batch_size=batch_size, server_url=server_url)
    grader = Grader()
    try:
        scorer = make_scorer(gen, grader, hints, cache_dir=cache or out.parent / "rollouts") if gen else None
        sizes: list[int] = []
        rollouts: list[int] = []

        def report(problem, sel) -> None:
            sizes.append(len(sel.indices))
            rollouts.append(sel.rollouts)
            typer.echo(f"{problem.id}: kept {list(sel.indices)} of {len(problem.kps)} KPs ({sel.rollouts} rollouts)")

        done = select_dataset(problems, hints, scorer, out, progress=report)
    finally:
        grader.close()
        if gen:
            gen.close()
    if done:
        typer.echo(
            f"{done} problems selected now (mean #KP {sum(sizes) / done:.2f}, "
            f"{sum(rollouts) / done:.1f} rollouts each); {len(problems) - done} were already in {out}"
        )
    else:
        typer.echo(f"nothing to do: all {len(problems)} problems are already in {out}")


@kp_app.command("stats")
def stats(
    source: Annotated[str, typer.Argument(help="Selections file or any dataset source.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The paper's table columns: mean #KP per strategy and the fraction of empty selections."""
    from knowrl.data import inspect_result, load_problems

    result = load_problems(source)
    s = inspect_result(result)
    problems = result.problems
    rows = [
        {
            "strategy": "all",
            "problems": s.records,
            "mean_kps": s.mean_kps,
            "empty_fraction": sum(not p.kps for p in problems) / max(1, s.records),
        }
    ]
    rows += [
        {"strategy": x.name, "problems": x.problems, "mean_kps": x.mean_size, "empty_fraction": x.empty / x.problems}
        for x in s.selections
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'strategy':12} {'problems':>8} {'mean #KP':>9} {'empty':>7}")
    for r in rows:
        typer.echo(f"{r['strategy']:12} {r['problems']:8d} {r['mean_kps']:9.2f} {100 * r['empty_fraction']:6.1f}%")


@kp_app.command("extract")
def extract(
    data: DataOpt,
    teacher: Annotated[str, typer.Option(help="Teacher model path/hub id, or an OpenAI-compatible base URL.")],
    teacher_model: Annotated[str | None, typer.Option(help="Served model name when --teacher is a URL.")] = None,
    generator: GenOpt = "transformers",
    out: Annotated[Path, typer.Option(help="Output JSONL with kp_list per problem.")] = Path("kps.jsonl"),
    limit: Annotated[int | None, typer.Option(help="Only the first K problems.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Maximum teacher tokens per problem.")] = 4096,
) -> None:
    """Ask a teacher to decompose each reference solution into KPs; drop KPs that leak the answer."""
    from knowrl._io import write_rows
    from knowrl.data import load_problems
    from knowrl.generation import make_generator
    from knowrl.grading import Grader
    from knowrl.kp import extract_kps

    problems = load_problems(data, limit=limit).problems
    usable = [p for p in problems if p.solution]
    if not usable:
        raise UsageError(f"no problem in {data} has a reference solution", hint="add a `solution` field (plain format)")
    is_url = teacher.startswith(("http://", "https://"))
    gen = make_generator(
        "openai" if is_url else generator,
        teacher_model or teacher if is_url else teacher,
        server_url=teacher if is_url else None,
    )
    grader = Grader()
    try:
        results = extract_kps(usable, gen, grader, max_tokens=max_tokens)
    finally:
        grader.close()
        gen.close()
    rows = [
        {
            "id": p.id,
            "benchmark": p.benchmark,
            "problem": p.problem,
            "answer": p.answer,
            "solution": p.solution,
            "kp_list": r.kps,
            "dropped_leaking_kps": r.dropped,
        }
        for p, r in zip(usable, results, strict=True)
    ]
    write_rows(out, rows)
    dropped = sum(len(r.dropped) for r in results)
    typer.echo(
        f"wrote {len(rows)} problems to {out}: {sum(len(r.kps) for r in results)} KPs kept, {dropped} dropped "
        f"for leaking the answer; {len(problems) - len(usable)} problems had no solution and were skipped"
    )
