// Theorem 1 (finite-sample expressivity): CPU kernels and op schemas.
//
//   interp_project(X, A) -> Z          Z = X @ A^T in float64, X read in its own dtype
//   interp_sort(Z) -> (values, idx)   stable ascending sort of each row of Z (C, n)
//   interp_weights(z, y, t) -> (b, s)  breakpoints and cumulative slopes along sorted nodes
//   interp_score(zs, order, y, t) -> R  how large each candidate's weights are
//   interp_eval(zq, b, z, y, s) -> F   piecewise-linear f at query projections
//
// The CUDA twins live in csrc/cuda/interpolate.cu; the arithmetic both share is in
// csrc/interpolate.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RETHINK_X86_DISPATCH 1
#endif

#include "check.h"
#include "interpolate.h"

namespace rethink {
namespace interp {
// Argument checks shared with the CUDA kernels (csrc/cuda/interpolate.cu).
void check_project_args(const at::Tensor& X, const at::Tensor& A) {
  RETHINK_CHECK(X.dim() == 2, "interp_project: X must be 2-D (n, d), got ", X.dim(), "-D");
  RETHINK_CHECK(A.dim() == 2, "interp_project: A must be 2-D (C, d), got ", A.dim(), "-D");
  RETHINK_CHECK(A.scalar_type() == at::kDouble, "interp_project: A must be float64, got ", A.scalar_type());
  const auto st = X.scalar_type();
  RETHINK_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                "interp_project: X must be float16, bfloat16, float32 or float64, got ", st);
  RETHINK_CHECK(X.size(1) == A.size(1), "interp_project: X has ", X.size(1), " columns but A has ", A.size(1));
  RETHINK_CHECK(X.device() == A.device(), "interp_project: X is on ", X.device(), " but A is on ", A.device());
}

void check_weights_args(const at::Tensor& z, const at::Tensor& y, double t) {
  RETHINK_CHECK(z.dim() == 1, "interp_weights: z must be 1-D (m,), got ", z.dim(), "-D");
  RETHINK_CHECK(y.dim() == 2, "interp_weights: y must be 2-D (m, k), got ", y.dim(), "-D");
  RETHINK_CHECK(z.scalar_type() == at::kDouble && y.scalar_type() == at::kDouble,
                "interp_weights: z and y must be float64");
  RETHINK_CHECK(y.size(0) == z.size(0), "interp_weights: z has ", z.size(0), " nodes but y has ", y.size(0),
                " rows");
  RETHINK_CHECK(z.device() == y.device(), "interp_weights: z and y must be on the same device");
  RETHINK_CHECK(t > 0.0 && t < 1.0, "interp_weights: t must lie in (0, 1), got ", t);
}

void check_sort_args(const at::Tensor& z) {
  RETHINK_CHECK(z.dim() == 2, "interp_sort: z must be 2-D (C, n), got ", z.dim(), "-D");
  RETHINK_CHECK(z.scalar_type() == at::kDouble, "interp_sort: z must be float64, got ", z.scalar_type());
}

void check_score_args(const at::Tensor& zs, const at::Tensor& order, const at::Tensor& y, double t) {
  RETHINK_CHECK(zs.dim() == 2 && order.dim() == 2, "interp_score: zs and order must be 2-D (R, n)");
  RETHINK_CHECK(zs.sizes() == order.sizes(), "interp_score: zs and order must have the same shape");
  RETHINK_CHECK(zs.scalar_type() == at::kDouble && y.scalar_type() == at::kDouble,
                "interp_score: zs and y must be float64");
  RETHINK_CHECK(order.scalar_type() == at::kLong, "interp_score: order must be int64");
  RETHINK_CHECK(y.dim() == 1 && y.size(0) == zs.size(1), "interp_score: y must be 1-D with n = ", zs.size(1),
                " values");
  RETHINK_CHECK(zs.device() == order.device() && zs.device() == y.device(),
                "interp_score: zs, order and y must be on the same device");
  RETHINK_CHECK(t > 0.0 && t < 1.0, "interp_score: t must lie in (0, 1), got ", t);
  if (order.numel() > 0) {
    const int64_t lo = order.min().item<int64_t>(), hi = order.max().item<int64_t>();
    RETHINK_CHECK(lo >= 0 && hi < zs.size(1), "interp_score: order holds indices outside [0, ", zs.size(1),
                  ")");
  }
}

void check_eval_args(const at::Tensor& zq, const at::Tensor& b, const at::Tensor& z, const at::Tensor& y,
                     const at::Tensor& s) {
  RETHINK_CHECK(zq.dim() == 1 && b.dim() == 1 && z.dim() == 1, "interp_eval: zq, b and z must be 1-D");
  RETHINK_CHECK(y.dim() == 2 && s.dim() == 2, "interp_eval: y and s must be 2-D (m, k)");
  for (const at::Tensor* t : {&zq, &b, &z, &y, &s}) {
    RETHINK_CHECK(t->scalar_type() == at::kDouble, "interp_eval: every input must be float64, got ",
                  t->scalar_type());
    RETHINK_CHECK(t->device() == zq.device(), "interp_eval: every input must be on ", zq.device());
  }
  const int64_t m = b.size(0);
  RETHINK_CHECK(z.size(0) == m && y.size(0) == m && s.size(0) == m,
                "interp_eval: b, z, y and s must have the same number of nodes");
  RETHINK_CHECK(s.size(1) == y.size(1), "interp_eval: y and s must have the same number of columns");
}

// Data-dependent preconditions, shared with the CUDA kernels. On the CPU they are one plain
// pass over the data; on CUDA tensor ops that read back one flag each (a host sync). The
// index of the first offending element is looked up only to word the error.
namespace {
// Flat index of the first non-finite element, or -1.
int64_t first_nonfinite(const at::Tensor& t) {
  if (t.device().is_cpu() && t.scalar_type() == at::kDouble) {
    const at::Tensor c = t.contiguous();
    const double* p = c.data_ptr<double>();
    const int64_t n = c.numel();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return i;
    return -1;
  }
  const at::Tensor bad = at::isfinite(t).logical_not().reshape({-1});
  if (!bad.any().item<bool>()) return -1;
  return bad.nonzero()[0][0].item<int64_t>();
}

// Flat index f (row r = f / (n - 1), position i = f % (n - 1)) of the first pair of v[.., i],
// v[.., i + 1] out of order along the last dimension, or -1.
int64_t first_unordered(const at::Tensor& v, bool strict) {
  const int64_t n = v.size(-1);
  if (v.device().is_cpu() && v.scalar_type() == at::kDouble) {
    const at::Tensor c = v.contiguous();
    const double* p = c.data_ptr<double>();
    const int64_t rows = c.numel() / n;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i + 1 < n; ++i) {
        const double lo = p[r * n + i], hi = p[r * n + i + 1];
        if (strict ? !(lo < hi) : !(lo <= hi)) return r * (n - 1) + i;
      }
    return -1;
  }
  const at::Tensor lo = v.narrow(-1, 0, n - 1), hi = v.narrow(-1, 1, n - 1);
  const at::Tensor bad = (strict ? lo.ge(hi) : lo.gt(hi)).reshape({-1});
  if (!bad.any().item<bool>()) return -1;
  return bad.nonzero()[0][0].item<int64_t>();
}
}  // namespace

void check_finite(const at::Tensor& t, const char* op, const char* name) {
  if (t.numel() == 0) return;
  const int64_t i = first_nonfinite(t);
  if (i < 0) return;
  RETHINK_CHECK(false, op, ": ", name, " must be finite, but ", name, " holds ", t.reshape({-1})[i].item<double>(),
                " at flat index ", i);
}

// Each row of v (1-D: v itself) must increase along its last dimension: strictly
// (v[i] < v[i + 1]) or not (v[i] <= v[i + 1]). Call after check_finite.
void check_increasing(const at::Tensor& v, const char* op, const char* name, bool strict) {
  const int64_t n = v.dim() == 0 ? 0 : v.size(-1);
  if (n < 2 || v.numel() == 0) return;
  const int64_t f = first_unordered(v, strict);
  if (f < 0) return;
  const int64_t r = f / (n - 1), i = f % (n - 1);
  const at::Tensor row = v.reshape({-1, n})[r];
  const std::string at_row = v.dim() > 1 ? " in row " + std::to_string(r) : "";
  RETHINK_CHECK(false, op, ": ", name, strict ? " must be strictly increasing" : " must be sorted ascending",
                ", but ", name, "[", i + 1, "] = ", row[i + 1].item<double>(), strict ? " <= " : " < ", name, "[", i,
                "] = ", row[i].item<double>(), at_row);
}

void check_weights_values(const at::Tensor& z, const at::Tensor& y) {
  check_finite(z, "interp_weights", "z");
  check_finite(y, "interp_weights", "y");
  check_increasing(z, "interp_weights", "z", /*strict=*/true);
}

void check_sort_values(const at::Tensor& z) { check_finite(z, "interp_sort", "z"); }

void check_score_values(const at::Tensor& zs, const at::Tensor& y) {
  check_finite(zs, "interp_score", "zs");
  check_finite(y, "interp_score", "y");
  check_increasing(zs, "interp_score", "zs", /*strict=*/false);
}

void check_eval_values(const at::Tensor& b, const at::Tensor& z, const at::Tensor& y, const at::Tensor& s) {
  check_finite(b, "interp_eval", "b");
  check_finite(z, "interp_eval", "z");
  check_finite(y, "interp_eval", "y");
  check_finite(s, "interp_eval", "s");
  check_increasing(b, "interp_eval", "b", /*strict=*/true);
  check_increasing(z, "interp_eval", "z", /*strict=*/true);
}
}  // namespace interp

namespace {

using interp::kLanes;

inline double lane_sum(double* acc) {
  for (int s = kLanes / 2; s >= 1; s /= 2)
    for (int l = 0; l < s; ++l) acc[l] = acc[l] + acc[l + s];
  return acc[0];
}

template <typename T>
inline double as_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
inline double as_double<double>(double v) {
  return v;
}

// Reference order: lane l accumulates elements l, l + kLanes, ... with fma; then lane_sum.
template <typename scalar_t>
double dot_scalar(const scalar_t* x, const double* a, int64_t d) {
  double acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(as_double(x[i + l]), a[i + l], acc[l]);
  for (int l = 0; i + l < d; ++l) acc[l] = std::fma(as_double(x[i + l]), a[i + l], acc[l]);
  return lane_sum(acc);
}

#ifdef RETHINK_X86_DISPATCH
// The same order with AVX2: four 4-wide accumulators are lanes 0-3, 4-7, 8-11, 12-15.
// Up to two directions share each load and conversion of x (x is read once per row).
__attribute__((target("avx2,fma"), always_inline)) inline void load16(const float* x, __m256d* v) {
  const __m256 x0 = _mm256_loadu_ps(x);
  const __m256 x1 = _mm256_loadu_ps(x + 8);
  v[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(x0));
  v[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1));
  v[2] = _mm256_cvtps_pd(_mm256_castps256_ps128(x1));
  v[3] = _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1));
}

__attribute__((target("avx2,fma"), always_inline)) inline void load16(const double* x, __m256d* v) {
  for (int q = 0; q < 4; ++q) v[q] = _mm256_loadu_pd(x + 4 * q);
}

// acc_* are kept in named registers (arrays of __m256d could be spilled to memory, which
// puts a store/load on every accumulator's dependency chain).
template <typename T>
__attribute__((target("avx2,fma"))) void dots2_avx2(const T* x, const double* a0, const double* a1, int64_t d,
                                                    double* out, bool two) {
  __m256d p0 = _mm256_setzero_pd(), p1 = _mm256_setzero_pd(), p2 = _mm256_setzero_pd(),
          p3 = _mm256_setzero_pd();
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd(), q2 = _mm256_setzero_pd(),
          q3 = _mm256_setzero_pd();
  int64_t i = 0;
  if (two) {
    for (; i + kLanes <= d; i += kLanes) {
      __m256d v[4];
      load16(x + i, v);
      p0 = _mm256_fmadd_pd(v[0], _mm256_loadu_pd(a0 + i), p0);
      p1 = _mm256_fmadd_pd(v[1], _mm256_loadu_pd(a0 + i + 4), p1);
      p2 = _mm256_fmadd_pd(v[2], _mm256_loadu_pd(a0 + i + 8), p2);
      p3 = _mm256_fmadd_pd(v[3], _mm256_loadu_pd(a0 + i + 12), p3);
      q0 = _mm256_fmadd_pd(v[0], _mm256_loadu_pd(a1 + i), q0);
      q1 = _mm256_fmadd_pd(v[1], _mm256_loadu_pd(a1 + i + 4), q1);
      q2 = _mm256_fmadd_pd(v[2], _mm256_loadu_pd(a1 + i + 8), q2);
      q3 = _mm256_fmadd_pd(v[3], _mm256_loadu_pd(a1 + i + 12), q3);
    }
  } else {
    for (; i + kLanes <= d; i += kLanes) {
      __m256d v[4];
      load16(x + i, v);
      p0 = _mm256_fmadd_pd(v[0], _mm256_loadu_pd(a0 + i), p0);
      p1 = _mm256_fmadd_pd(v[1], _mm256_loadu_pd(a0 + i + 4), p1);
      p2 = _mm256_fmadd_pd(v[2], _mm256_loadu_pd(a0 + i + 8), p2);
      p3 = _mm256_fmadd_pd(v[3], _mm256_loadu_pd(a0 + i + 12), p3);
    }
  }
  double lanes[kLanes];
  _mm256_storeu_pd(lanes, p0);
  _mm256_storeu_pd(lanes + 4, p1);
  _mm256_storeu_pd(lanes + 8, p2);
  _mm256_storeu_pd(lanes + 12, p3);
  for (int l = 0; i + l < d; ++l) lanes[l] = std::fma(static_cast<double>(x[i + l]), a0[i + l], lanes[l]);
  out[0] = lane_sum(lanes);
  if (!two) return;
  _mm256_storeu_pd(lanes, q0);
  _mm256_storeu_pd(lanes + 4, q1);
  _mm256_storeu_pd(lanes + 8, q2);
  _mm256_storeu_pd(lanes + 12, q3);
  for (int l = 0; i + l < d; ++l) lanes[l] = std::fma(static_cast<double>(x[i + l]), a1[i + l], lanes[l]);
  out[1] = lane_sum(lanes);
}

// AVX-512: two 8-wide accumulators per direction are lanes 0-7 and 8-15; up to four
// directions share each load and conversion of x.
__attribute__((target("avx512f"), always_inline)) inline void load16_512(const float* x, __m512d& lo,
                                                                         __m512d& hi) {
  // the zero-masked conversion with every lane selected: the same values as _mm512_cvtps_pd,
  // whose GCC 12 header form reads an undefined register (a -Wmaybe-uninitialized false positive)
  lo = _mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), _mm256_loadu_ps(x));
  hi = _mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), _mm256_loadu_ps(x + 8));
}

__attribute__((target("avx512f"), always_inline)) inline void load16_512(const double* x, __m512d& lo,
                                                                         __m512d& hi) {
  lo = _mm512_loadu_pd(x);
  hi = _mm512_loadu_pd(x + 8);
}

template <typename T, int P>
__attribute__((target("avx512f"))) void dots_avx512(const T* x, const double* A, int64_t d, double* out) {
  __m512d acc[P][2];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    __m512d lo, hi;
    load16_512(x + i, lo, hi);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      acc[p][0] = _mm512_fmadd_pd(lo, _mm512_loadu_pd(A + p * d + i), acc[p][0]);
      acc[p][1] = _mm512_fmadd_pd(hi, _mm512_loadu_pd(A + p * d + i + 8), acc[p][1]);
    }
  }
  for (int p = 0; p < P; ++p) {
    double lanes[kLanes];
    _mm512_storeu_pd(lanes, acc[p][0]);
    _mm512_storeu_pd(lanes + 8, acc[p][1]);
    const double* a = A + p * d;
    for (int l = 0; i + l < d; ++l) lanes[l] = std::fma(static_cast<double>(x[i + l]), a[i + l], lanes[l]);
    out[p] = lane_sum(lanes);
  }
}

// Blocked form for many rows: A is walked in chunks small enough to stay in L1 while a
// block of rows passes over them (A itself, C x d float64, would otherwise stream from L2
// for every row). Each lane still accumulates its elements in order: same bits.
template <typename T, int P>
__attribute__((target("avx512f"))) void chunk_avx512(const T* x, const double* A, int64_t d, int64_t i0,
                                                     int64_t i1, double* lanes /* P x kLanes */) {
  __m512d acc[P][2];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    acc[p][0] = _mm512_loadu_pd(lanes + p * kLanes);
    acc[p][1] = _mm512_loadu_pd(lanes + p * kLanes + 8);
  }
  for (int64_t i = i0; i < i1; i += kLanes) {
    __m512d lo, hi;
    load16_512(x + i, lo, hi);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      acc[p][0] = _mm512_fmadd_pd(lo, _mm512_loadu_pd(A + p * d + i), acc[p][0]);
      acc[p][1] = _mm512_fmadd_pd(hi, _mm512_loadu_pd(A + p * d + i + 8), acc[p][1]);
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    _mm512_storeu_pd(lanes + p * kLanes, acc[p][0]);
    _mm512_storeu_pd(lanes + p * kLanes + 8, acc[p][1]);
  }
}

template <typename T>
void project_block_avx512(const T* X, const double* A, double* Z, int64_t r0, int64_t r1, int64_t d,
                          int64_t C) {
  constexpr int64_t kRows = 16, kChunk = 256;
  const int64_t d_full = d - d % kLanes;
  alignas(64) double lanes[kRows][4 * kLanes];
  for (int64_t rb = r0; rb < r1; rb += kRows) {
    const int64_t rows = std::min(kRows, r1 - rb);
    for (int64_t c0 = 0; c0 < C; c0 += 4) {
      const int P = static_cast<int>(std::min<int64_t>(4, C - c0));
      const double* Ac = A + c0 * d;
      for (int64_t r = 0; r < rows; ++r) std::fill(lanes[r], lanes[r] + 4 * kLanes, 0.0);
      for (int64_t i0 = 0; i0 < d_full; i0 += kChunk) {
        const int64_t i1 = std::min(i0 + kChunk, d_full);
        for (int64_t r = 0; r < rows; ++r) {
          const T* x = X + (rb + r) * d;
          switch (P) {
            case 4:
              chunk_avx512<T, 4>(x, Ac, d, i0, i1, lanes[r]);
              break;
            case 3:
              chunk_avx512<T, 3>(x, Ac, d, i0, i1, lanes[r]);
              break;
            case 2:
              chunk_avx512<T, 2>(x, Ac, d, i0, i1, lanes[r]);
              break;
            default:
              chunk_avx512<T, 1>(x, Ac, d, i0, i1, lanes[r]);
              break;
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const T* x = X + (rb + r) * d;
        for (int p = 0; p < P; ++p) {
          double* ln = lanes[r] + p * kLanes;
          const double* a = Ac + p * d;
          for (int l = 0; d_full + l < d; ++l)
            ln[l] = std::fma(static_cast<double>(x[d_full + l]), a[d_full + l], ln[l]);
          Z[(rb + r) * C + c0 + p] = lane_sum(ln);
        }
      }
    }
  }
}

bool have_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

bool have_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#endif

// out[c] = <x, A[c]> for c < C, each in the reference order.
template <typename T>
void dots(const T* x, const double* A, int64_t d, int64_t C, double* out) {
#ifdef RETHINK_X86_DISPATCH
  if (have_avx512()) {
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) dots_avx512<T, 4>(x, A + c * d, d, out + c);
    switch (C - c) {
      case 3:
        dots_avx512<T, 3>(x, A + c * d, d, out + c);
        break;
      case 2:
        dots_avx512<T, 2>(x, A + c * d, d, out + c);
        break;
      case 1:
        dots_avx512<T, 1>(x, A + c * d, d, out + c);
        break;
      default:
        break;
    }
    return;
  }
  if (have_avx2()) {
    int64_t c = 0;
    for (; c + 2 <= C; c += 2) dots2_avx2(x, A + c * d, A + (c + 1) * d, d, out + c, true);
    if (c < C) dots2_avx2(x, A + c * d, A + c * d, d, out + c, false);
    return;
  }
#endif
  for (int64_t c = 0; c < C; ++c) out[c] = dot_scalar(x, A + c * d, d);
}

template <typename scalar_t>
void project_rows(const scalar_t* X, const double* A, double* Z, int64_t begin, int64_t end, int64_t d,
                  int64_t C) {
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
#ifdef RETHINK_X86_DISPATCH
    // One direction streams each row once with A in L1/L2: no blocking needed.
    if (have_avx512() && C > 1) return project_block_avx512(X, A, Z, begin, end, d, C);
#endif
    for (int64_t r = begin; r < end; ++r) dots(X + r * d, A, d, C, Z + r * C);
  } else {
    // Half / BFloat16: widen one row at a time to float (exact), then the float path.
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* x = X + r * d;
      for (int64_t i = 0; i < d; ++i) row[i] = static_cast<float>(x[i]);
      dots(row.data(), A, d, C, Z + r * C);
    }
  }
}

at::Tensor interp_project_cpu(const at::Tensor& X, const at::Tensor& A) {
  interp::check_project_args(X, A);
  RETHINK_CHECK(X.device().is_cpu(), "interp_project (CPU kernel): X must be on the CPU");
  const at::Tensor Xc = X.contiguous();
  const at::Tensor Ac = A.contiguous();
  const int64_t n = Xc.size(0), d = Xc.size(1), C = Ac.size(0);
  at::Tensor Z = at::empty({n, C}, X.options().dtype(at::kDouble));
  if (n == 0 || C == 0) return Z;
  // Rows are handed out in small chunks from a shared counter, so a thread slowed down by
  // other work on its core does not hold up the whole pass (at::parallel_for splits
  // statically).
  const int64_t chunk = (std::max<int64_t>(16, 65536 / std::max<int64_t>(1, d)) + 15) / 16 * 16;
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), (n + chunk - 1) / chunk);
  std::atomic<int64_t> next{0};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, Xc.scalar_type(), "interp_project_cpu", [&] {
    const scalar_t* xp = Xc.data_ptr<scalar_t>();
    const double* ap = Ac.data_ptr<double>();
    double* zp = Z.data_ptr<double>();
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      for (int64_t r0; (r0 = next.fetch_add(chunk)) < n;)
        project_rows(xp, ap, zp, r0, std::min(n, r0 + chunk), d, C);
    });
  });
  return Z;
}

std::tuple<at::Tensor, at::Tensor> interp_weights_cpu(const at::Tensor& z, const at::Tensor& y, double t) {
  interp::check_weights_args(z, y, t);
  RETHINK_CHECK(z.device().is_cpu(), "interp_weights (CPU kernel): z must be on the CPU");
  interp::check_weights_values(z, y);
  const at::Tensor zc = z.contiguous();
  const at::Tensor yc = y.contiguous();
  const int64_t m = zc.size(0), k = yc.size(1);
  at::Tensor b = at::empty({m}, zc.options());
  at::Tensor s = at::empty({m, k}, zc.options());
  if (m == 0) return {b, s};
  const double* zp = zc.data_ptr<double>();
  const double* yp = yc.data_ptr<double>();
  double* bp = b.data_ptr<double>();
  double* sp = s.data_ptr<double>();
  at::parallel_for(0, m, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) bp[j] = interp::breakpoint_at(zp, m, j, t);
  });
  // O(m k), sequential along the nodes; columns are independent.
  at::parallel_for(0, k, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double S = 0.0;
      for (int64_t j = 0; j < m; ++j) {
        const double yprev = j > 0 ? yp[(j - 1) * k + c] : 0.0;
        S = interp::apply(interp::step(zp, m, j, t, yp[j * k + c], yprev), S);
        sp[j * k + c] = S;
      }
    }
  });
  return {b, s};
}

at::Tensor interp_eval_cpu(const at::Tensor& zq, const at::Tensor& b, const at::Tensor& z,
                           const at::Tensor& y, const at::Tensor& s) {
  interp::check_eval_args(zq, b, z, y, s);
  RETHINK_CHECK(zq.device().is_cpu(), "interp_eval (CPU kernel): inputs must be on the CPU");
  interp::check_eval_values(b, z, y, s);
  const at::Tensor zqc = zq.contiguous(), bc = b.contiguous(), zc = z.contiguous();
  const at::Tensor yc = y.contiguous(), sc = s.contiguous();
  const int64_t q = zqc.size(0), m = bc.size(0), k = yc.size(1);
  at::Tensor out = at::empty({q, k}, zqc.options());
  if (q == 0 || k == 0) return out;
  const double* qp = zqc.data_ptr<double>();
  const double* bp = bc.data_ptr<double>();
  const double* zp = zc.data_ptr<double>();
  const double* yp = yc.data_ptr<double>();
  const double* sp = sc.data_ptr<double>();
  double* op = out.data_ptr<double>();
  at::parallel_for(0, q, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) interp::eval_query(bp, zp, yp, sp, m, k, qp[i], op + i * k);
  });
  return out;
}

// Score of each candidate row (see interp::score_row); rows are independent.
at::Tensor interp_score_cpu(const at::Tensor& zs, const at::Tensor& order, const at::Tensor& y, double t) {
  interp::check_score_args(zs, order, y, t);
  RETHINK_CHECK(zs.device().is_cpu(), "interp_score (CPU kernel): inputs must be on the CPU");
  interp::check_score_values(zs, y);
  const at::Tensor zc = zs.contiguous(), oc = order.contiguous(), yc = y.contiguous();
  const int64_t R = zc.size(0), n = zc.size(1);
  at::Tensor out = at::zeros({R}, zc.options());
  if (R == 0 || n == 0) return out;
  const double* zp = zc.data_ptr<double>();
  const int64_t* op = oc.data_ptr<int64_t>();
  const double* yp = yc.data_ptr<double>();
  double* outp = out.data_ptr<double>();
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) outp[r] = interp::score_row(zp + r * n, op + r * n, yp, n, t);
  });
  return out;
}

// Stable ascending sort of each row: LSD radix sort on the order-preserving integer image
// of the float64 keys (11-bit digits, passes where every key shares the digit skipped).
// -0.0 and +0.0 compare equal, as in torch.sort.
inline uint64_t order_key(double v) {
  v = v + 0.0;  // -0.0 -> +0.0
  uint64_t u;
  std::memcpy(&u, &v, sizeof(u));
  return (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
}

void radix_sort_row(const double* z, int64_t n, double* vals, int64_t* idx) {
  constexpr int kBits = 11, kBuckets = 1 << kBits, kPasses = (64 + kBits - 1) / kBits;
  std::vector<uint64_t> k0(n), k1(n);
  std::vector<int64_t> i0(n), i1(n);
  std::vector<int64_t> hist(static_cast<size_t>(kPasses) * kBuckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = order_key(z[i]);
    k0[i] = k;
    i0[i] = i;
    for (int p = 0; p < kPasses; ++p) ++hist[p * kBuckets + ((k >> (p * kBits)) & (kBuckets - 1))];
  }
  for (int p = 0; p < kPasses; ++p) {
    int64_t* h = hist.data() + p * kBuckets;
    const int shift = p * kBits;
    if (h[(k0[0] >> shift) & (kBuckets - 1)] == n) continue;  // every key shares this digit
    int64_t run = 0;
    for (int b = 0; b < kBuckets; ++b) {
      const int64_t c = h[b];
      h[b] = run;
      run += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = h[(k0[i] >> shift) & (kBuckets - 1)]++;
      k1[pos] = k0[i];
      i1[pos] = i0[i];
    }
    k0.swap(k1);
    i0.swap(i1);
  }
  for (int64_t i = 0; i < n; ++i) {
    idx[i] = i0[i];
    vals[i] = z[i0[i]];
  }
}

std::tuple<at::Tensor, at::Tensor> interp_sort_cpu(const at::Tensor& z) {
  interp::check_sort_args(z);
  RETHINK_CHECK(z.device().is_cpu(), "interp_sort (CPU kernel): z must be on the CPU");
  interp::check_sort_values(z);
  const at::Tensor zc = z.contiguous();
  const int64_t C = zc.size(0), n = zc.size(1);
  at::Tensor vals = at::empty({C, n}, zc.options());
  at::Tensor idx = at::empty({C, n}, zc.options().dtype(at::kLong));
  if (C == 0 || n == 0) return {vals, idx};
  const double* zp = zc.data_ptr<double>();
  double* vp = vals.data_ptr<double>();
  int64_t* ip = idx.data_ptr<int64_t>();
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) radix_sort_row(zp + c * n, n, vp + c * n, ip + c * n);
  });
  return {vals, idx};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rethink, m) {
  m.def("interp_project(Tensor X, Tensor A) -> Tensor");
  m.def("interp_weights(Tensor z, Tensor y, float t) -> (Tensor, Tensor)");
  m.def("interp_sort(Tensor z) -> (Tensor, Tensor)");
  m.def("interp_score(Tensor zs, Tensor order, Tensor y, float t) -> Tensor");
  m.def("interp_eval(Tensor zq, Tensor b, Tensor z, Tensor y, Tensor s) -> Tensor");
}

TORCH_LIBRARY_IMPL(rethink, CPU, m) {
  m.impl("interp_project", &interp_project_cpu);
  m.impl("interp_weights", &interp_weights_cpu);
  m.impl("interp_sort", &interp_sort_cpu);
  m.impl("interp_score", &interp_score_cpu);
  m.impl("interp_eval", &interp_eval_cpu);
}

}  // namespace rethink
