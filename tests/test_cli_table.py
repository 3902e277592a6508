"""The command table: every command and sub-command of `knowrl`, with its options and arguments, as checked in.

Moving or reorganising the command modules must leave what a user types and reads unchanged: a renamed
option, a changed default or type, a lost command or a reworded help line shows here as a diff.
"""

from __future__ import annotations

import json

import typer
from conftest import snapshot

WIDTH = 100  # the help text as a terminal this wide shows it


def _type(p) -> str:
    """A parameter's type as its annotation names it (typer's own parameters), else click's type name."""
    bare = getattr(p, "bare_type", None)
    return bare() if callable(bare) else p.type.name


def _param(p) -> dict:
    out = {
        "name": p.name,
        "kind": p.param_type_name,
        "opts": list(p.opts),
        "secondary_opts": list(p.secondary_opts),
        "type": _type(p),
        "min": getattr(p, "min", None),
        "max": getattr(p, "max", None),
        "required": p.required,
        "default": p.default,
        "multiple": p.multiple,
        "nargs": p.nargs,
        "help": getattr(p, "help", None),
    }
    if p.param_type_name == "option":
        out.update(is_flag=p.is_flag, hidden=p.hidden, show_default=p.show_default)
    return out


def _command(cmd, ctx) -> dict:
    out = {
        "name": cmd.name,
        "help": cmd.help,
        "hidden": cmd.hidden,
        "params": [_param(p) for p in cmd.params],
        "help_text": cmd.get_help(ctx).splitlines(),
    }
    if hasattr(cmd, "list_commands"):  # a group
        sub = {}
        for name in cmd.list_commands(ctx):
            child = cmd.get_command(ctx, name)
            sub[name] = _command(child, _context(child, name, ctx))
        out["commands"] = sub
    return out


def _context(cmd, name: str, parent=None):
    return cmd.context_class(cmd, parent=parent, info_name=name, terminal_width=WIDTH, max_content_width=WIDTH)


def command_table() -> dict:
    """The whole tree `knowrl --help` leads to, every lazily loaded group included."""
    from knowrl.cli import app

    root = typer.main.get_command(app)
    return _command(root, _context(root, "knowrl"))


def render(table: dict, path: str = "") -> list[str]:
    """One block per command: its path, each parameter on one line (JSON values), then its --help as shown."""
    path = f"{path} {table['name']}".strip()
    lines = [f"== {path}", f"help: {json.dumps(table['help'])}", f"hidden: {json.dumps(table['hidden'])}"]
    for p in table["params"]:
        rest = {k: v for k, v in p.items() if k not in ("kind", "name")}
        lines.append(f"{p['kind']} {p['name']}: {json.dumps(rest, default=str)}")
    lines += [f"| {line}".rstrip() for line in table["help_text"]]
    for child in table.get("commands", {}).values():
        lines += ["", *render(child, path)]
    return lines


def test_the_command_table_is_as_checked_in():
    snapshot("cli.commands.txt", "\n".join(render(command_table())) + "\n")


def test_the_table_sees_every_lazy_command_and_nested_option():
    """The walk reaches into lazily loaded groups: a table that stopped at the top would pass any move."""
    table = command_table()
    assert {"validate", "run", "compare", "grading-site", "data", "kp", "model", "registry", "plot"} <= set(
        table["commands"]
    )
    select = table["commands"]["kp"]["commands"]["select"]
    assert {p["name"]: p["default"] for p in select["params"]}["strategy"] == "css"
    preflight = next(p for p in table["commands"]["run"]["params"] if p["name"] == "preflight")
    assert preflight["opts"] == ["--preflight"] and preflight["secondary_opts"] == ["--no-preflight"]


def test_a_loaded_command_is_listed_once():
    """A command loaded before the listing (as an embedding program may) is cached, and still listed once."""
    from knowrl.cli import app

    root = typer.main.get_command(app)
    ctx = _context(root, "knowrl")
    root.get_command(ctx, "compare")
    names = root.list_commands(ctx)
    assert names.count("compare") == 1
    assert names == list(command_table()["commands"])


def test_a_command_imports_only_its_own_group():
    """`knowrl validate` builds no other command group: the lazy table loads the one module it names."""
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys; from knowrl.cli import main; rc = main(['validate', 'experiments/css_main.yaml']);"
        "print(sorted(m for m in sys.modules if m.startswith('knowrl.cli.'))); sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['knowrl.cli.spec']"
