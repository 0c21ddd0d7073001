"""Tests for cnnbias.theory.psi: detection sets/ratios vs a naive loop, s_i, c*, Eq. 3, Theorem 6.1."""

import math

import pytest
import torch
from cnnbias.data import patterns as pat
from cnnbias.models.maxpool import forward_fixed
from cnnbias.theory import psi


def naive_detection(W, L):
    """Loop implementation of Eq. 2 (ties to the lowest index) on one-hot patterns."""
    R, C, _ = W.shape
    k = C // 2
    out = {key: torch.zeros(R, L, dtype=torch.float64) for key in ("wp", "up", "wn", "un")}
    sets = {key: [[-1] * k for _ in range(R)] for key in ("wp", "up", "wn", "un")}
    for r in range(R):
        for j in range(k):
            for key, row, allowed in (("wp", W[r, j], [0] + list(range(2, L))),
                                      ("up", W[r, k + j], [0] + list(range(2, L))),
                                      ("wn", W[r, j], list(range(1, L))),
                                      ("un", W[r, k + j], list(range(1, L)))):
                best, arg = -math.inf, None
                for l in allowed:  # strict > keeps the lowest index on ties
                    if float(row[l]) > best:
                        best, arg = float(row[l]), l
                if best > 0:
                    sets[key][r][j] = arg
                    out[key][r, arg] += best
    return out, sets


def test_hand_built_network():
    # d = 4: p1 = e0, p2 = e1, spurious e2, e3; k = 3
    w = torch.tensor([[3.0, 1.0, 0.0, -1.0],   # W+(1) [value 3]; W-(2) [value 1]
                      [2.0, 0.0, 2.0, 0.0],    # tie between p1 and p3 -> W+(1) (lowest index); W-(3)
                      [-1.0, -2.0, -0.5, -3.0]])  # detects nothing
    u = torch.tensor([[0.0, 5.0, 1.0, 0.5],    # U+(3) [value 1]; U-(2) [value 5]
                      [0.5, 0.0, 0.0, 0.25],   # U+(1) [0.5]; U-(4) [0.25]
                      [0.0, 0.0, 0.0, 0.0]])   # all zero: no detection (needs > 0)
    W = torch.cat([w, u])[None]
    det = psi.detection(W)
    assert det.w_pos_set.tolist() == [[0, 0, -1]]
    assert det.w_neg_set.tolist() == [[1, 2, -1]]
    assert det.u_pos_set.tolist() == [[2, 0, -1]]
    assert det.u_neg_set.tolist() == [[1, 3, -1]]
    assert det.M_w_pos.tolist() == [[5.0, 0.0, 0.0, 0.0]]
    assert det.M_w_neg.tolist() == [[0.0, 1.0, 2.0, 0.0]]
    assert det.M_u_pos.tolist() == [[0.5, 0.0, 1.0, 0.0]]
    assert det.M_u_neg.tolist() == [[0.0, 5.0, 0.0, 0.25]]
    rp = psi.positive_ratios(det)[0]
    assert math.isnan(rp[1]) and rp[0] == pytest.approx(0.1) and rp[2] == pytest.approx(0.2)
    rn = psi.negative_ratios(det)[0]
    assert math.isnan(rn[0]) and rn[1] == pytest.approx(0.2) and rn[2] == pytest.approx(0.4)
    assert rn[3] == pytest.approx(0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_matches_naive(seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(3, 10, 7, generator=g, dtype=torch.float64)
    W[0, 0, 2] = W[0, 0, 4] = 10.0  # a tie
    det = psi.detection(W)
    ref, sets = naive_detection(W, 7)
    torch.testing.assert_close(det.M_w_pos, ref["wp"])
    torch.testing.assert_close(det.M_u_pos, ref["up"])
    torch.testing.assert_close(det.M_w_neg, ref["wn"])
    torch.testing.assert_close(det.M_u_neg, ref["un"])
    assert det.w_pos_set.tolist() == sets["wp"] and det.u_neg_set.tolist() == sets["un"]
    assert det.w_pos_set[0, 0] == 2


def test_orthonormal_patterns_equal_rotated_one_hot():
    g = torch.Generator().manual_seed(3)
    P = pat.orthogonal_patterns(6, 6, g)
    W = torch.randn(2, 8, 6, generator=g, dtype=torch.float64)
    # W' = W P^T has the dot products of W with the rows of P: detection must agree with one-hot on W'
    a, b = psi.detection(W, P), psi.detection(W @ P.T)
    torch.testing.assert_close(a.M_u_pos, b.M_u_pos)
    torch.testing.assert_close(a.M_w_neg, b.M_w_neg)


def test_pattern_statistics_naive():
    g = torch.Generator().manual_seed(0)
    idx, y = pat.stack_runs(pat.sample_D, [g, g], m=50, n=5, l=8)  # sample_D repeats patterns
    s = psi.pattern_statistics(idx, y, 8, chunk=7)
    for r in range(2):
        for i in range(8):
            ref = sum(float(y[r, j]) * (i in idx[r, j].tolist()) for j in range(50)) / 50
            assert float(s[r, i]) == pytest.approx(ref, abs=1e-12)
    assert torch.all(s[:, 0] > 0) and torch.all(s[:, 1] < 0)
    torch.testing.assert_close(s[:, 0] - s[:, 1], torch.ones(2, dtype=torch.float64))


def test_cstar_definition_and_psi_holds():
    g = torch.Generator().manual_seed(5)
    L, m = 6, 40
    W = torch.randn(4, 12, L, generator=g, dtype=torch.float64).abs()  # all filters detect something
    idx, y = pat.stack_runs(pat.sample_Du, [torch.Generator().manual_seed(i) for i in range(4)], m=m, n=3, d=L)
    s = psi.pattern_statistics(idx, y, L)
    b = 2.0
    cs = psi.c_star(W, s, m, b=b)
    det, _ = naive_detection(W, L)
    for r in range(4):
        vals = [0.0]
        for i in [0] + list(range(2, L)):
            vals.append(float(det["up"][r, i] / det["wp"][r, 0]) - b * max(-float(s[r, i] / s[r, 0]), 0))
        for i in range(1, L):
            vals.append(float(det["wn"][r, i] / det["un"][r, 1]) - b * max(-float(s[r, i] / s[r, 1]), 0))
        assert float(cs[r]) == pytest.approx(math.sqrt(m) * max(vals), rel=1e-12, abs=1e-14)
    fin = torch.isfinite(cs)
    assert fin.sum() >= 2 and torch.all(cs[fin] > 0)
    cmax = float(cs[fin].max())
    holds = psi.psi_holds(W, s, m, b, cmax * (1 + 1e-9))
    assert torch.equal(holds, fin)
    r = int(torch.where(fin, cs, torch.zeros_like(cs)).argmax())
    assert not bool(psi.psi_holds(W, s, m, b, 0.99 * float(cs[r]))[r])


def test_cstar_infinite_without_p1_detector():
    W = torch.zeros(1, 4, 5, dtype=torch.float64)
    W[0, 0, 2] = 1.0  # a w detector of a spurious pattern; nobody detects p1
    W[0, 2, 1] = 1.0
    s = torch.tensor([[0.5, -0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert math.isinf(float(psi.c_star(W, s, 10)[0]))


def test_eq3_lower_bound_holds_on_points():
    g = torch.Generator().manual_seed(7)
    W = torch.randn(3, 16, 12, generator=g, dtype=torch.float64)
    W[:, :8, 0] += 3.0  # strong p1 detectors
    W[:, 8:, 1] += 3.0
    idx, y = pat.stack_runs(pat.sample_Du, [torch.Generator().manual_seed(i) for i in range(3)], m=300, n=5, d=12)
    out = forward_fixed(W, idx=idx)
    lbp, lbn = psi.eq3_lower_bounds(W)
    pos, neg = y > 0, y < 0
    assert torch.all(out[pos] >= lbp[:, None].expand_as(out)[pos] - 1e-12)
    assert torch.all(-out[neg] >= lbn[:, None].expand_as(out)[neg] - 1e-12)
    # the bound is attained by a point whose spurious patterns are the detected ones? at least it is not vacuous
    assert torch.all(lbp > 0)


def test_eq9():
    W = torch.zeros(1, 4, 10, dtype=torch.float64)
    W[0, 0, 0] = 1.0
    W[0, 2, 1] = 1.0
    W[0, 3, 5] = 0.05  # u detector of spurious pattern 5, ratio 0.05 < 1/10
    ok, worst = psi.eq9_holds(W, 10)
    assert bool(ok[0]) and float(worst[0]) == pytest.approx(0.05)
    W[0, 3, 5] = 0.2
    ok, worst = psi.eq9_holds(W, 10)
    assert not bool(ok[0])


def test_thm61_sample_size_and_events():
    assert psi.thm61_sample_size(20) == pytest.approx(300 * 400 * math.log(20))
    assert psi.thm61_sample_size(20, b=2, c=1.5) == pytest.approx(300 * 4 * 2.25 * 400 * math.log(20))
    with pytest.raises(ValueError):
        psi.thm61_sample_size(20, b=0.5)
    # Hoeffding for one spurious statistic at a smaller threshold (Monte Carlo, 400 training sets)
    d, n, m = 12, 4, 200
    gens = [torch.Generator().manual_seed(100 + i) for i in range(400)]
    idx, y = pat.stack_runs(pat.sample_Du, gens, m=m, n=n, d=d)
    s = psi.pattern_statistics(idx, y, d)
    t = 0.15
    freq = float((s[:, 2].abs() > t).double().mean())
    assert freq <= 2 * math.exp(-m * t**2 / 2) + 0.03
    ev = psi.thm61_events(s, m, d)
    assert bool(ev["spurious"].all()) and bool(ev["s1"].all()) and bool(ev["s2"].all())
