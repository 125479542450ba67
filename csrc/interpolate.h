// Arithmetic of the Theorem 1 construction (finite-sample expressivity), shared by the
// CPU kernels (csrc/cpu/interpolate.cpp) and their CUDA twins (csrc/cuda/interpolate.cu)
// so that both round the same way.
//
// Every product and sum below is rounded separately (no fused multiply-add contraction,
// which nvcc's -fmad would otherwise apply): breakpoints and segment values are then
// bitwise the same on both devices.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace rethink {
namespace interp {

// Projections accumulate in kLanes interleaved float64 lanes (lane l takes elements
// l, l + kLanes, ... with fused multiply-adds), then a fixed pairwise tree adds the lanes.
// CPU (AVX2 or scalar) and CUDA (kLanes threads per row) follow this exact order, so
// a projection has the same bits on every device.
constexpr int kLanes = 16;

RETHINK_HD double add_rn(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(x, y);
#else
  return x + y;
#endif
}

RETHINK_HD double sub_rn(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(x, y);
#else
  return x - y;
#endif
}

RETHINK_HD double mul_rn(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(x, y);
#else
  return x * y;
#endif
}

RETHINK_HD double div_rn(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(x, y);
#else
  return x / y;
#endif
}

// Breakpoint b between consecutive sorted projections zp < zj: b = zp + t * (zj - zp),
// falling back to the midpoint when rounding would not leave b strictly inside.
RETHINK_HD double breakpoint(double zp, double zj, double t) {
  const double dz = sub_rn(zj, zp);
  double b = add_rn(zp, mul_rn(t, dz));
  if (!(b > zp && b < zj)) b = add_rn(zp, mul_rn(0.5, dz));
  return b;
}

// Distance of the first breakpoint below the first node: the range of the nodes, or
// max(|z0|, 1) for a single node.
RETHINK_HD double first_offset(const double* z, int64_t m) {
  if (m > 1) return sub_rn(z[m - 1], z[0]);
  const double a = z[0] < 0 ? -z[0] : z[0];
  return a > 1.0 ? a : 1.0;
}

// Breakpoint j of the nodes z (strictly increasing, m of them).
RETHINK_HD double breakpoint_at(const double* z, int64_t m, int64_t j, double t) {
  if (j == 0) return sub_rn(z[0], first_offset(z, m));
  return breakpoint(z[j - 1], z[j], t);
}

// The slope recurrence S_j = alpha_j + beta_j * S_{j-1} (S_{-1} = 0) that makes the
// piecewise-linear f, with kinks at the breakpoints and f = 0 below b_0, pass through
// (z_j, y_j). With p = b_j - z_{j-1} and q = z_j - b_j:
// alpha_j = (y_j - y_{j-1}) / q, beta_j = -p / q (beta_0 = 0, alpha_0 = y_0 / q).
struct Affine {
  double alpha;
  double beta;
};

// Step at a node z_j with breakpoint b below it (zprev: the node before; first: j == 0).
RETHINK_HD Affine step_at(double b, double zprev, double zj, double yj, double yprev, bool first) {
  const double q = sub_rn(zj, b);
  if (first) return {div_rn(yj, q), 0.0};
  const double p = sub_rn(b, zprev);
  return {div_rn(sub_rn(yj, yprev), q), -div_rn(p, q)};
}

RETHINK_HD Affine step(const double* z, int64_t m, int64_t j, double t, double yj, double yprev) {
  const double b = breakpoint_at(z, m, j, t);
  return step_at(b, j > 0 ? z[j - 1] : 0.0, z[j], yj, yprev, j == 0);
}

RETHINK_HD double apply(Affine f, double s_prev) {
  // beta == 0 (the first node) ignores s_prev even when it is not finite.
  return f.beta == 0.0 ? f.alpha : add_rn(f.alpha, mul_rn(f.beta, s_prev));
}

// Candidate score along one sorted row zs (n values, ties = duplicate rows) with targets
// y[order[i]]: sum_j |w_j| (z_max - b_j) over the distinct nodes, w_j = S_j - S_{j-1}.
// It bounds the terms the literal network sums at its last point.
RETHINK_HD double score_row(const double* zs, const int64_t* order, const double* y, int64_t n, double t) {
  const double zmax = zs[n - 1];
  const bool single = !(zmax > zs[0]);
  double off = sub_rn(zmax, zs[0]);
  if (single) off = zs[0] < 0 ? (-zs[0] > 1.0 ? -zs[0] : 1.0) : (zs[0] > 1.0 ? zs[0] : 1.0);
  double s_prev = 0.0, y_prev = 0.0, z_prev = 0.0, score = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0 && !(zs[i] > zs[i - 1])) continue;  // a tie: the same node
    const bool first = i == 0;
    const double zj = zs[i], yj = y[order[i]];
    const double b = first ? sub_rn(zj, off) : breakpoint(z_prev, zj, t);
    const double s = apply(step_at(b, z_prev, zj, yj, y_prev, first), s_prev);
    const double w = sub_rn(s, s_prev);
    score = add_rn(score, mul_rn(w < 0 ? -w : w, sub_rn(zmax, b)));
    s_prev = s;
    y_prev = yj;
    z_prev = zj;
  }
  return score;
}

// Segment evaluation: number of breakpoints strictly below zq (binary search).
RETHINK_HD int64_t count_below(const double* b, int64_t m, double zq) {
  int64_t lo = 0, hi = m;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (b[mid] < zq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// f on segment j (breakpoints b_j <= zq < b_{j+1}): y_j + s_j * (zq - z_j).
RETHINK_HD double segment_value(double yj, double sj, double zj, double zq) {
  return add_rn(yj, mul_rn(sj, sub_rn(zq, zj)));
}

// f(x) for one query projection x, all k outputs into o[0..k): NaN propagates, 0 below the
// first breakpoint, else the value on x's segment. m breakpoints b, nodes z (m,), node
// values y and segment slopes s (m, k), row-major.
RETHINK_HD void eval_query(const double* b, const double* z, const double* y, const double* s, int64_t m,
                           int64_t k, double x, double* o) {
  if (x != x) {  // NaN
    for (int64_t c = 0; c < k; ++c) o[c] = x;
    return;
  }
  const int64_t cnt = count_below(b, m, x);
  if (cnt == 0) {
    for (int64_t c = 0; c < k; ++c) o[c] = 0.0;
    return;
  }
  const int64_t j = cnt - 1;
  for (int64_t c = 0; c < k; ++c) o[c] = segment_value(y[j * k + c], s[j * k + c], z[j], x);
}

}  // namespace interp
}  // namespace rethink
