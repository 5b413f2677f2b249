"""Tables and figures, grouped by the notebook that shows them, with the paper's values beside ours (§4-5).

- `preprocess` (notebook 01): flow maps, Table 1, the four facial regions;
- `walkthrough` (02): shapes, blocks, attention, where regions mix, costs per level;
- `results` (03): Table 2, Table 3, Fig. 7, the paper protocol's epoch pick;
- `ablations` (04): Tables 4-5, Figs. 5-6;
- `audit` (05): the protocol audit.

Every figure function returns a `matplotlib.figure.Figure` that is already closed (`finish`): a notebook cell ending
with the call shows it once, with no trailing `;`, and `save_figure` writes it. Table functions return DataFrames;
`save_table` writes CSV and markdown. Files are written atomically and hold no absolute paths.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._io import atomic_path, figures_dir


@contextlib.contextmanager
def drawn_alone(ax: Axes) -> Iterator[Axes]:
    """Hide the figure's other panels while a seaborn call fills `ax`: `sns.heatmap` draws the whole figure to see
    whether tick labels overlap, so a figure of N heatmaps drew N(N+1)/2 panels (a 4x4 Fig. 7: 136, about 18 s on a
    small CPU). The finished figure is the same."""
    others = [a for a in ax.figure.axes if a is not ax and a.get_visible()]
    for a in others:
        a.set_visible(False)
    try:
        yield ax
    finally:
        for a in others:
            a.set_visible(True)


def finish(fig: Figure) -> Figure:
    """Detach `fig` from pyplot: a notebook then shows it once (as the cell's value) and figures do not pile up."""
    plt.close(fig)
    return fig


def save_table(df: pd.DataFrame, name: str, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """`name`.csv and `name`.md in `out_dir` (default: the project's figures/)."""
    out = Path(out_dir) if out_dir is not None else figures_dir()
    paths = [out / f"{name}.csv", out / f"{name}.md"]
    with atomic_path(paths[0]) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(df.to_markdown(index=False, floatfmt=".4f") + "\n")
    return paths


def save_figure(fig: Figure, name: str, data: pd.DataFrame | None = None,
                out_dir: str | os.PathLike | None = None) -> list[Path]:
    """`name`.png (and `name`.csv with the plotted numbers) in `out_dir` (default: the project's figures/)."""
    out = Path(out_dir) if out_dir is not None else figures_dir()
    paths = [out / f"{name}.png"]
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    if data is not None:
        paths += save_table(data, name, out)[:1]
    return paths
