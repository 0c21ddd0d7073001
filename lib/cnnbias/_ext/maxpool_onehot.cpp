// Fused one-hot max-pool forward and backward (float64, CPU), cnnbias.models.maxpool.
//
//   h[r, i, c]   = relu(max_j W[r, c, idx[r, i, j]])
//   sel[r, i, c] = j*, the first j with z_j >= max - TIE_RTOL * |max|  (uint8: n <= 255)
//                  (cnnbias.stats.near_max_threshold: near-ties go to the first patch)
//   dW[r, c, p]  = sum_i [idx[r, i, j*] == p] * g[r, i, c] * 1{h[r, i, c] > 0}, summed in ascending i
//
// Bit-identical to the pure-torch reference path (_OneHotMaxPool in maxpool.py): the forward does
// no arithmetic except the tie threshold (one multiply, one subtract, the same as torch's), and the
// backward adds the same values in the same order as torch's index_add_ into zeros.  Compiled with
// plain -O2 -ffp-contract=off (no -march=native, no -ffast-math): no FMA contraction, no
// reassociation, so the result does not depend on the CPU.  Single-threaded on purpose: the book
// runs torch with one thread, and an OpenMP region here would use the system's libgomp, not the
// one bundled with torch (two thread pools spinning against each other; measured 3x slower on a
// shared 2-core machine).  Runs are independent, so splitting them would not change any result.
#include <torch/extension.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

void check(const torch::Tensor& W, const torch::Tensor& idx) {
  TORCH_CHECK(W.device().is_cpu() && idx.device().is_cpu(), "maxpool_onehot: CPU tensors only");
  TORCH_CHECK(W.scalar_type() == torch::kFloat64, "maxpool_onehot: W must be float64");
  TORCH_CHECK(idx.scalar_type() == torch::kInt64, "maxpool_onehot: idx must be int64");
  TORCH_CHECK(W.dim() == 3 && idx.dim() == 3 && W.size(0) == idx.size(0), "maxpool_onehot: shapes");
}

}  // namespace

// Returns (h [R, m, C] float64, sel [R, m, C] uint8: the winning patch of each response).
std::vector<torch::Tensor> forward(torch::Tensor W, torch::Tensor idx, double rtol) {
  check(W, idx);
  W = W.contiguous();
  idx = idx.contiguous();
  const int64_t R = W.size(0), C = W.size(1), d = W.size(2);
  const int64_t m = idx.size(1), n = idx.size(2);
  auto h = torch::empty({R, m, C}, W.options());
  TORCH_CHECK(n >= 1 && n <= 255, "maxpool_onehot: 1 <= n <= 255 patches");
  auto sel = torch::empty({R, m, C}, idx.options().dtype(torch::kUInt8));
  const double* Wp = W.data_ptr<double>();
  const int64_t* ip = idx.data_ptr<int64_t>();
  double* hp = h.data_ptr<double>();
  uint8_t* sp = sel.data_ptr<uint8_t>();
  {
    // Gathers w_c[idx[r, i, j]] straight from W[r] (C x d, in L1/L2).  A variant that transposed
    // W[r] to make the loops over c contiguous was 2x slower (measured); branch-free selects here.
    std::vector<int64_t> off(n);
    for (int64_t r = 0; r < R; ++r) {
      const double* Wr = Wp + r * C * d;
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) off[j] = ip[(r * m + i) * n + j];
        const int64_t* o = off.data();
        double* hi = hp + (r * m + i) * C;
        uint8_t* si = sp + (r * m + i) * C;
        for (int64_t c = 0; c < C; ++c) {
          const double* w = Wr + c * d;
          // max over patches; a NaN anywhere makes it NaN, as torch.maximum
          double mx = w[o[0]];
          bool nan = std::isnan(mx);
          for (int64_t j = 1; j < n; ++j) {
            const double z = w[o[j]];
            nan |= std::isnan(z);
            mx = z > mx ? z : mx;
          }
          if (nan) mx = std::numeric_limits<double>::quiet_NaN();
          // the first patch within the near-tie threshold wins (fallback, NaN: the first patch)
          const double thr = mx - rtol * std::fabs(mx);
          int64_t p = 0;
          for (int64_t j = n - 1; j >= 0; --j) p = w[o[j]] >= thr ? j : p;
          si[c] = static_cast<uint8_t>(p);
          hi[c] = (mx > 0.0 || nan) ? mx : 0.0;  // relu, NaN kept
        }
      }
    }
  }
  return {h, sel};
}

// dW [R, C, d] from the upstream gradient g [R, m, C], idx, and sel and h of the forward.
torch::Tensor backward(torch::Tensor g, torch::Tensor idx, torch::Tensor sel, torch::Tensor h, int64_t d) {
  TORCH_CHECK(g.scalar_type() == torch::kFloat64 && h.scalar_type() == torch::kFloat64, "maxpool_onehot: float64");
  TORCH_CHECK(sel.scalar_type() == torch::kUInt8 && idx.scalar_type() == torch::kInt64, "maxpool_onehot: sel, idx");
  g = g.contiguous();
  idx = idx.contiguous();
  sel = sel.contiguous();
  h = h.contiguous();
  const int64_t R = g.size(0), m = g.size(1), C = g.size(2), n = idx.size(2);
  // each run's gradient accumulates in a zeroed L1-sized buffer, then is copied out once
  // (torch::zeros + scattered adds would write the [R, C, d] output twice)
  auto dW = torch::empty({R, C, d}, g.options());
  const double* gp = g.data_ptr<double>();
  const int64_t* ip = idx.data_ptr<int64_t>();
  const uint8_t* sp = sel.data_ptr<uint8_t>();
  const double* hp = h.data_ptr<double>();
  double* out = dW.data_ptr<double>();
  std::vector<double> buf(C * d);
  for (int64_t r = 0; r < R; ++r) {
    double* o = buf.data();
    std::fill(buf.begin(), buf.end(), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t base = (r * m + i) * C;
      const int64_t* ii = ip + (r * m + i) * n;
      for (int64_t c = 0; c < C; ++c) {
        const double active = hp[base + c] > 0.0 ? 1.0 : 0.0;
        o[c * d + ii[sp[base + c]]] += gp[base + c] * active;
      }
    }
    std::copy(buf.begin(), buf.end(), out + r * C * d);
  }
  return dW;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("forward", &forward, "one-hot max-pool forward: (h, sel)");
  mod.def("backward", &backward, "one-hot max-pool backward: dW");
}
