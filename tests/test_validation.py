"""Bad input never gives a silently wrong result: the public API walked with a table of bad inputs.

Every case must raise ValueError or TypeError whose message names the offending argument (the
``name`` column, a regular expression), never return a number and never fail deep inside torch.
Classes: NaN/inf where a positive finite number is meant; labels in {0, 1} where {-1, +1} is meant;
non-integers (floats, bools) where an integer is meant; out-of-range sizes and indices; names outside
the allowed choices; wrong tensor types and shapes; missing or wrong generators; malformed data files
(see also tests/test_digits.py).
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from cnnbias import config, plotting, stats
from cnnbias import validate as V
from cnnbias.data import colored_digits as cd
from cnnbias.data import digit_patterns as dp
from cnnbias.data import digits
from cnnbias.data import noisy_patterns as npat
from cnnbias.data import patterns as pat
from cnnbias.data import positions as P
from cnnbias.data import xord as XD
from cnnbias.experiments import convlin as EC
from cnnbias.experiments import maxpool as EM
from cnnbias.experiments import psi as EP
from cnnbias.experiments import xord as EX
from cnnbias.models import linear as L
from cnnbias.models import mlp
from cnnbias.models import small_cnn as S
from cnnbias.theory import convlinear as C
from cnnbias.theory import min_norm as MN
from cnnbias.theory import primitive as PR
from cnnbias.theory import psi as TP
from cnnbias.theory import taskcls as T
from cnnbias.theory import two_point as TW
from cnnbias.theory import vc
from cnnbias.theory import xord as TX

NAN, INF = float("nan"), float("inf")


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gens(R: int = 2) -> list[torch.Generator]:
    return [g(r) for r in range(R)]


TASK = P.task_cls(6)
IDX = torch.tensor([[0, 1, 2], [3, 4, 5]])
MASK = torch.ones(2, 3, dtype=torch.float64)
M = C.m_train(TASK, IDX, 2, MASK)
W1 = torch.randn(2, 2, dtype=torch.float64)
W2 = torch.randn(2, 6, dtype=torch.float64)
WX = torch.randn(3, 4, 2, dtype=torch.float64)  # xord networks [R, 2k, 2]
WP = torch.randn(2, 4, 6, dtype=torch.float64)  # PSI networks [R, 2k, d]
Y01 = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
IDXP = torch.tensor([[[0, 2], [1, 3], [0, 4], [1, 5]]] * 2)
TWO = TW.sample_two_point(2, 3, 6, gens())
CNN = S.init_params(2, 8, 8, gens(1))
MLP = mlp.init(3, 4, gens(1))

# (case id, thunk, regex naming the argument)
CASES = [
    # --- NaN / inf where a positive finite number is meant ("not x > 0" checks) -------------------
    ("xord.thm52_T gamma nan", lambda: TX.thm52_T(NAN, 0.1), "gamma"),
    ("xord.thm52_T c_eta nan", lambda: TX.thm52_T(1.0, NAN), "c_eta"),
    ("xord.thm52_confidence c_eta nan", lambda: TX.thm52_confidence(100, NAN), "c_eta"),
    ("xord.sigma_g_max c_eta inf", lambda: TX.sigma_g_max(INF, 4), "c_eta"),
    ("xord.n_detected c_d nan", lambda: TX.n_detected(WX, NAN), "c_d"),
    ("xord.simulate_diverse eta nan", lambda: TX.simulate_diverse(WX, NAN, 1.0, 5), "eta"),
    ("xord.eq56_step gamma nan", lambda: TX.eq56_step(WX, 0.1, NAN), "gamma"),
    ("xord.thm41_m2_lower delta nan", lambda: TX.thm41_m2_lower(0.5, 0.5, NAN), "delta"),
    ("xord.thm41_eps_max p_plus nan", lambda: TX.thm41_eps_max(NAN, 0.5), "p_plus"),
    ("convlinear.xhinge_gd alpha nan", lambda: C.xhinge_gd(M, W1, W2, NAN, 3), "alpha"),
    ("convlinear.lemma7 alpha nan", lambda: C.lemma7(M, W1, W2, NAN, 3), "alpha"),
    ("convlinear.xhinge_step alpha -1", lambda: C.xhinge_step(M, W1, W2, -1.0), "alpha"),
    ("convlinear.closed_form lr nan",
     lambda: C.one_layer_onehot_closed_form(TASK, IDX, MASK, torch.zeros(2, 6, dtype=torch.float64), NAN), "lr"),
    ("convlinear.top_multiplicity rtol nan", lambda: C.top_multiplicity(torch.ones(2, 3), NAN), "rtol"),
    ("two_point.gd c_eta nan", lambda: TW.gd_two_point(torch.zeros(2, 4, 6, dtype=torch.float64), TWO, NAN, 3),
     "c_eta"),
    ("two_point.lemma_f5 c_eta inf",
     lambda: TW.lemma_f5_predict(torch.zeros(2, 4, 6, dtype=torch.float64), TWO, INF, 1), "c_eta"),
    ("psi.c_star b nan", lambda: TP.c_star(WP, torch.zeros(2, 6, dtype=torch.float64), 4, b=NAN), "b"),
    ("psi.psi_holds c nan", lambda: TP.psi_holds(WP, torch.zeros(2, 6, dtype=torch.float64), 4, 2.0, NAN), r"\bc\b"),
    ("psi.thm61_sample_size b nan", lambda: TP.thm61_sample_size(10, NAN), r"\bb\b"),
    ("linear.ebar tie_tol nan", lambda: L.ebar(torch.zeros(2, 3), NAN), "tie_tol"),
    ("linear.init_params scale nan", lambda: L.init_params("1layer", 4, gens(), scale=NAN), "scale"),
    ("noisy.ball_noise radius inf", lambda: npat.ball_noise((2,), 3, INF, g()), "radius"),
    ("noisy.noisy_embed noise nan",
     lambda: npat.noisy_embed(torch.zeros(2, 3, dtype=torch.long), torch.eye(3), NAN, g()), "noise"),
    ("patterns.sample_Dp p nan", lambda: pat.sample_Dp(4, 3, 6, NAN, g()), r"\bp\b"),
    ("data.xord.sample_class p nan", lambda: XD.sample_class(3, 4, 1, g(), NAN), r"\bp\b"),
    ("digit_patterns.split test_fraction nan",
     lambda: dp.split_pools(torch.zeros(10, 4, 4), torch.arange(10), test_fraction=NAN, generator=g()),
     "test_fraction"),
    ("experiments.psi.init_W sigma_g nan", lambda: EP.init_W(2, 4, NAN, gens()), "sigma_g"),
    ("experiments.maxpool.sphere_init r nan", lambda: EM.sphere_init(2, 4, NAN, gens()), r"\br\b"),
    ("experiments.maxpool.lw_cnn eta1 nan",
     lambda: EM.lw_cnn(IDXP[:, :, :1].expand(2, 4, 1).contiguous(), Y01 * 2 - 1, k=2, d=6, T1=1, T2=1, eta1=NAN,
                       eta2=1.0, r=1e-3, gens=gens()), "eta1"),
    ("experiments.xord.init_filters sigma_g nan", lambda: EX.init_filters([2, 2], [NAN, 1.0], gens()), "sigma_g"),
    ("experiments.convlin.gap_runs lr nan", lambda: EC.gap_runs("cls", 6, 2, [2], 2, NAN, 10), "lr"),
    ("plotting.figure width nan", lambda: plotting.figure(width=NAN), "width"),
    ("min_norm tol nan", lambda: MN.min_norm_squared(np.eye(2), np.array([1.0, -1.0]), tol=NAN), "tol"),
    ("primitive atol nan", lambda: PR.is_primitive(torch.eye(2), atol=NAN), "atol"),
    # --- labels in {0, 1} where {-1, +1} is meant ----------------------------------------------------
    ("stats.error_rate y01", lambda: stats.error_rate(torch.ones(4), torch.tensor([0, 1, 1, 0])), r"\by\b"),
    ("psi.pattern_statistics y01", lambda: TP.pattern_statistics(IDXP, Y01, 6), r"\by\b"),
    ("experiments.psi.train_psi y01",
     lambda: EP.train_psi(WP, Y01, idx=IDXP, lr=0.1, batch_size=4, max_epochs=2, shuffle_seeds=None), r"\by\b"),
    ("experiments.xord.compress_to_sets y01",
     lambda: EX.compress_to_sets(torch.zeros(2, 4, 3, dtype=torch.long), Y01), r"\by\b"),
    ("experiments.maxpool.eq14_holds y01", lambda: EM.eq14_holds(Y01, torch.ones(2, 4)), r"\by\b"),
    ("experiments.maxpool.svm ytr01",
     lambda: EM.svm_fit_predict(np.eye(4), np.array([0, 1, 1, 0]), np.eye(4)), "ytr"),
    ("min_norm y01", lambda: MN.min_norm_squared(np.eye(2), np.array([0.0, 1.0])), r"\by\b"),
    ("vc.solve_alpha y01", lambda: vc.solve_alpha(torch.tensor([0.0, 1.0, 1.0, 0.0])), r"\by\b"),
    ("data.xord.is_diverse y01", lambda: XD.is_diverse(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 1])),
     r"\by\b"),
    ("data.xord.is_diverse y=0", lambda: XD.is_diverse(torch.zeros(2, 4, dtype=torch.long), 0), r"\by\b"),
    ("data.xord.sample_class label=0", lambda: XD.sample_class(2, 4, 0, g()), "label"),
    ("data.xord.sample_class label=True", lambda: XD.sample_class(2, 4, True, g()), "label"),
    # --- non-integers where an integer is meant --------------------------------------------------------
    ("taskcls.sample_positions d=2.5", lambda: T.sample_positions(2.5, 3, gens()), r"\bd\b"),
    ("taskcls.err1_mc ns=[2.5]", lambda: T.err1_mc(6, 2, [2.5], 10, g()), "ns"),
    ("config.generators R=2.5", lambda: config.generators("x", {}, 2.5), r"\bR\b"),
    ("config.run_seed r=1.5", lambda: config.run_seed("x", {}, 1.5), r"\br\b"),
    ("config.run_seed r=-1", lambda: config.run_seed("x", {}, -1), r"\br\b"),
    ("mlp.n_params hidden=2.7", lambda: mlp.n_params(2.7, 3), "hidden"),
    ("patterns.sample_D m=2.5", lambda: pat.sample_D(2.5, 3, 5, g()), r"\bm\b"),
    ("patterns.sample_D n=nan", lambda: pat.sample_D(2, NAN, 5, g()), r"\bn\b"),
    ("data.xord.all_inputs d=True", lambda: XD.all_inputs(True), r"\bd\b"),
    ("vc.bits n=2.5", lambda: vc.bits(2.5), r"\bn\b"),
    ("colored.sample_colored m=2.5", lambda: cd.sample_colored(2.5, 20, 3, g()), r"\bm\b"),
    ("small_cnn.init_params C=2.5", lambda: S.init_params(2.5, 8, 8, gens()), r"\bC\b"),
    ("positions.sample_training_sets sizes=[2.5]", lambda: P.sample_training_sets(6, [2.5], [g()]), "sizes"),
    ("experiments.convlin.training_sets ns=[2.5]", lambda: EC.training_sets(TASK, [2.5], 2, "t"), "ns"),
    ("experiments.maxpool.by_size reps=0", lambda: EM.by_size(torch.zeros(4), 0, 4), "reps"),
    ("experiments.psi.run_cell m=1.5",
     lambda: EP.run_cell("t", "u", 3, 6, 2, 1.5, 2, lr=0.1, batch_size=2, max_epochs=2, sigma_g=0.1), r"\bm\b"),
    # --- out-of-range sizes and indices -------------------------------------------------------------
    ("taskcls.err2 negative probability", lambda: T.err2(5, 4, 3), r"2k - 1 <= d"),
    ("taskcls.near_count k > d", lambda: T.near_count(3, 5), r"\bk\b"),
    ("taskcls.second_term_upper k > d", lambda: T.second_term_upper(3, 5, 2), r"\bk\b"),
    ("taskcls.thm4_second_term n < 0", lambda: T.thm4_second_term(6, 2, [-1]), r"\bn\b"),
    ("taskcls.occupancy pos >= d", lambda: T.occupancy(torch.tensor([[0, 7]]), 6), "pos"),
    ("taskcls.m_train_positions k > d", lambda: T.m_train_positions(torch.tensor([[0, 1]]), 3, 4), r"\bk\b"),
    ("linear.scores idx >= N", lambda: L.scores(W2, TASK, torch.tensor([[0, 99], [1, 2]])), "idx"),
    ("linear.test_error w_eff wrong d", lambda: L.test_error(torch.zeros(2, 5, dtype=torch.float64), TASK), "w_eff"),
    ("linear.init_params k > d", lambda: L.init_params("conv", 3, gens(), k=5), r"\bk\b"),
    ("linear.init_params width=0", lambda: L.init_params("fc2", 3, gens(), width=0), "width"),
    ("positions.mean_yx idx >= N", lambda: P.mean_yx(TASK, torch.tensor([[0, 12]])), "idx"),
    ("positions.mean_yx empty mask row",
     lambda: P.mean_yx(TASK, IDX, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])), "mask"),
    ("data.xord.pattern_set idx=4", lambda: XD.pattern_set(torch.tensor([[0, 4]])), "idx"),
    ("data.xord.to_dense idx=-1", lambda: XD.to_dense(torch.tensor([[0, -1]])), "idx"),
    ("data.xord.obd_label idx out of range", lambda: XD.obd_label(torch.tensor([[0, 9]]), 4), "idx"),
    ("colored.embed_colored ids out of range",
     lambda: cd.embed_colored(torch.tensor([[5]]), torch.tensor([[1]]), torch.zeros(3, 2, 2)), "ids"),
    ("patterns.contains idx >= num_patterns", lambda: pat.contains(torch.tensor([[0, 5]]), 3), "idx"),
    ("psi.presence idx >= L", lambda: TP.presence(torch.tensor([[0, 7]]), 6), "idx"),
    ("small_cnn.test_error labels=10",
     lambda: S.test_error(CNN, torch.zeros(2, 8, 8), torch.tensor([1, 10])), "labels"),
    ("experiments.xord.train_cnn labels=10",
     lambda: EX.train_cnn(CNN, torch.zeros(1, 2, 8, 8), torch.tensor([[1, 10]]), 0.01, 1), "labels"),
    ("xord.alpha k=64", lambda: TX.alpha(64), r"\bk\b"),
    ("maxpool.lucky_probability d=2", lambda: EM.lucky_probability(2), r"\bd\b"),
    ("maxpool.split m=0", lambda: EM.split(0), r"\bm\b"),
    ("maxpool.representation idx >= d", lambda: EM.representation(WP, torch.full((2, 1, 2), 6)), "idx"),
    ("vc.config_index idx >= 2n", lambda: vc.config_index(torch.tensor([[0, 9, 2]]), 3), "idx"),
    ("two_point.data patterns >= d",
     lambda: TW.categories(torch.zeros(2, 4, 5, dtype=torch.float64), TWO), "W0"),
    # --- names outside the allowed choices -----------------------------------------------------------
    ("positions.make_task name", lambda: P.make_task("cls2", 6), "name"),
    ("linear.effective_weight model", lambda: L.effective_weight("cnn", {"w": W2}), "model"),
    ("linear.make_loss model", lambda: L.make_loss("cnn", TASK, IDX, MASK), "model"),
    ("vc.solve_alpha method", lambda: vc.solve_alpha(torch.tensor([1.0, -1.0]), method="lu"), "method"),
    ("experiments.psi.sample_runs dist", lambda: EP.sample_runs("q", 2, 3, 6, gens()), "dist"),
    ("digits.load_digits split", lambda: digits.load_digits(split="validation"), "split"),
    ("convlin.gap_runs models", lambda: EC.gap_runs("cls", 6, 2, [2], 2, 0.1, 10, models=("cnn",)), "models"),
    # --- wrong tensor types and shapes -------------------------------------------------------------
    ("linear.conv_effective_weight int tensor",
     lambda: L.conv_effective_weight(torch.ones(2, 2, dtype=torch.long), W2), "w1"),
    ("linear.effective_weight missing key", lambda: L.effective_weight("conv", {"w1": W1}), "params"),
    ("convlinear.shift_matrix int x", lambda: C.shift_matrix(torch.ones(6, dtype=torch.long), 2), r"\bx\b"),
    ("convlinear.svd M not 3-d", lambda: C.svd(torch.zeros(6, 2, dtype=torch.float64)), r"\bM\b"),
    ("convlinear.svd M nan", lambda: C.svd(torch.full((1, 6, 2), NAN, dtype=torch.float64)), r"\bM\b"),
    ("convlinear.lemma1_limit w1_0 shape", lambda: C.lemma1_limit(M, torch.zeros(2, 3, dtype=torch.float64)),
     "w1_0"),
    ("convlinear.thm2_error M vs task.d", lambda: C.thm2_error(M, P.task_cls(7)), r"\bM\b"),
    ("convlinear.m_xy shapes", lambda: C.m_xy(torch.zeros(3, 6), torch.zeros(2), 2), r"\by\b"),
    ("xord.network_on_sets masks [S, 3]",
     lambda: TX.network_on_sets(WX, torch.ones(5, 3, dtype=torch.bool)), "masks"),
    ("xord.eq4_sets W odd channels", lambda: TX.eq4_sets(torch.zeros(2, 3, 2)), r"\bW\b"),
    ("xord.detection_scores mask_channels shape",
     lambda: TX.detection_scores(WX, torch.ones(3, 5)), "mask_channels"),
    ("psi.detection W int", lambda: TP.detection(torch.zeros(2, 4, 6, dtype=torch.long)), r"\bW\b"),
    ("psi.positive_ratios not a Detection", lambda: TP.positive_ratios(WP), "det"),
    ("small_cnn.features images 2-d", lambda: S.features(CNN, torch.zeros(8, 8)), "images"),
    ("small_cnn.cross_entropy float labels",
     lambda: S.cross_entropy(CNN, torch.zeros(1, 2, 8, 8), torch.zeros(1, 2)), "labels"),
    ("mlp.forward missing keys", lambda: mlp.forward({"W1": MLP["W1"]}, torch.zeros(1, 2, 4)), "params"),
    ("mlp.forward slope nan", lambda: mlp.forward(MLP, torch.zeros(1, 2, 4), slope=NAN), "slope"),
    ("stats.error_rate nan scores", lambda: stats.error_rate(torch.tensor([NAN, 1.0]), torch.tensor([1, -1])),
     "scores"),
    ("stats.spearman nan", lambda: stats.spearman([1.0, NAN, 3.0], [1.0, 2.0, 3.0]), "spearman"),
    ("stats.mean_se dim", lambda: stats.mean_se(torch.zeros(3), dim=2), "dim"),
    ("plotting.band spread < 0", lambda: plotting.band(None, [1, 2], [1, 2], [-1, 1]), "spread"),
    ("config.for_scale not a dict", lambda: config.for_scale([1, 2, 3]), "configs"),
    ("config.dtype bad device", lambda: config.dtype("gpu7"), "dev"),
    ("primitive.is_primitive_batch nan", lambda: PR.is_primitive_batch(torch.full((1, 2, 2), NAN)), r"\bA\b"),
    ("experiments.psi.network_outputs idx >= d", lambda: EP.network_outputs(WP, idx=torch.full((2, 3, 2), 6)),
     "idx"),
    ("experiments.xord.eq3_loss shapes", lambda: EX.eq3_loss(torch.zeros(2, 4), torch.zeros(2, 3), 1.0), "out"),
    ("experiments.maxpool.lucky_masks a shape", lambda: EM.lucky_masks(WP, torch.ones(2, 3)), r"\ba\b"),
    ("experiments.maxpool.v_star not a result", lambda: EM.v_star({}), "res"),
    ("digit_patterns.sample pools", lambda: dp.sample_digit_patterns(3, None, 2, g()), "pools"),
    ("two_point.categories data type", lambda: TW.categories(torch.zeros(2, 4, 6, dtype=torch.float64), None),
     "data"),
    # --- generators ----------------------------------------------------------------------------------
    ("taskcls.sample_positions gens", lambda: T.sample_positions(6, 2, [None]), "gens"),
    ("experiments.maxpool.sphere_init gens ints", lambda: EM.sphere_init(2, 4, 0.1, [1, 2]), "gens"),
    ("data.xord.diverse_pair generator", lambda: XD.diverse_pair(4, generator=5), "generator"),
    ("positions.sample_indices generator", lambda: P.sample_indices(6, 2, None), "generator"),
    ("mlp.init gens empty", lambda: mlp.init(3, 4, []), "gens"),
    ("small_cnn.compressed_params gens count",
     lambda: S.compressed_params(torch.zeros(2, 4, 10), 8, 8, gens(1)), "gens"),
]


@pytest.mark.parametrize("thunk,name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_naming_argument(thunk, name):
    with pytest.raises((ValueError, TypeError), match=name):
        thunk()


def test_table_covers_every_class():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)


# --- malformed data files -----------------------------------------------------------------------------


def _idx_bytes(code: int, arr: np.ndarray) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _mnist_dir(tmp_path, img: bytes, gz: bool = False):
    labs = _idx_bytes(0x08, np.zeros(2, dtype=np.uint8))
    ext = ".gz" if gz else ""
    (tmp_path / f"train-images-idx3-ubyte{ext}").write_bytes(gzip.compress(img) if gz else img)
    (tmp_path / f"train-labels-idx1-ubyte{ext}").write_bytes(gzip.compress(labs) if gz else labs)
    return tmp_path


@pytest.mark.parametrize("code,dt", [(0x0D, ">f4"), (0x0C, ">i4")])
def test_non_byte_idx_images_are_not_scaled_by_255(tmp_path, code, dt):
    root = _mnist_dir(tmp_path, _idx_bytes(code, np.full((2, 4, 4), 200, dtype=dt)))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*(float32|int32)"):
        digits.load_digits(root)


def test_truncated_gz_names_the_file(tmp_path):
    root = _mnist_dir(tmp_path, _idx_bytes(0x08, np.zeros((2, 4, 4), dtype=np.uint8)), gz=True)
    p = root / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        digits.load_digits(root)


def test_idx_header_disagrees_with_data(tmp_path):
    root = _mnist_dir(tmp_path, _idx_bytes(0x08, np.zeros((2, 4, 4), dtype=np.uint8))[:-3])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*data bytes"):
        digits.load_digits(root)


# --- the helpers themselves ----------------------------------------------------------------------------


def test_helpers_return_their_argument_unchanged():
    t = torch.tensor([1.0, -1.0])
    assert V.positive("x", 0.5) == 0.5 and V.integer("n", np.int64(3)) == 3
    assert V.labels_pm1("y", t) is t and V.index_in_range("i", torch.tensor([0, 2]), 3) is not None
    assert V.choice("c", "a", ("a", "b")) == "a"


@pytest.mark.parametrize("bad", [NAN, INF, -INF, 0.0, -1.0, "1", True, None, torch.ones(2)])
def test_positive_rejects(bad):
    with pytest.raises((ValueError, TypeError), match="lr"):
        V.positive("lr", bad)


@pytest.mark.parametrize("bad", [2.5, 2.0, True, "3", None, NAN, torch.tensor(2.0)])
def test_integer_rejects(bad):
    with pytest.raises((ValueError, TypeError), match="k"):
        V.integer("k", bad, 1)


def test_valid_results_unchanged():
    """Spot checks that the checked functions still compute the same numbers on valid input."""
    assert float(T.err2(100, 5, [10])[0]) == 0.5 * (91 / 100) ** 10
    assert TX.alpha(100) == (25 + 20) / (25 - 20)
    assert math.isclose(TX.thm52_T(8.0, 0.5), 28 * (8 + 1 + 4) / 0.5)
