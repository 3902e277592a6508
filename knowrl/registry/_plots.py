"""PNG plots with matplotlib (optional extra `plot`)."""

from __future__ import annotations

from pathlib import Path

from knowrl._errors import KnowrlError


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KnowrlError("plots need matplotlib", hint="pip install 'knowrl[plot]'") from None
    return plt


def curves(series: dict[str, tuple[list, list[int]]], metric: str, out: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    for label, (points, breaks) in series.items():
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
        for b in breaks:
            ax.axvline(b, linestyle="--", color="grey", alpha=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (dashed: clip-schedule breakpoints)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def bars(rows, out: Path) -> None:
    plt = _plt()
    benches = [b for b in dict.fromkeys(b for r in rows for b in r.values)]
    fig, ax = plt.subplots(figsize=(max(9, len(benches) * 1.4), 5))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(benches))]
        ax.bar(
            xs,
            [r.values.get(b, 0) for b in benches],
            width,
            label=f"{r.label} {r.hint_mode}",
            hatch="//" if r.source == "published" else None,
            alpha=0.9,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(benches))], benches, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("per-benchmark accuracy (hatched: published)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
