"""One figure style for the book, and paper-vs-ours overlays.

- :func:`use_style` sets matplotlib's style once per chapter (PNG output, fixed fonts and sizes, so
  re-executed notebooks give identical figures);
- :func:`figure` makes a figure of one or more panels at the book's width;
- :func:`band` draws a mean curve with a shaded band (standard error or standard deviation);
- :func:`paper_points` overlays values reported in a paper's text as hollow markers, so a reader
  sees at a glance where our numbers and the paper's agree.
"""

from __future__ import annotations

import numpy as np

__all__ = ["use_style", "figure", "band", "paper_points", "PAPER_STYLE"]

WIDTH = 7.0  # inches for a full-width figure
PAPER_STYLE = dict(marker="o", markerfacecolor="none", markeredgewidth=1.4, linestyle="none", color="black")


def use_style() -> None:
    """Apply the book's matplotlib style (inline PNG, no SVG, deterministic metadata)."""
    import matplotlib

    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "legend.fontsize": 8,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.constrained_layout.use": True,
            "svg.hashsalt": "cnnbias",
        }
    )
    try:  # inline figures as PNG only (nbval ignores PNG; SVG text would be compared)
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # outside IPython
        pass


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None):
    """``fig, axes`` with panels of equal size at the book's width."""
    import matplotlib.pyplot as plt

    from cnnbias import validate as V

    V.integer("ncols", ncols)
    V.integer("nrows", nrows)
    for nm, v in (("width", width), ("height", height)):
        if v is not None:
            V.positive(nm, v)
    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be >= 1, got ncols={ncols}, nrows={nrows}")
    w = width or (WIDTH if ncols > 1 else WIDTH * 0.62)
    h = height or (w / ncols) * 0.78 * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=True)
    return fig, axes


def band(ax, x, mean, spread, label: str | None = None, color=None, **kwargs):
    """Plot ``mean`` against ``x`` with a shaded band ``mean +- spread``; returns the line."""
    try:
        x, mean, spread = (np.asarray(v, dtype=float) for v in (x, mean, spread))
    except (TypeError, ValueError):
        raise TypeError("x, mean and spread must be arrays of numbers of one shape") from None
    if not (x.shape == mean.shape == spread.shape):
        raise ValueError(f"x, mean and spread must have one shape, got {x.shape}, {mean.shape}, {spread.shape}")
    if x.ndim != 1:
        raise ValueError(f"x, mean and spread must be 1-d, got shape {x.shape}")
    if np.any(spread < 0):
        raise ValueError("spread must be >= 0 (a band half-width such as a standard deviation)")
    (line,) = ax.plot(x, mean, label=label, color=color, **kwargs)
    ax.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def paper_points(ax, x, y, label: str = "paper", **kwargs):
    """Overlay values reported in the paper (hollow black markers by default)."""
    style = dict(PAPER_STYLE) | kwargs
    try:
        xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("x and y must be arrays of numbers") from None
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have one shape, got {xa.shape} and {ya.shape}")
    return ax.plot(xa, ya, label=label, **style)
