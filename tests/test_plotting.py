"""Tests for cnnbias.plotting."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from cnnbias import plotting  # noqa: E402


def test_band_and_paper_points():
    plotting.use_style()
    fig, ax = plotting.figure()
    line = plotting.band(ax, [1, 2, 3], [0.1, 0.2, 0.3], [0.01, 0.01, 0.02], label="ours")
    assert np.allclose(line.get_ydata(), [0.1, 0.2, 0.3])
    (pts,) = plotting.paper_points(ax, [1, 2], [0.5, 0.6])
    assert pts.get_linestyle() == "None" and pts.get_label() == "paper"
    assert len(ax.collections) == 1  # the shaded band
    with pytest.raises(ValueError, match="one shape"):
        plotting.band(ax, [1, 2], [1, 2, 3], [0, 0, 0])
    fig2, axes = plotting.figure(ncols=3)
    assert len(axes) == 3
    with pytest.raises(ValueError):
        plotting.figure(ncols=0)
