"""`knowrl validate | show | schema | explain`: a spec checked, resolved, hashed and documented."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError

validate_app = typer.Typer(add_completion=False, rich_markup_mode=None)
show_app = typer.Typer(add_completion=False, rich_markup_mode=None)
schema_app = typer.Typer(add_completion=False, rich_markup_mode=None)
explain_app = typer.Typer(add_completion=False, rich_markup_mode=None)

SpecArg = Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides in dotlist syntax, e.g. algorithm.learning_rate=2e-6 eval.hint_modes=[none].",
        show_default=False,
    ),
]


@validate_app.command("validate")
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


@show_app.command("show")
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


@schema_app.command("schema")
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


@explain_app.command("explain")
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
