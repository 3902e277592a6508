"""The `knowrl` command: a thin typer layer over the library, one module per command group.

`knowrl/cli/<group>.py` holds the commands of one group (`spec`, `data`, `kp`,
`eval`, `plan`, `run`, `registry`, `compare`, `export`); each parses its
options, calls the library and prints. This module holds the app, the table
of which module serves which command, and `main`. A group's module is imported
only when one of its commands runs (or `--help` lists them), and every command
imports what it needs inside its body, so `knowrl --help` and `knowrl validate`
never pay for torch, ray, aim or vllm.
"""

from __future__ import annotations

import os
import sys

import typer

from knowrl._errors import KnowrlError


class _LazyGroup(typer.core.TyperGroup):
    """Sub-commands whose modules are imported only when they run (or --help lists them).

    Click's documented "lazily loading subcommands" pattern: `knowrl validate`
    must not pay for building the data, eval and kp command trees.
    """

    LAZY = {  # name -> (module, attribute holding a typer app), in the order --help lists them
        "validate": ("knowrl.cli.spec", "validate_app"),
        "show": ("knowrl.cli.spec", "show_app"),
        "schema": ("knowrl.cli.spec", "schema_app"),
        "explain": ("knowrl.cli.spec", "explain_app"),
        "grade": ("knowrl.cli.data", "grade_app"),
        "data": ("knowrl.cli.data", "data_app"),
        "model": ("knowrl.cli.eval", "model_app"),
        "eval": ("knowrl.cli.eval", "eval_app"),
        "kp": ("knowrl.cli.kp", "kp_app"),
        "plan": ("knowrl.cli.plan", "plan_app"),
        "compile": ("knowrl.cli.plan", "compile_app"),
        "sweep": ("knowrl.cli.plan", "sweep_app"),
        "ingest": ("knowrl.cli.registry", "ingest_app"),
        "query": ("knowrl.cli.registry", "query_app"),
        "compare": ("knowrl.cli.compare", "compare_app"),
        "runs": ("knowrl.cli.registry", "runs_app"),
        "show-run": ("knowrl.cli.registry", "show_run_app"),
        "registry": ("knowrl.cli.registry", "registry_app"),
        "ui": ("knowrl.cli.registry", "ui_app"),
        "plot": ("knowrl.cli.registry", "plot_app"),
        "run": ("knowrl.cli.run", "run_app"),
        "status": ("knowrl.cli.run", "status_app"),
        "logs": ("knowrl.cli.run", "logs_app"),
        "cancel": ("knowrl.cli.run", "cancel_app"),
        "export": ("knowrl.cli.export", "export_app"),
        "grading-site": ("knowrl.cli.export", "site_app"),
    }

    def list_commands(self, ctx):
        # a loaded command is cached in self.commands: list it once, in the table's place
        return [*(c for c in super().list_commands(ctx) if c not in self.LAZY), *self.LAZY]

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


@app.callback()
def _knowrl() -> None:
    """Declarative experiments for knowledge-point-guided RL of LLM math reasoners (KnowRL)."""
    # every command is in the lazy table: a callback keeps `knowrl` a group


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


__all__ = ["app", "main"]
