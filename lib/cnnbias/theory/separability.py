"""Linear separability of a labeled sample, decided by a linear program.

The max-pooling paper (Sec. 7) compares its network with a hard-margin linear SVM, which "will return zero
training errors only when the data is linearly separable.  This is the case for our distribution D, but no
longer the case when we add noise to the patterns".  A sample ``(x_i, y_i)``, ``y_i in {-1, +1}``, is
linearly separable (with a bias) iff some ``(w, b)`` has ``y_i (w . x_i + b) >= 1`` for all ``i`` (scale any
strict separator).  :func:`separation_slack` solves the linear program

    min  sum_i s_i   subject to   y_i (w . x_i + b) >= 1 - s_i,   s_i >= 0

(the hinge loss of the best linear classifier without a norm penalty): its optimum is 0 iff the sample is
separable, and otherwise at least the (positive) slack that no linear rule avoids.  :func:`linearly_separable`
compares the optimum with a tolerance relative to the sample size, so the decision does not rest on the
last bits of the solver (separable samples give optima at the solver's feasibility tolerance, ~1e-9 per
point; non-separable ones give optima of order 1 and more).
"""

from __future__ import annotations

import numpy as np
import torch

from cnnbias import validate as V

__all__ = ["SLACK_RTOL", "separation_slack", "linearly_separable"]

#: A sample counts as separable when the optimal total slack is at most ``SLACK_RTOL`` times its size.
SLACK_RTOL = 1e-6


def _as_arrays(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    V.floating_tensor("X", X, 2)
    V.tensor("y", y, 1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X [m, D] and y [m] must have the same m, got {tuple(X.shape)} and {tuple(y.shape)}")
    V.labels_pm1("y", y)
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X must be finite (no NaN or inf)")
    return X.detach().cpu().double().numpy(), y.detach().cpu().double().numpy()


def separation_slack(X, y) -> float:
    """Optimal total slack ``min sum_i s_i`` of the linear program in the module docstring, for ``X [m, D]``
    and labels ``y [m]`` in {-1, +1}; 0 (up to the solver's tolerance) iff the sample is linearly separable."""
    from scipy.optimize import linprog

    Xn, yn = _as_arrays(X, y)
    m, D = Xn.shape
    # variables (w [D], b, s [m]); constraint -y_i (w.x_i + b) - s_i <= -1
    A = np.hstack([-yn[:, None] * Xn, -yn[:, None], -np.eye(m)])
    c = np.concatenate([np.zeros(D + 1), np.ones(m)])
    bounds = [(None, None)] * (D + 1) + [(0.0, None)] * m
    res = linprog(c, A_ub=A, b_ub=-np.ones(m), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"the separability linear program did not solve: {res.message}")
    return float(res.fun)


def linearly_separable(X, y, rtol: float = SLACK_RTOL) -> bool:
    """True iff :func:`separation_slack` is at most ``rtol * m`` (see the module docstring)."""
    if not (isinstance(rtol, float) and rtol > 0):
        raise ValueError(f"rtol must be a positive float, got {rtol!r}")
    return separation_slack(X, y) <= rtol * len(y)
