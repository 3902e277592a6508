"""The `knowrl` command: a thin typer layer over the library.

Every command imports what it needs inside its body, so `knowrl --help` and
`knowrl validate` never pay for torch, ray, aim or vllm.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError


class _LazyGroup(typer.core.TyperGroup):
    """Sub-commands whose modules are imported only when they run (or --help lists them).

    Click's documented "lazily loading subcommands" pattern: `knowrl validate`
    must not pay for building the data, eval and kp command trees.
    """

    LAZY = {  # name -> (module, attribute holding a typer app)
        "grade": ("knowrl._cli_data", "grade_app"),
        "data": ("knowrl._cli_data", "data_app"),
        "model": ("knowrl._cli_eval", "model_app"),
        "eval": ("knowrl._cli_eval", "eval_app"),
        "kp": ("knowrl._cli_kp", "kp_app"),
        "plan": ("knowrl._cli_plan", "plan_app"),
        "compile": ("knowrl._cli_plan", "compile_app"),
        "sweep": ("knowrl._cli_plan", "sweep_app"),
        "ingest": ("knowrl._cli_registry", "ingest_app"),
        "query": ("knowrl._cli_registry", "query_app"),
        "compare": ("knowrl._cli_compare", "compare_app"),
        "runs": ("knowrl._cli_registry", "runs_app"),
        "show-run": ("knowrl._cli_registry", "show_run_app"),
        "registry": ("knowrl._cli_registry", "registry_app"),
        "ui": ("knowrl._cli_registry", "ui_app"),
        "plot": ("knowrl._cli_registry", "plot_app"),
        "run": ("knowrl._cli_run", "run_app"),
        "status": ("knowrl._cli_run", "status_app"),
        "logs": ("knowrl._cli_run", "logs_app"),
        "cancel": ("knowrl._cli_run", "cancel_app"),
        "export": ("knowrl._cli_export", "export_app"),
        "grading-site": ("knowrl._cli_export", "site_app"),
    }

    def list_commands(self, ctx):
        return [*super().list_commands(ctx), *self.LAZY]

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.commands or cmd_name not in self.LAZY:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, attr = self.LAZY[cmd_name]
        command = typer.main.get_command(getattr(importlib.import_module(module), attr))
        command.name = cmd_name
        self.commands[cmd_name] = command
        return command


app = typer.Typer(
    cls=_LazyGroup,
    name="knowrl",
    help="Declarative experiments for knowledge-point-guided RL of LLM math reasoners (KnowRL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SpecArg = Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides in dotlist syntax, e.g. algorithm.learning_rate=2e-6 eval.hint_modes=[none].",
        show_default=False,
    ),
]


@app.command()
def validate(spec: SpecArg, overrides: OverridesArg = None) -> None:
    """Check a spec (and overrides); report every problem with file:line, key and fix."""
    from knowrl.spec import load_spec, spec_hash

    s = load_spec(spec, overrides or [])
    phases = s.algorithm.phases()
    parts = [f"hash {spec_hash(s)[:12]}", f"{len(phases)} training phase{'s' if len(phases) != 1 else ''}"]
    if s.eval.enabled:
        parts.append(f"eval {s.eval.suite or 'inline suite'} x {','.join(s.eval.hint_modes)}")
    if s.sweep:
        parts.append(f"sweep over {', '.join(s.sweep.axis_keys())}")
    typer.echo(f"ok  {spec}: {s.name} ({'; '.join(parts)})")


@app.command()
def show(
    spec: SpecArg,
    overrides: OverridesArg = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="The fully resolved spec as YAML (default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The fully resolved spec as JSON.")] = False,
    hash_only: Annotated[bool, typer.Option("--hash", help="Only the spec hash.")] = False,
    inputs: Annotated[
        bool, typer.Option("--inputs", help="The fingerprints of the data and model it reads, and the run id.")
    ] = False,
) -> None:
    """Print a spec with every default filled in, its hash, or the inputs that make its run id."""
    from knowrl.spec import load_spec, spec_hash

    s = load_spec(spec, overrides or [])
    if hash_only:
        typer.echo(spec_hash(s))
        return
    if inputs:
        from knowrl.plan import plan
        from knowrl.plan._inputs import describe_inputs

        p = plan(s)
        typer.echo(f"run {p.run_id} = spec {p.spec_hash[:12]} + the fingerprints of:")
        for what, line in describe_inputs(p.inputs).items():
            typer.echo(f"  {what:20} {line}")
        return
    data = s.model_dump(mode="json")
    if as_json:
        import json

        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), nl=False)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Where to write the JSON Schema.")] = Path("schemas/experiment.schema.json"),
    check: Annotated[bool, typer.Option("--check", help="Fail if the file differs from the models.")] = False,
) -> None:
    """Regenerate the JSON Schema editors use for experiment YAML."""
    from knowrl.spec import schema_text, write_schema

    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != schema_text():
            raise KnowrlError(f"{out} is out of date with the spec models", hint="run `knowrl schema`")
        typer.echo(f"ok  {out} is up to date")
        return
    typer.echo(f"wrote {write_schema(out)}")


@app.command()
def explain(
    key: Annotated[
        str, typer.Argument(help="A dotted spec key, e.g. algorithm or hints.delta; empty for the top.")
    ] = "",
) -> None:
    """Document the spec keys under KEY: type, default and what each one does."""
    from knowrl.spec._explain import explain as rows_for

    rows = rows_for(key)
    if not rows:
        typer.echo(f"{key} is a value, not a section; `knowrl explain {key.rpartition('.')[0]}` documents it")
        return
    width = max(len(r[0]) for r in rows)
    for full, kind, default, doc in rows:
        typer.echo(f"{full.ljust(width)}  {doc}\n{' ' * width}  type {kind}; default {default}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a `KnowrlError` becomes a message and an exit code, never a traceback."""
    debug = os.environ.get("KNOWRL_DEBUG") == "1"
    try:
        app(args=argv, prog_name="knowrl")  # typer handles its own usage errors and exits
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KnowrlError as e:
        if debug:
            raise
        sys.stderr.write(f"error: {e.render()}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as e:  # a bug in knowrl, not bad input
        if debug:
            raise
        sys.stderr.write(f"internal error: {type(e).__name__}: {e}\n")
        sys.stderr.write("  hint: rerun with KNOWRL_DEBUG=1 for the traceback, and please report it\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
