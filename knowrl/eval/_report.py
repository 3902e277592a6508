"""The paper's table: hint modes as rows, benchmarks as columns, plus the unweighted Avg."""

from __future__ import annotations

from knowrl.eval._runner import AVG, EvalResult, mode_label


def table_rows(result: EvalResult, metric: str = "accuracy") -> tuple[list[str], list[list[str]]]:
    header = ["hint mode", *result.benchmarks, AVG]
    rows = []
    for mode in result.hint_modes:
        cells = [f"{100 * result.scores[(b, mode)][metric]:.2f}" for b in result.benchmarks]
        avg = result.scores[(AVG, mode)].get(metric)
        rows.append([mode_label(mode), *cells, f"{100 * avg:.2f}" if avg is not None else "-"])
    return header, rows


def print_table(result: EvalResult, metric: str = "accuracy") -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(result, metric)
    table = Table(*header, title=f"{metric} (%)  -- Avg. is the unweighted mean over benchmarks")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
