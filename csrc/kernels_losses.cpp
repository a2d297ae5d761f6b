// The op table's losses: negative log softmax, hinge losses, distances, binary log loss,
// sparsemax loss, pairwise rank and Poisson losses.
// Kernels on column-major float32 buffers; backends/reference_numpy is the specification:
// size-1 data dims and batch 1 broadcast, backward sums over broadcast dims, and backward
// kernels accumulate into dx, so the executor needs no temporaries.
#include <Eigen/Dense>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common.h"
#include "kernel_util.h"
#include "rowops.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ losses

void f_pnls(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pickneglogsoftmax::indices, x[0].s.d[0], "pickneglogsoftmax");
  check_count(idx.size(), x[0].s.bd, "pickneglogsoftmax");
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    y.p[b] = lse_strided(xp, n, 1) - xp[idx[size_t(b)]];
  }
}
// Acc: dx += the gradient; else dx = the gradient, every element written and none read.
template <bool Acc>
void pnls_grad(const CView* x, const CView& y, const CView& dy, const View& dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pickneglogsoftmax::indices, x[0].s.d[0], "pickneglogsoftmax");
  check_count(idx.size(), x[0].s.bd, "pickneglogsoftmax");
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    float xi = xp[idx[size_t(b)]], g = dy.p[b];
    // The forward value is lse - x_i: the log-sum-exp comes back without a second pass.
    float z = y.p ? y.p[b] + xi : NEG_INF;
    if (!std::isfinite(z)) z = lse_strided(xp, n, 1);
    if (Acc)
      rows::add_exp_scaled(xp, n, z, g, dx.p + b * n);
    else
      rows::set_exp_scaled(xp, n, z, g, dx.p + b * n);
    dx.p[b * n + idx[size_t(b)]] -= g;
  }
}
void b_pnls(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) { pnls_grad<true>(x, y, dy, dx, a); }
void b_pnls_set(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  pnls_grad<false>(x, y, dy, dx, a);
}
DY_REGISTER(pickneglogsoftmax, f_pnls, b_pnls, b_pnls_set);
void f_hinge(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::hinge::indices, x[0].s.d[0], "hinge");
  check_count(idx.size(), x[0].s.bd, "hinge");
  float m = float(a.num(attr::hinge::m));
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    int64_t gi = idx[size_t(b)];
    float s = 0;
    for (int64_t k = 0; k < n; ++k)
      if (k != gi) s += relu_keep_nan(xp[k] - xp[gi] + m);
    y.p[b] = s;
  }
}
void b_hinge(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::hinge::indices, x[0].s.d[0], "hinge");
  check_count(idx.size(), x[0].s.bd, "hinge");
  float m = float(a.num(attr::hinge::m));
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    int64_t gi = idx[size_t(b)];
    float g = dy.p[b], cnt = 0;
    for (int64_t k = 0; k < n; ++k)
      if (k != gi && xp[k] - xp[gi] + m > 0) dx.p[b * n + k] += g, cnt += 1;
    // Only active terms receive dy, as in DyNet (an element without loss gets nothing, even an Inf dy).
    if (cnt > 0) dx.p[b * n + gi] -= cnt * g;
  }
}
DY_REGISTER(hinge, f_hinge, b_hinge);
// DyNet's FBinaryLogLoss: a prediction of exactly 0 or 1 on the wrong side costs -log(FLT_MIN).
float bll_term(float x, float t) {
  const float cap = -std::log(FLT_MIN);
  if (t == 1.0f) return x == 0.0f ? cap : -std::log(x);
  if (t == 0.0f) return x == 1.0f ? cap : -std::log1p(-x);
  if (x == 0.0f || x == 1.0f) return cap;
  return -(t * std::log(x) + (1 - t) * std::log1p(-x));
}
void f_bll(const CView* x, int, const View& y, const Attrs&) {
  double s = 0;
  for (int64_t k = 0; k < x[0].s.total(); ++k) s += double(bll_term(x[0].p[k], x[1].p[k]));
  y.p[0] = float(s);
}
// DyNet's backward moves a prediction of exactly 0 to FLT_MIN and of exactly 1 to 0.9999999f.
void b_bll(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  float g = dy.p[0];
  for (int64_t k = 0; k < x[0].s.total(); ++k) {
    float x0 = x[0].p[k], t = x[1].p[k];
    float v = x0 == 0.0f ? FLT_MIN : (x0 == 1.0f ? 0.9999999f : x0);
    if (i == 1) {
      dx.p[k] += g * (std::log1p(-v) - std::log(v));
    } else if (x0 != t) {  // DyNet: no gradient where the prediction equals the target
      float d = t == 1.0f ? -t / v : (t == 0.0f ? (1 - t) / (1 - v) : (1 - t) / (1 - v) - t / v);
      dx.p[k] += g * d;
    }
  }
}
DY_REGISTER(binary_log_loss, f_bll, b_bll);
void f_sqdist(const CView* x, int, const View& y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = (CArr(bat(x[0], b), m) - CArr(bat(x[1], b), m)).square().sum();
}
void b_sqdist(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t m = x[0].s.size();
  float sign = i == 0 ? 2.0f : -2.0f;
  for (int64_t b = 0; b < y.s.bd; ++b)
    Arr(bat(dx, b), m) += (sign * dy.p[b]) * (CArr(bat(x[0], b), m) - CArr(bat(x[1], b), m));
}
DY_REGISTER(squared_distance, f_sqdist, b_sqdist);
void f_l1(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.total();
  y.p[0] = (CArr(x[0].p, n) - CArr(x[1].p, n)).abs().sum();
}
void b_l1(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  for (int64_t k = 0; k < dx.s.total(); ++k) {
    float d = x[i].p[k] - x[1 - i].p[k];
    dx.p[k] += (d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f)) * dy.p[0];
  }
}
DY_REGISTER(l1_distance, f_l1, b_l1);
// One sum per batch element (the op takes no batch, but an autobatched group joins several).
void f_huber(const CView* x, int, const View& y, const Attrs& a) {
  float c = float(a.num(attr::huber_distance::c));
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    double s = 0;
    for (int64_t k = b * m; k < (b + 1) * m; ++k) {
      float d = std::fabs(x[0].p[k] - x[1].p[k]);
      s += double(d < c ? d * d : c * (2 * d - c));
    }
    y.p[b] = float(0.5 * s);  // DyNet's HuberDistance halves the sum
  }
}
void b_huber(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs& a) {
  float c = float(a.num(attr::huber_distance::c));
  int64_t m = dx.s.size();
  for (int64_t k = 0; k < dx.s.total(); ++k) {
    float d = x[i].p[k] - x[1 - i].p[k];
    float sg = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
    dx.p[k] += dy.p[k / m] * (std::fabs(d) < c ? d : c * sg);
  }
}
DY_REGISTER(huber_distance, f_huber, b_huber);


namespace {

// ------------------------------------------------------------------ losses

// hinge_dim attrs: (index lists, d, m); lists flattened as count, then each list's length and items.
struct HingeDim {
  std::vector<std::vector<int64_t>> idx;
  int d;
  float m;
};
HingeDim hinge_dim_attrs(const Attrs& a) {
  HingeDim h;
  h.idx = a.int_lists(attr::hinge_dim::indices);
  h.d = int(a.integer(attr::hinge_dim::d));
  h.m = float(a.num(attr::hinge_dim::m));
  return h;
}
template <bool FWD>
void hinge_dim_visit(const CView& x, const Attrs& a, float* yp, const float* gy, float* dxp) {
  HingeDim h = hinge_dim_attrs(a);
  int64_t R = x.s.d[0], C = x.s.d[1];
  int64_t lines = h.d == 0 ? C : R, len = h.d == 0 ? R : C;
  int64_t st = h.d == 0 ? 1 : R, lst = h.d == 0 ? R : 1;  // stride along the scored dim, between lines
  if (h.d < 0 || h.d > 1 || h.idx.empty() || (h.idx.size() > 1 && int64_t(h.idx.size()) != x.s.bd))
    fail("hinge_dim: bad dimension or index lists");
  for (const auto& v : h.idx) {
    check_count(v.size(), lines, "hinge_dim");
    for (int64_t k : v)
      if (k < 0 || k >= len) fail("hinge_dim: index out of range");
  }
  for (int64_t b = 0; b < x.s.bd; ++b) {
    const std::vector<int64_t>& gi = h.idx[h.idx.size() > 1 ? size_t(b) : 0];
    for (int64_t l = 0; l < lines; ++l) {
      int64_t base = b * R * C + l * lst, gold = gi[size_t(l)];
      float gv = x.p[base + gold * st], s = 0, cnt = 0;
      float g = FWD ? 0.0f : gy[b * lines + l];
      for (int64_t j = 0; j < len; ++j) {
        if (j == gold) continue;
        float e = x.p[base + j * st] - gv + h.m;
        if (e > 0 || e != e) {  // a NaN score makes a NaN loss, as in the reference
          s += e, cnt += 1;
          if (!FWD) dxp[base + j * st] += g;
        }
      }
      if (FWD)
        yp[b * lines + l] = s;
      else if (cnt > 0)  // only active terms receive dy, as in DyNet
        dxp[base + gold * st] -= cnt * g;
    }
  }
}
void f_hinge_dim(const CView* x, int, const View& y, const Attrs& a) { hinge_dim_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_hinge_dim(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  hinge_dim_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}
DY_REGISTER(hinge_dim, f_hinge_dim, b_hinge_dim);

void f_prl(const CView* x, int, const View& y, const Attrs& a) {
  float m = float(a.num(attr::pairwise_rank_loss::m));
  bin_fwd(x[0], x[1], y, [m](float p, float q) { return relu_keep_nan(m - p + q); });
}
void b_prl(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs& a) {
  float m = float(a.num(attr::pairwise_rank_loss::m)), sg = i == 0 ? -1.0f : 1.0f;
  bin_bwd(x[0], x[1], y.s, dy.p, dx, [m, sg](float p, float q, float g) { return m - p + q > 0 ? sg * g : 0.0f; });
}
DY_REGISTER(pairwise_rank_loss, f_prl, b_prl);

void f_poisson(const CView* x, int, const View& y, const Attrs& a) {
  double k = a.num(attr::poisson_loss::y);
  y.p[0] = float(std::exp(double(x[0].p[0])) + std::lgamma(k + 1) - double(x[0].p[0]) * k);
}
void b_poisson(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  dx.p[0] += dy.p[0] * float(std::exp(double(x[0].p[0])) - a.num(attr::poisson_loss::y));
}
DY_REGISTER(poisson_loss, f_poisson, b_poisson);

}  // namespace


}  // namespace ku
}  // namespace dy
