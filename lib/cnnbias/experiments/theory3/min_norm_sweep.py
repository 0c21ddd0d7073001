"""The sweep ``theory3.min_norm``: the cells behind the chapter ``book/part4/min_norm`` (:cite:`theory_iii`,
App. 9.4.1, 9.6, 9.10.5-9.10.6) and the claims computed from them.

One cell is one sub-experiment of :mod:`cnnbias.experiments.theory3.min_norm` at one value of the parameter
it loops over, for a range of runs ``[r0, r1)``:

- ``min_norm``: GD and SGD from zero to ``w_dagger = X^T (X X^T)^-1 y`` (Lemmas 3-4, Theorem 4, Corollary 1);
- ``init_scale`` (one initial scale each): GD from ``w0 != 0`` to ``w_dagger + P_null w0``;
- ``step_size`` (one ``eta s_max`` each): convergence iff ``eta s_max < 2``;
- ``tikhonov`` (one ``lam`` each): the ridge solution tends to ``w_dagger`` (App. 9.10.6);
- ``gd_ridge``: the ridge ``lam*`` matching the GD iterate ``w_T`` against ``T`` (``lam* ~ 1 / (eta T)``);
- ``first_layer`` (one model and one initial scale each): the first-layer update stays in the data span
  (Eqs. 69-71);
- ``poly_standard`` and ``poly_product`` (one initial scale each): GD on the standard and on the product
  parameterization of a polynomial (Sec. 9.10.5);
- ``robust``: worst-case perturbations by projected gradient ascent against Eqs. 36-42.

A cell's config is ``{"part", "sub", "runs"}`` (plus ``"value"``, and ``"model"`` for ``first_layer``):
``sub`` is the sub-experiment's whole settings dict of :data:`CONFIGS` (its seeds are drawn from it, so run
``r`` has the same data and initial weights whichever runs and values a cell computes).  At ``smoke`` and
``book`` scale a cell holds all runs; at ``paper`` scale the long sub-experiments are split into chunks of
:data:`PAPER_CHUNK` runs, so that an interrupted run of the sweep resumes cell by cell.

Every cell runs on the CPU in float64 (the chapter's claims compare residuals of exact identities with
tolerances of 1e-10 to 1e-12).  :func:`assemble` turns cells back into the dicts of the drivers (tensors),
which the chapter plots and the claim functions read.
"""

from __future__ import annotations

import math

import torch

from cnnbias.experiments.theory3 import min_norm as E

__all__ = ["CONFIGS", "SWEEP_NAME", "PARTS", "PAPER_CHUNK", "TOL", "CLAIM_FUNCTIONS", "CLAIM_IDS", "SWEEP",
           "min_norm_cells", "min_norm_cell", "assemble", "bound_str", "robust_gaps", "tikhonov_fit",
           "gd_ridge_fit", "claim_min_norm", "claim_nonzero_init_offset", "check_tikhonov_limit",
           "claim_gd_ridge", "check_first_layer_span", "claim_poly_standard", "claim_poly_product",
           "claim_robust", "add_claims"]

#: The settings per scale (those of :mod:`cnnbias.experiments.theory3.min_norm`).
CONFIGS = E.CONFIGS
SWEEP_NAME = "theory3.min_norm"
#: The sub-experiments, in the chapter's order (``poly_standard`` and ``poly_product`` share ``CONFIGS[s]["poly"]``).
PARTS = ("min_norm", "init_scale", "step_size", "tikhonov", "gd_ridge", "first_layer", "poly_standard",
         "poly_product", "robust")
_SUB = {"poly_standard": "poly", "poly_product": "poly"}
#: The parameter each sub-experiment loops over (one cell per value), as named in its settings.
_VALUES = {"init_scale": "scales", "step_size": "factors", "tikhonov": "lams", "first_layer": "init_scales",
           "poly_product": "product_scales"}
#: Runs per cell at ``paper`` scale (sub-experiments not listed: all runs in one cell).
PAPER_CHUNK = {"min_norm": 10, "init_scale": 10, "step_size": 10, "gd_ridge": 1, "first_layer": 5}


def _chunks(R: int, size: int | None) -> list[list[int]]:
    size = R if size is None else size
    return [[r, min(r + size, R)] for r in range(0, R, size)]


def min_norm_cells(scale: str) -> list[dict]:
    """The cells at ``scale``: per sub-experiment (:data:`PARTS`), per value of its looped parameter (and per
    model for ``first_layer``), per chunk of runs (:data:`PAPER_CHUNK`, ``paper`` scale only)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    out = []
    for part in PARTS:
        sub = dict(CONFIGS[scale][_SUB.get(part, part)])
        chunks = _chunks(sub["R"], PAPER_CHUNK.get(part) if scale == "paper" else None)
        if part in ("poly_standard", "poly_product", "robust"):
            chunks = [[0, sub["R"]]]  # one batch: cheap, and the runs share draws (robust: the PGA starts)
        models = E.MODELS if part == "first_layer" else (None,)
        values = sub[_VALUES[part]] if part in _VALUES else [None]
        for model in models:
            for v in values:
                for runs in chunks:
                    cell = {"part": part, "sub": sub, "runs": runs}
                    if model is not None:
                        cell["model"] = model
                    if v is not None:
                        cell["value"] = v
                    out.append(cell)
    return out


def _label(cfg: dict) -> str:
    parts = [cfg["part"]]
    if "model" in cfg:
        parts.append(cfg["model"])
    if "value" in cfg:
        parts.append(f"{_VALUES[cfg['part']]}={cfg['value']:g}")
    parts.append(f"runs {cfg['runs'][0]}-{cfg['runs'][1] - 1}")
    return " ".join(parts)


def _check_cell(cfg: dict) -> tuple[str, dict, list[int]]:
    if not isinstance(cfg, dict):
        raise ValueError(f"a cell config must be a dict, got {type(cfg).__name__}")
    for key in ("part", "sub", "runs"):
        if key not in cfg:
            raise ValueError(f"cell config is missing the key {key!r} (has {sorted(cfg)})")
    part = cfg["part"]
    if part not in PARTS:
        raise ValueError(f"cfg['part'] must be one of {', '.join(PARTS)}, got {part!r}")
    sub = cfg["sub"]
    if not isinstance(sub, dict) or "R" not in sub:
        raise ValueError(f"cfg['sub'] must be the settings dict of {part!r} (with 'R'), got {sub!r}")
    runs = cfg["runs"]
    R = sub["R"]
    if not (isinstance(runs, (list, tuple)) and len(runs) == 2 and all(isinstance(r, int) for r in runs)
            and 0 <= runs[0] < runs[1] <= R):
        raise ValueError(f"cfg['runs'] must be [r0, r1] with 0 <= r0 < r1 <= sub['R'] = {R}, got {runs!r}")
    if part in _VALUES:
        if "value" not in cfg:
            raise ValueError(f"cfg['value'] (one of sub[{_VALUES[part]!r}]) is required for part {part!r}")
        if cfg["value"] not in sub[_VALUES[part]]:
            raise ValueError(f"cfg['value'] must be one of sub[{_VALUES[part]!r}] = {sub[_VALUES[part]]}, "
                             f"got {cfg['value']!r}")
    if part == "first_layer" and cfg.get("model") not in E.MODELS:
        raise ValueError(f"cfg['model'] must be one of {', '.join(E.MODELS)}, got {cfg.get('model')!r}")
    return part, sub, list(runs)


def _lists(d: dict, keys) -> dict:
    return {k: d[k].tolist() for k in keys}


def min_norm_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One cell (module docstring): the driver of :mod:`cnnbias.experiments.theory3.min_norm` for the cell's
    runs and value, its per-run results as lists.  Always float64 (``dtype`` is not used)."""
    part, sub, runs = _check_cell(cfg)
    full = {_SUB.get(part, part): sub}
    v = cfg.get("value")
    r0, r1 = runs
    with E.on_device(device):
        if part == "min_norm":
            mn = E.min_norm_runs(full, runs=runs)
            out = _lists(mn, ("gd_err", "sgd_err", "gd_loss", "sgd_loss", "gd_null", "sgd_null", "gd_path_err",
                              "sgd_path_err", "gd_bound", "eta_gd", "kappa", "other_err", "other_loss"))
            out.update(gd_steps=list(mn["gd_steps"]), sgd_steps=list(mn["sgd_steps"]), eta_sgd=float(mn["eta_sgd"]))
        elif part == "init_scale":
            d = E.init_scale_sweep(full, scales=[v], runs=runs)
            out = {k: d[k][0].tolist() for k in ("dist_dagger", "dist_offset", "null_w0", "loss")}
        elif part == "step_size":
            d = E.step_size_sweep(full, factors=[v], runs=runs)
            out = {k: d[k][0].tolist() for k in ("err", "diverged", "loss")}
        elif part == "tikhonov":
            d = E.tikhonov_sweep(full, lams=[v], runs=runs)
            out = {"err": d["err"][0].tolist(), "s_min": d["s_min"].tolist()}
        elif part == "gd_ridge":
            d = E.gd_ridge_sweep(full, runs=runs)
            out = _lists(d, ("lam", "rel_dist", "fit", "lam_eta_T", "closed_form_err"))
            out.update(T=list(d["T"]), slopes=[float(x) for x in d["slopes"]], eta=float(d["eta"]))
        elif part == "first_layer":
            d = E.first_layer_span(full, models=[cfg["model"]], scales=[v], runs=runs)
            res = d["results"][cfg["model"]]
            out = {k: res[k][0].tolist() for k in ("update_out", "final_out", "loss0", "loss")}
            out.update(null_dims=d["null_dims"], n=int(d["n"]), D=int(d["D"]))
        elif part == "poly_standard":
            d = E.poly_standard(full)
            out = _lists(d, ("err", "null", "loss", "bound"))
            out.update(D=int(d["D"]), n=int(d["n"]))
        elif part == "poly_product":
            d = E.poly_product(full, scales=[v])
            out = {k: d[k][0].tolist() for k in ("rel_loss", "dist", "norm_ratio", "l1_ratio", "null",
                                                 "row_err_bound")}
            out.update(D=int(d["D"]), n=int(d["n"]))
        else:  # robust
            d = E.robust_check(full)
            out = {k: val.tolist() for k, val in d.items()}
    out["runs"] = [r0, r1]
    return out


# --- from cells back to the drivers' dicts ------------------------------------------------------

def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def _by_part(cells) -> dict[str, list[tuple[dict, dict]]]:
    out: dict[str, list] = {}
    for c, r in cells:
        out.setdefault(c["part"], []).append((c, r))
    return out


def _runs_cat(cells, key, dim=-1, dtype=torch.float64) -> torch.Tensor:
    """The cells' ``key`` concatenated along the run axis ``dim`` (cells sorted by their first run)."""
    cells = sorted(cells, key=lambda cr: cr[0]["runs"][0])
    return torch.cat([_t(r[key], dtype) for _, r in cells], dim)


def _per_value(cells, key, dtype=torch.float64) -> tuple[list, torch.Tensor]:
    """``(values, tensor [V, R])``: per value present (in the order of the settings), ``key`` of all runs."""
    part = cells[0][0]["part"]
    values = [v for v in cells[0][0]["sub"][_VALUES[part]] if any(c["value"] == v for c, _ in cells)]
    rows = [_runs_cat([cr for cr in cells if cr[0]["value"] == v], key, 0, dtype) for v in values]
    return values, torch.stack(rows)


def _check_runs(part: str, cells) -> None:
    """Each value's cells must cover the runs ``0 .. R-1`` exactly once."""
    groups: dict = {}
    for c, _ in cells:
        groups.setdefault((c.get("model"), c.get("value")), []).append(tuple(c["runs"]))
    for key, rs in groups.items():
        R = cells[0][0]["sub"]["R"]
        covered = sorted(r for a, b in rs for r in range(a, b))
        if covered != list(range(R)):
            raise ValueError(f"{part} cells {key}: the runs {sorted(rs)} do not cover 0..{R - 1} exactly once")


def assemble(cells) -> dict[str, dict]:
    """``{part: dict}`` from ``[(config, result), ...]`` (any subset of parts): each dict as the driver of
    :mod:`cnnbias.experiments.theory3.min_norm` returns it (tensors, run axis as there), plus ``"sub"``
    (the settings).  ``min_norm`` lacks ``X``, ``y`` and ``w_dagger``; ``first_layer`` has ``null_dims``."""
    out: dict[str, dict] = {}
    for part, cs in _by_part(cells).items():
        _check_runs(part, cs)
        sub = cs[0][0]["sub"]
        if part == "min_norm":
            d = {k: _runs_cat(cs, k, -1) for k in ("gd_err", "sgd_err", "gd_loss", "sgd_loss", "gd_null",
                                                   "sgd_null", "gd_path_err", "sgd_path_err", "gd_bound",
                                                   "eta_gd", "kappa", "other_err", "other_loss")}
            d.update(gd_steps=cs[0][1]["gd_steps"], sgd_steps=cs[0][1]["sgd_steps"], eta_sgd=cs[0][1]["eta_sgd"])
        elif part == "init_scale":
            d = {}
            for k in ("dist_dagger", "dist_offset", "null_w0", "loss"):
                d["scales"], d[k] = _per_value(cs, k)
        elif part == "step_size":
            d = {}
            for k in ("err", "loss"):
                d["factors"], d[k] = _per_value(cs, k)
            d["diverged"] = _per_value(cs, "diverged", torch.bool)[1]
        elif part == "tikhonov":
            d = {}
            d["lams"], d["err"] = _per_value(cs, "err")
            first = [cr for cr in cs if cr[0]["value"] == d["lams"][0]]
            d["s_min"] = _runs_cat(first, "s_min", 0)
        elif part == "gd_ridge":
            d = {k: _runs_cat(cs, k, 0) for k in ("lam", "rel_dist", "lam_eta_T", "closed_form_err")}
            d["slopes"] = _runs_cat(cs, "slopes", 0).numpy()
            d.update(T=cs[0][1]["T"], fit=_t(cs[0][1]["fit"], torch.bool), eta=cs[0][1]["eta"])
        elif part == "first_layer":
            models = [m for m in E.MODELS if any(c["model"] == m for c, _ in cs)]
            res = {}
            scales = None
            for m in models:
                mc = [cr for cr in cs if cr[0]["model"] == m]
                res[m] = {}
                for k in ("update_out", "final_out", "loss0", "loss"):
                    scales, res[m][k] = _per_value(mc, k)
            first = sorted((cr for cr in cs if cr[0]["model"] == models[0] and cr[0]["value"] == scales[0]),
                           key=lambda cr: cr[0]["runs"][0])
            null_dims = [x for _, r in first for x in r["null_dims"]]
            d = dict(models=tuple(models), scales=scales, results=res, null_dim=null_dims[0], null_dims=null_dims,
                     n=cs[0][1]["n"], D=cs[0][1]["D"])
        elif part == "poly_standard":
            d = {k: _runs_cat(cs, k, 0) for k in ("err", "null", "loss", "bound")}
            d.update(D=cs[0][1]["D"], n=cs[0][1]["n"])
        elif part == "poly_product":
            d = {}
            for k in ("rel_loss", "dist", "norm_ratio", "l1_ratio", "null", "row_err_bound"):
                d["scales"], d[k] = _per_value(cs, k)
            d.update(D=cs[0][1]["D"], n=cs[0][1]["n"])
        else:  # robust
            d = {k: _runs_cat(cs, k, 0) for k in cs[0][1] if k != "runs"}
        d["sub"] = sub
        out[part] = d
    return out


def _only(cells, part: str) -> dict:
    got = assemble([cr for cr in cells if cr[0]["part"] == part])
    if part not in got:
        raise ValueError(f"no {part!r} cells among the {len(cells)} given")
    return got[part]


# --- claims ---------------------------------------------------------------------------------------

#: Tolerance of the convergence claims (relative distance to the limit).
TOL = 1e-10


def bound_str(x, floor=1e-12) -> str:
    """A residual of an exact identity as a bound (``< floor``) or with two digits, never its rounding noise."""
    x = float(x)
    return f"< {floor:.0e}" if x < floor else f"{x:.1e}"


def _at_most_bound(claims, id_, statement, x, floor, tol, paper):
    """PASS iff ``x <= tol``; shown and recorded only as the bound it meets."""
    shown = bound_str(x, floor)
    rec = floor if x < floor else float(f"{x:.1e}")
    return claims.check(id_, statement, x <= tol, shown, paper, f"<= {tol:g}", value={"at_most": rec})


def claim_min_norm(cells, claims) -> None:
    """``theory3.min_norm_gd``, ``theory3.min_norm_sgd`` (Corollary 1: the relative distance of the GD and
    SGD limits from zero to ``X^+ y`` at most :data:`TOL`) and the library check
    ``theory3.row_span_invariant`` (Lemma 4: no recorded iterate has a null-space part above 1e-12)."""
    mn = _only(cells, "min_norm")
    c = mn["sub"]
    gd_err, sgd_err = float(mn["gd_err"].max()), float(mn["sgd_err"].max())
    gd_null, sgd_null = float(mn["gd_null"].max()), float(mn["sgd_null"].max())
    _at_most_bound(
        claims, "theory3.min_norm_gd",
        "GD from zero on under-determined least squares converges to the minimum-norm (pseudoinverse) "
        "solution: 'When initialize with zero, both GD and SGD converges to the minimum-norm solution' "
        "(Corollary 1); max relative distance to X^+ y over the "
        f"{c['R']} independent Gaussian problems (n = {c['n']}, d = {c['d']})",
        gd_err, 1e-12, TOL, "w_T -> X^T (X X^T)^-1 y")
    _at_most_bound(
        claims, "theory3.min_norm_sgd",
        "SGD (one example per step, Kaczmarz step) from zero converges to the minimum-norm solution "
        "(Corollary 1, 'Similar argument can be made for SGD'); max relative distance to X^+ y over "
        f"the same {c['R']} problems",
        sgd_err, 1e-12, TOL, "w_T -> X^T (X X^T)^-1 y")
    _at_most_bound(
        claims.checks, "theory3.row_span_invariant",
        "'When initializing at zero, the solutions found by both GD and SGD ... live in the span of "
        "rows of X' (Lemma 4): max over recorded iterates of ||P_null w_t|| / ||w_dagger||, GD and SGD",
        max(gd_null, sgd_null), 1e-12, 1e-12, "0")


def claim_nonzero_init_offset(cells, claims) -> None:
    """``theory3.nonzero_init_offset``: from ``w0 != 0`` the GD limit is ``w_dagger + P_null w0`` (relative
    distance at most :data:`TOL` at every initial scale)."""
    isw = _only(cells, "init_scale")
    _at_most_bound(
        claims, "theory3.nonzero_init_offset",
        "From w0 != 0 the limit is w_dagger + P_null w0 (the null-space part of w0 never moves; Lemma "
        "4's argument), at every initial scale: max relative distance of the GD limit to it",
        float(isw["dist_offset"].max()), 1e-11, TOL, "w_dagger + P_null w0")


def tikhonov_fit(tk: dict) -> tuple[list, float]:
    """``(max over runs of the ridge error per lam, fitted exponent of err ~ lam^p)``."""
    err = tk["err"].amax(1).numpy()
    return err, E.fit_loglog(tk["lams"], err)[0]


def check_tikhonov_limit(cells, claims) -> None:
    """Library check ``theory3.tikhonov_limit`` (App. 9.10.6): the ridge error at the smallest ``lam`` is
    below 1e-6 and decays like ``lam`` (fitted exponent within 0.05 of 1)."""
    tk = _only(cells, "tikhonov")
    tk_err, tk_slope = tikhonov_fit(tk)
    claims.checks.check(
        "theory3.tikhonov_limit",
        "The pseudoinverse is the limit of ridge, A^+ = lim A^T (A A^T + delta^2 I)^-1 (App. 9.10.6): "
        "the ridge error at the smallest lambda is below 1e-6 and decays linearly in lambda (fitted "
        "exponent within 0.05 of 1)",
        bool(tk_err[-1] < 1e-6 and abs(tk_slope - 1) <= 0.05),
        f"err(lambda={tk['lams'][-1]:g}) = {tk_err[-1]:.1e}, exponent {tk_slope:.3f}",
        "w_lambda -> w_dagger",
        "err < 1e-6 and |exponent - 1| <= 0.05",
        value={"err_min_lambda": float(f"{tk_err[-1]:.2g}"), "exponent": float(f"{tk_slope:.3f}")},
    )


def gd_ridge_fit(gr: dict) -> tuple[float, float, torch.Tensor]:
    """``(mean fitted exponent p over runs, its standard error, lam* eta T on the fitted T [R, K'])``."""
    slopes = gr["slopes"]
    mean = float(slopes.mean())
    se = float(slopes.std(ddof=1) / math.sqrt(len(slopes))) if len(slopes) > 1 else float("nan")
    return mean, se, gr["lam_eta_T"][:, gr["fit"]]


def claim_gd_ridge(cells, claims) -> None:
    """``theory3.gd_ridge_1_over_T``: the exponent ``p`` of the ridge parameter matching GD after ``T``
    steps, ``lam* ~ T^p``, mean over problems, within 0.05 of -1 (App. 9.10.6)."""
    gr = _only(cells, "gd_ridge")
    slope_mean, slope_se, c_match = gd_ridge_fit(gr)
    claims.check(
        "theory3.gd_ridge_1_over_T",
        "GD after T steps is ridge with lambda ~ 1/(eta T) ('GD and SGD perform incremental iterative "
        "regularization', App. 9.10.6): fitted exponent p of the matching lambda* ~ T^p, mean over "
        f"{len(gr['slopes'])} independent problems (SE over problems), within 0.05 of -1 (the "
        "discreteness and the edges of the spectrum move p by a few hundredths)",
        abs(slope_mean + 1) <= 0.05,
        f"p = {slope_mean:.3f} (se {slope_se:.3f}), lambda* eta T in "
        f"[{float(c_match.min()):.2f}, {float(c_match.max()):.2f}]",
        "p = -1",
        "|p + 1| <= 0.05",
        value={"p": float(f"{slope_mean:.3f}")},
        se=float(f"{slope_se:.1g}"),
        paper_value=-1,
    )


def check_first_layer_span(cells, claims) -> None:
    """Library check ``theory3.first_layer_span`` (Eqs. 69-71): the fraction of ``W1_T - W1_0`` outside the
    data span is at most 1e-12 for every model and initial scale."""
    fl = _only(cells, "first_layer")
    worst = max(float(fl["results"][m]["update_out"].max()) for m in fl["models"])
    _at_most_bound(
        claims.checks, "theory3.first_layer_span",
        "Eqs. 69-71: 'there is no increment dW1 at each iteration that is in the space orthogonal to "
        "the space spanned by X' - for linear, z^2, z^3, ReLU two-layer and a three-layer ReLU net on "
        "digits, at every initial scale: max fraction of W1_T - W1_0 outside the data span",
        worst, 1e-12, 1e-12, "0")


def claim_poly_standard(cells, claims) -> None:
    """``theory3.poly_min_norm_standard`` (Sec. 9.10.5): GD from ``a = 0`` on the monomial coefficients keeps
    a null-space part below 1e-12 and ends within 1e-6 of ``Phi^+ y`` in the runs whose predicted GD error
    is below 1e-8."""
    ps = _only(cells, "poly_standard")
    std_err = float(ps["err"].max())
    std_null = float(ps["null"].max())
    std_conv = ps["bound"] < 1e-8
    std_err_conv = float(ps["err"][std_conv].max()) if bool(std_conv.any()) else float("nan")
    claims.check(
        "theory3.poly_min_norm_standard",
        "Standard parameterization of a polynomial: GD from a = 0 gives the minimum-norm coefficients "
        "(Sec. 9.10.5, 'SGD and GD can find the min ||a||^2 even without an explicit regularizer'): "
        "the null-space part of a_T (the only way an interpolant can differ from Phi^+ y) stays below "
        "1e-12 "
        "||a_dagger|| in every run, and runs whose predicted GD error (1 - eta s_min)^T is below 1e-8 "
        "are within 1e-6 of Phi^+ y",
        bool(std_null <= 1e-12 and std_err_conv <= 1e-6),
        f"null part {bound_str(std_null)}; distance {bound_str(std_err_conv, 1e-8)} in the "
        f"{int(std_conv.sum())} converged runs (max over all {std_err:.1e})",
        "a_T -> Phi^+ y",
        "null part <= 1e-12; distance <= 1e-6",
        value={"dist_all": float(f"{std_err:.2g}")},
    )


def claim_poly_product(cells, claims) -> None:
    """``theory3.poly_weight_param_min_norm`` (Sec. 9.10.5): in the product parameterization ``a = u v``, at
    the smallest initial scale, the median null-space part of the GD solution exceeds 0.05 ``||a_dagger||``
    and 10 times the bound on its row-space error."""
    pp = _only(cells, "poly_product")
    small = min(range(len(pp["scales"])), key=lambda i: pp["scales"][i])
    null_small = float(pp["null"][small].median())
    row_small = float(pp["row_err_bound"][small].median())
    norm_small = float(pp["norm_ratio"][small].median())
    claims.check(
        "theory3.poly_weight_param_min_norm",
        "Weight (product) parameterization: 'The minimizers will in general be different in the "
        "standard vs "
        "the weight parametrization' (Sec. 9.10.5) - at the smallest initial scale the median "
        "null-space "
        "part of the GD solution (over "
        f"{pp['sub']['R']} problems) exceeds both 0.05 ||a_dagger|| and 10x the bound on its row-space "
        "error (so the difference is not under-training); its norm ratio is reported",
        bool(null_small > 0.05 and null_small > 10 * row_small),
        f"null part {null_small:.3f}, row-space err bound {row_small:.3f}, ||a||/||a_dagger|| "
        f"{norm_small:.3f}",
        "differs from min ||a||",
        "null part > 0.05 and > 10 x row bound",
        value={"null": null_small, "row_bound": row_small, "norm_ratio": norm_small},
    )


def _rel_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())


def robust_gaps(rb: dict) -> dict:
    """The comparisons of App. 9.4.1 from the ``robust`` dict: relative gaps PGA vs closed form (``mw``,
    ``mx``: worst margins over weights and inputs; ``red``: margin reduction over ``rho ||w|| ||x||``, minus 1;
    ``lr``, ``li``: worst square loss at residual O(1) and at interpolation), ``eq42_interp`` (Eq. 42 vs the
    worst case at interpolation), ``ratio`` (worst / Eq. 42 at residual O(1), per run) and ``sandwich``
    (that ratio in [1, 2])."""
    reduction = (rb["margin"] - rb["margin_w_pga"]) / (rb["sub"]["rho"] * rb["w_norm"])
    ratio = rb["loss_resid_pga"] / rb["loss_resid_eq42"]
    return dict(
        mw=_rel_gap(rb["margin_w_pga"], rb["margin_w_closed"]),
        mx=_rel_gap(rb["margin_x_pga"], rb["margin_x_closed"]),
        red=float((reduction - 1).abs().max()),
        lr=_rel_gap(rb["loss_resid_pga"], rb["loss_resid_closed"]),
        li=_rel_gap(rb["loss_interp_pga"], rb["loss_interp_closed"]),
        eq42_interp=_rel_gap(rb["loss_interp_eq42"], rb["loss_interp_pga"]),
        ratio=ratio,
        sandwich=bool(((ratio >= 1 - 1e-9) & (ratio <= 2 + 1e-9)).all()),
    )


def claim_robust(cells, claims) -> None:
    """``theory3.eq42_robust_loss_at_interpolation`` (Eq. 42 is the worst-case square loss at interpolating
    weights, rel. gap at most 1e-6) and the library checks ``theory3.robust_square_loss_closed_form`` and
    ``theory3.worst_perturbation_margin`` (Eq. 36 and the Cauchy-Schwarz closed forms)."""
    rb = _only(cells, "robust")
    g = robust_gaps(rb)
    ratio = g["ratio"]
    claims.check(
        "theory3.eq42_robust_loss_at_interpolation",
        "'In the case of the square loss, robust optimization gives' Eq. 42, (y - w.x)^2 + rho^2 "
        "||w||^2, for ||dw|| <= rho ||w||, read with ||x|| = 1 at interpolating w (the paper's regime: "
        "'all the explored minima are at close to zero loss'): Eq. 42 against the worst case found by "
        f"projected gradient ascent, {len(rb['loss_interp_pga'])} random (w, x) pairs",
        g["eq42_interp"] <= 1e-6,
        f"max rel. gap {bound_str(g['eq42_interp'], 1e-8)} (off interpolation the worst case is up to "
        f"{float(ratio.max()):.2f} x Eq. 42)",
        "Eq. 42",
        "rel. gap <= 1e-6",
        value={"at_most": 1e-8 if g["eq42_interp"] < 1e-8 else float(f"{g['eq42_interp']:.1e}")},
    )
    claims.checks.check(
        "theory3.robust_square_loss_closed_form",
        "The worst square loss over ||dw|| <= rho ||w|| found by projected gradient ascent equals the "
        "Cauchy-Schwarz closed form (|r| + rho ||w|| ||x||)^2 (rel. 1e-6) at residual O(1) and at r = "
        "0, and lies in [1, 2] x Eq. 42",
        bool(max(g["lr"], g["li"]) <= 1e-6 and g["sandwich"]),
        f"PGA vs closed form {bound_str(max(g['lr'], g['li']), 1e-8)}; worst/Eq.42 in "
        f"[{float(ratio.min()):.2f}, {float(ratio.max()):.2f}]",
        "-",
        "rel. gap <= 1e-6; ratio in [1, 2]",
        value={"ratio_max": float(f"{float(ratio.max()):.3g}")},
    )
    _at_most_bound(
        claims.checks, "theory3.worst_perturbation_margin",
        "Eq. 36: the worst perturbation of norm rho ||w|| reduces the margin y w.x by exactly rho "
        "||w|| ||x|| "
        "(inputs: eps ||w||); max relative gap between the PGA inner minimum and the closed form",
        max(g["mw"], g["mx"], g["red"]), 1e-8, 1e-6, "y w.x - rho ||w|| ||x||")


#: The claim functions in the chapter's order, with the sub-experiment each reads.
CLAIM_FUNCTIONS = (
    ("min_norm", claim_min_norm),
    ("init_scale", claim_nonzero_init_offset),
    ("tikhonov", check_tikhonov_limit),
    ("gd_ridge", claim_gd_ridge),
    ("first_layer", check_first_layer_span),
    ("poly_standard", claim_poly_standard),
    ("poly_product", claim_poly_product),
    ("robust", claim_robust),
)


def add_claims(cells, claims, parts=None) -> None:
    """Every claim and library check of the sweep (of ``parts``, default all) from ``cells``, in the
    chapter's order."""
    for part, fn in CLAIM_FUNCTIONS:
        if parts is None or part in parts:
            fn([cr for cr in cells if cr[0]["part"] == part], claims)


# -- the sweep and its claims -------------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

SWEEP = _register(_Sweep(
    SWEEP_NAME, min_norm_cell, cells={s: min_norm_cells(s) for s in CONFIGS},
    code=("cnnbias.config", "cnnbias.validate", "cnnbias.data.digits", "cnnbias.models.poly_features",
          "cnnbias.theory.theory3.min_norm", "cnnbias.experiments.theory3.min_norm"),
    description="Theory III App. 9.6-9.10: GD/SGD to the min-norm solution, init scales, step sizes, ridge, "
                "first layer, polynomials, robust loss",
    label=_label,
    cpu_only=True,
))

#: Claim id -> (sub-experiment, claim function) of the claims (not the library checks) resting on the cells.
CLAIM_IDS = {
    "theory3.min_norm_gd": ("min_norm", claim_min_norm),
    "theory3.min_norm_sgd": ("min_norm", claim_min_norm),
    "theory3.nonzero_init_offset": ("init_scale", claim_nonzero_init_offset),
    "theory3.gd_ridge_1_over_T": ("gd_ridge", claim_gd_ridge),
    "theory3.poly_min_norm_standard": ("poly_standard", claim_poly_standard),
    "theory3.poly_weight_param_min_norm": ("poly_product", claim_poly_product),
    "theory3.eq42_robust_loss_at_interpolation": ("robust", claim_robust),
}

for _id, (_part, _fn) in CLAIM_IDS.items():
    _register_claim(_ClaimSpec(_id, SWEEP_NAME, _fn, select=lambda c, _p=_part: c["part"] == _p))
