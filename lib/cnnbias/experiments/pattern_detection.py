"""Pattern detection distributions (:cite:`maxpool_orthogonal`, Sec. 3; :cite:`psi_orthogonal`, App. E.2, E.5):
the Monte Carlo check of the generators, as the sweep ``maxpool.pattern_detection``.

One cell per distribution, with ``m`` sampled points (``m_mc`` of the chapter; 400,000 at paper scale):

* ``D`` (``n = 10`` patches, ``l = 20`` patterns): spurious patches i.i.d. uniform over ``o_3, ..., o_l``;
* ``D_u`` (``n = 10``, ``d = 30``): ``n - 1`` distinct spurious patterns;
* ``D_vc`` (``n = 10``, ``d = 2n = 20``): one of ``p_(2j+1), p_(2j+2)`` per position;
* ``D_p`` (``n = 10``, ``d = 30``, ``p = 0.8``): ``p_3`` with probability ``p`` given ``y = 1``, else ``p_4``.

A cell measures the label rule (``o_1`` in ``x`` iff ``y = 1``, ``o_2`` in ``x`` iff ``y = -1``, exactly one
discriminative patch) and the empirical pattern biases ``s_i = (1/m) sum_j y_j 1{p_i in x_j}`` (PSI Eq. 4) with
their standard errors.  The expected biases are ``E s_i = 0`` for every spurious pattern, except ``D_p``:
``E s_3 = p - 1/2 = -E s_4``.  The chapter's library checks ``maxpool.label_rule`` and
``maxpool.spurious_unbiased`` are computed from the cells (:func:`claim_label_rule`,
:func:`claim_spurious_unbiased`).  Each cell draws its sample from its own generator,
``config.generators("pattern_detection.mc", cell config, 1)[0]``.
"""

from __future__ import annotations

import torch

from cnnbias import config
from cnnbias.data import patterns as P

__all__ = ["CONFIGS", "DISTRIBUTIONS", "Z_TOL", "pattern_detection_cells", "pattern_detection_cell",
           "expected_bias", "max_z", "claim_label_rule", "claim_spurious_unbiased"]

#: For each scale the Monte Carlo size ``m_mc`` and the image settings ``d`` (patch size) and ``n`` (patches).
CONFIGS = {
    "smoke": {"m_mc": 2000, "d": 25, "n": 16},
    "book": {"m_mc": 40000, "d": 25, "n": 16},
    "paper": {"m_mc": 400000, "d": 25, "n": 16},
}
#: The four distributions checked, with their settings (``npat`` is the number of patterns).
DISTRIBUTIONS = {
    "D": {"n": 10, "npat": 20},
    "D_u": {"n": 10, "npat": 30},
    "D_vc": {"n": 10, "npat": 20},
    "D_p": {"n": 10, "npat": 30, "p": 0.8},
}
#: Tolerance of the largest standardized deviation of a spurious pattern's bias (library check).
Z_TOL = 4.5


def pattern_detection_cells(scale: str) -> list[dict]:
    """One cell per distribution of :data:`DISTRIBUTIONS`, each with ``m = CONFIGS[scale]["m_mc"]`` points."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    m = int(CONFIGS[scale]["m_mc"])
    return [{"dist": name, "m": m, **spec} for name, spec in DISTRIBUTIONS.items()]


def _sample(cfg: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    dist, m, n, npat = cfg["dist"], int(cfg["m"]), int(cfg["n"]), int(cfg["npat"])
    if dist == "D":
        return P.sample_D(m, n, npat, gen)
    if dist == "D_u":
        return P.sample_Du(m, n, npat, gen)
    if dist == "D_vc":
        if npat != 2 * n:
            raise ValueError(f"cfg['npat'] must be 2 * cfg['n'] = {2 * n} for D_vc, got {npat}")
        return P.sample_Dvc(m, n, gen)
    return P.sample_Dp(m, n, npat, float(cfg["p"]), gen)


def expected_bias(cfg: dict) -> list[float]:
    """``E s_i`` of the ``npat`` patterns' biases under the cell's distribution (``s_1 = 1/2``,
    ``s_2 = -1/2``; spurious 0 except ``D_p``: ``p - 1/2`` for ``p_3`` and ``1/2 - p`` for ``p_4``)."""
    out = [0.5, -0.5] + [0.0] * (int(cfg["npat"]) - 2)
    if cfg["dist"] == "D_p":
        out[2], out[3] = float(cfg["p"]) - 0.5, 0.5 - float(cfg["p"])
    return out


def pattern_detection_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One distribution: ``rule_ok`` (the label rule holds on every point), ``one_discriminative`` (exactly one
    ``o_1`` or ``o_2`` patch in every point), the biases ``s`` and their standard errors ``se`` (lists of
    ``npat``), and ``z_max``, the largest ``|s_i - E s_i| / se_i`` over the spurious patterns ``i >= 3``.
    Sampling runs on the CPU (integer indices); ``device`` and ``dtype`` are not used."""
    for key in ("dist", "m", "n", "npat"):
        if key not in cfg:
            raise ValueError(f"cfg[{key!r}] is missing (a cell needs dist, m, n, npat)")
    if cfg["dist"] not in DISTRIBUTIONS:
        raise ValueError(f"cfg['dist'] must be one of {', '.join(DISTRIBUTIONS)}, got {cfg['dist']!r}")
    if cfg["dist"] == "D_p" and "p" not in cfg:
        raise ValueError("cfg['p'] is missing (D_p needs the probability p)")
    for key in ("m", "n", "npat"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 2:
            raise ValueError(f"cfg[{key!r}] must be an integer >= 2, got {cfg[key]!r}")
    gen = config.generators("pattern_detection.mc", cfg, 1)[0]
    idx, y = _sample(cfg, gen)
    npat, m = int(cfg["npat"]), int(cfg["m"])
    c = P.contains(idx, npat)
    n0, n1 = (idx == 0).sum(1), (idx == 1).sum(1)
    rule_ok = bool(torch.equal(c[:, 0] > 0, y > 0) and torch.equal(c[:, 1] > 0, y < 0))
    one = bool(((n0 + n1) == 1).all())
    yc = y[:, None].double() * c.double()
    s = yc.mean(0)
    se = yc.std(0) / m**0.5
    target = torch.tensor(expected_bias(cfg), dtype=torch.float64)
    z = float(((s[2:] - target[2:]).abs() / se[2:].clamp(min=1e-12)).max())
    return {"rule_ok": rule_ok, "one_discriminative": one, "s": s.tolist(), "se": se.tolist(), "z_max": z}


def max_z(cells: list[tuple[dict, dict]]) -> tuple[float, int]:
    """``(largest z over the cells, number of spurious-pattern statistics)``."""
    return (max(float(r["z_max"]) for _, r in cells), sum(int(c["npat"]) - 2 for c, _ in cells))


def claim_label_rule(cells: list[tuple[dict, dict]], claims) -> None:
    """``maxpool.label_rule``: the label rule and one discriminative patch hold on every sampled point of
    every distribution.  The chapter adds it to its library checks (``claims.checks``)."""
    ok = all(bool(r["rule_ok"]) and bool(r["one_discriminative"]) for _, r in cells)
    claims.check(
        "maxpool.label_rule",
        f"o_1 in x iff y=+1, o_2 in x iff y=-1, one discriminative patch ({len(cells)} distributions)",
        ok,
        measured=str(ok),
        paper="Sec. 3 of both papers",
        tolerance="exact",
    )


def claim_spurious_unbiased(cells: list[tuple[dict, dict]], claims) -> None:
    """``maxpool.spurious_unbiased``: the largest standardized deviation of a spurious pattern's bias from its
    expectation is at most :data:`Z_TOL` (a library check of the generators)."""
    z, _ = max_z(cells)
    claims.at_most(
        "maxpool.spurious_unbiased",
        "largest |s_i - E s_i| / SE over spurious patterns (E s_i = 0 except D_p: p - 1/2 for p_3, 1/2 "
        "- p for p_4)",
        z,
        Z_TOL,
        paper="E[y 1{p in x}] = 0 for D_u, D_vc (App. E.2)",
    )


# -- the sweep and its claims -------------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

SWEEP = _register(_Sweep(
    "maxpool.pattern_detection", pattern_detection_cell,
    cells={s: pattern_detection_cells(s) for s in CONFIGS},
    code=("cnnbias.config", "cnnbias.data.patterns"),
    description="Max-pooling Sec. 3 / PSI App. E: Monte Carlo check of the pattern detection distributions",
    label=lambda c: f"{c['dist']},m={c['m']}",
    cpu_only=True,
))

_register_claim(_ClaimSpec("maxpool.label_rule", "maxpool.pattern_detection", claim_label_rule))
_register_claim(_ClaimSpec("maxpool.spurious_unbiased", "maxpool.pattern_detection", claim_spurious_unbiased))
