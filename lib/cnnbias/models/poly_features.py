"""Polynomial regression in two parameterizations (:cite:`theory_iii`, App. 9.10.3-9.10.5, Eq. 67).
Forward passes only.

*Standard parameterization*: ``P(x) = sum_e a_e x^e`` over the monomials ``x^e = prod_j x_j^{e_j}`` of total
degree ``|e| <= k`` (:func:`monomial_exponents`, :func:`monomial_features`); linear in ``a``.

*Weight parameterization*: one hidden layer of ``N`` power units, ``f(x) = sum_k c_k (<w_k, x> + b_k)^m``
(Eq. 67), a polynomial of degree ``m`` whose monomial coefficients are (multinomial theorem)::

    a_e(w, b, c) = sum_k c_k  m! / (e_1! ... e_d! (m - |e|)!)  w_k^e  b_k^(m - |e|),   |e| <= m

(:func:`power_net_coefficients`); e.g. the paper's ``a_5 = 2 sum_i w_1i w_2i`` for ``x_1 x_2``, ``m = 2``.
Parameters carry a leading run axis ``R``: ``W [R, N, d]``, ``b [R, N]``, ``c [R, N]``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from cnnbias import validate as V

__all__ = ["monomial_exponents", "monomial_features", "power_net_forward", "power_net_coefficients"]


def monomial_exponents(d: int, k: int) -> Tensor:
    """Exponents ``[D, d]`` of all monomials in ``d`` variables of total degree ``<= k``, by degree then
    lexicographically; ``D = C(d + k, k)``."""
    V.integer("d", d, 1)
    V.integer("k", k, 0)
    rows = []
    for deg in range(k + 1):
        for e in itertools.product(range(deg, -1, -1), repeat=d):
            if sum(e) == deg:
                rows.append(e)
    return torch.tensor(rows, dtype=torch.int64)


def monomial_features(X: Tensor, exps: Tensor) -> Tensor:
    """``phi(X) [..., n, D]`` with ``phi_e(x) = prod_j x_j^{e_j}`` for ``X [..., n, d]``, ``exps [D, d]``."""
    V.floating_tensor("X", X)
    V.tensor("exps", exps, 2, kind="int")
    if X.shape[-1] != exps.shape[1]:
        raise ValueError(f"X has {X.shape[-1]} variables but exps has {exps.shape[1]} columns")
    return torch.prod(X[..., None, :] ** exps.to(X.dtype), dim=-1)


def power_net_forward(W: Tensor, b: Tensor, c: Tensor, X: Tensor, m: int) -> Tensor:
    """``f(X) [R, n] = sum_k c_k (<w_k, x> + b_k)^m`` for ``X [R, n, d]`` (or ``[n, d]``, shared)."""
    V.integer("m", m, 1)
    V.floating_tensor("W", W, 3)
    if X.dim() == 2:
        X = X.expand(W.shape[0], -1, -1)
    if X.shape[-1] != W.shape[-1]:
        raise ValueError(f"X has {X.shape[-1]} variables but W expects {W.shape[-1]}")
    z = X @ W.transpose(-1, -2) + b[:, None, :]  # [R, n, N]
    return (z ** m * c[:, None, :]).sum(-1)


def power_net_coefficients(W: Tensor, b: Tensor, c: Tensor, m: int, exps: Tensor) -> Tensor:
    """Monomial coefficients ``a [R, D]`` of the power net (module docstring) for ``exps [D, d]``
    (monomials of degree ``> m`` get 0)."""
    V.integer("m", m, 1)
    V.floating_tensor("W", W, 3)
    V.tensor("exps", exps, 2, kind="int")
    if exps.shape[1] != W.shape[-1]:
        raise ValueError(f"exps has {exps.shape[1]} columns but W has {W.shape[-1]} variables")
    deg = exps.sum(1)
    ok = deg <= m
    rest = torch.clamp(m - deg, min=0)
    mult = torch.tensor([math.factorial(m) / (math.prod(math.factorial(int(v)) for v in e)
                                              * math.factorial(int(r))) if o else 0.0
                         for e, r, o in zip(exps.tolist(), rest.tolist(), ok.tolist())], dtype=W.dtype)
    wpow = torch.prod(W[:, None, :, :] ** exps[None, :, None, :].to(W.dtype), dim=-1)  # [R, D, N]
    bpow = b[:, None, :] ** rest[None, :, None].to(W.dtype)  # [R, D, N]
    return mult * (c[:, None, :] * wpow * bpow).sum(-1)
