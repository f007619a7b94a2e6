"""What the figures against alert age share (docs/quality.png's, vs_fink.png's, rubin.png's): the bucket axis,
missing values, and how a figure is written."""

from __future__ import annotations

from pathlib import Path

#: the x axis of every figure against alert age
AGE_LABEL = "alert age (days since first detection)"


def nan_for_none(values) -> list[float]:
    """``values`` with None (no figure for that bucket) as NaN: a gap in the line."""
    return [float("nan") if v is None else v for v in values]


def age_axes(ax, names, ylabel: str | None = None, legend_size: int = 8) -> None:
    """The alert-age buckets ``names`` on ``ax``'s x axis (one tick each), its labels, grid and legend."""
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel(AGE_LABEL)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save_figure(fig, path: Path) -> None:
    """Lay ``fig`` out, write it to ``path`` (PNG, 110 dpi) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
