// Theorem 1 (finite-sample expressivity): CUDA twins of csrc/cpu/interpolate.cpp, with the
// same semantics. Projections and segment values are bitwise equal to the CPU kernels'
// (same accumulation order, see csrc/interpolate.h); the slope recurrence is a parallel
// scan of affine maps here and a sequential loop on the CPU, so slopes agree up to rounding.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <climits>
#include <cub/device/device_scan.cuh>
#include <tuple>

#include "check.h"
#include "interpolate.h"

namespace rethink {
namespace interp {
// Defined in csrc/cpu/interpolate.cpp.
void check_project_args(const at::Tensor& X, const at::Tensor& A);
void check_weights_args(const at::Tensor& z, const at::Tensor& y, double t);
void check_sort_args(const at::Tensor& z);
void check_score_args(const at::Tensor& zs, const at::Tensor& order, const at::Tensor& y, double t);
void check_eval_args(const at::Tensor& zq, const at::Tensor& b, const at::Tensor& z, const at::Tensor& y,
                     const at::Tensor& s);
void check_weights_values(const at::Tensor& z, const at::Tensor& y);
void check_sort_values(const at::Tensor& z);
void check_score_values(const at::Tensor& zs, const at::Tensor& y);
void check_eval_values(const at::Tensor& b, const at::Tensor& z, const at::Tensor& y, const at::Tensor& s);
}  // namespace interp

namespace {

using interp::kLanes;
constexpr int kThreads = 256;

inline int64_t blocks_for(int64_t work, int64_t per_block) { return (work + per_block - 1) / per_block; }

template <typename T>
__device__ __forceinline__ double as_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
__device__ __forceinline__ double as_double<double>(double v) {
  return v;
}

// kLanes threads per row: lane l accumulates elements l, l + kLanes, ... with fma, then a
// pairwise tree over the lanes (offsets 8, 4, 2, 1), as on the CPU.
template <typename scalar_t>
__global__ void project_kernel(const scalar_t* __restrict__ X, const double* __restrict__ A,
                               double* __restrict__ Z, int64_t n, int64_t d, int64_t C) {
  const int lane = threadIdx.x % kLanes;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kLanes;
  const bool active = row < n;
  const scalar_t* x = X + (active ? row : 0) * d;
  for (int64_t c = 0; c < C; ++c) {
    const double* a = A + c * d;
    double acc = 0.0;
    if (active)
      for (int64_t i = lane; i < d; i += kLanes) acc = __fma_rn(as_double(x[i]), a[i], acc);
#pragma unroll
    for (int off = kLanes / 2; off >= 1; off /= 2)
      acc = __dadd_rn(acc, __shfl_down_sync(0xffffffffu, acc, off, kLanes));
    if (active && lane == 0) Z[row * C + c] = acc;
  }
}

at::Tensor interp_project_cuda(const at::Tensor& X, const at::Tensor& A) {
  interp::check_project_args(X, A);
  RETHINK_CHECK(X.is_cuda(), "interp_project (CUDA kernel): X must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(X.device());
  const at::Tensor Xc = X.contiguous();
  const at::Tensor Ac = A.contiguous();
  const int64_t n = Xc.size(0), d = Xc.size(1), C = Ac.size(0);
  at::Tensor Z = at::empty({n, C}, X.options().dtype(at::kDouble));
  if (n == 0 || C == 0) return Z;
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t blocks = blocks_for(n * kLanes, kThreads);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, Xc.scalar_type(), "interp_project_cuda", [&] {
    project_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(Xc.data_ptr<scalar_t>(), Ac.data_ptr<double>(),
                                                              Z.data_ptr<double>(), n, d, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return Z;
}

// Stable ascending sort of each row (torch's CUDA sort is already a radix sort).
std::tuple<at::Tensor, at::Tensor> interp_sort_cuda(const at::Tensor& z) {
  interp::check_sort_args(z);
  RETHINK_CHECK(z.is_cuda(), "interp_sort (CUDA kernel): z must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(z.device());
  interp::check_sort_values(z);
  // +0.0 turns -0.0 into +0.0 (equal keys, as on the CPU); values come back unchanged.
  auto sorted = at::sort(z.contiguous() + 0.0, /*stable=*/true, /*dim=*/1, /*descending=*/false);
  at::Tensor idx = std::get<1>(sorted);
  return {at::gather(z, 1, idx), idx};
}

struct AffinePair {
  double alpha;
  double beta;
};

// Composition of S -> alpha + beta S maps, earlier map first: (later after earlier).
struct Compose {
  __device__ __forceinline__ AffinePair operator()(const AffinePair& earlier, const AffinePair& later) const {
    const double alpha =
        later.beta == 0.0 ? later.alpha : __dadd_rn(later.alpha, __dmul_rn(later.beta, earlier.alpha));
    return {alpha, __dmul_rn(later.beta, earlier.beta)};
  }
};

// pairs[c * m + j] = step j of column c (column-major so each column is one run of the
// scan; beta = 0 at j = 0 resets the scan at each column start).
__global__ void steps_kernel(const double* __restrict__ z, const double* __restrict__ y,
                             AffinePair* __restrict__ pairs, double* __restrict__ b, int64_t m, int64_t k,
                             double t) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= m * k) return;
  const int64_t c = idx / m, j = idx % m;
  const double yprev = j > 0 ? y[(j - 1) * k + c] : 0.0;
  const interp::Affine f = interp::step(z, m, j, t, y[j * k + c], yprev);
  pairs[idx] = {f.alpha, f.beta};
  if (c == 0) b[j] = interp::breakpoint_at(z, m, j, t);
}

__global__ void slopes_kernel(const AffinePair* __restrict__ scanned, double* __restrict__ s, int64_t m,
                              int64_t k) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= m * k) return;
  const int64_t c = idx / m, j = idx % m;
  s[j * k + c] = scanned[idx].alpha;  // the composed map's beta is 0: S_j = alpha
}

std::tuple<at::Tensor, at::Tensor> interp_weights_cuda(const at::Tensor& z, const at::Tensor& y, double t) {
  interp::check_weights_args(z, y, t);
  RETHINK_CHECK(z.is_cuda(), "interp_weights (CUDA kernel): z must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(z.device());
  interp::check_weights_values(z, y);
  const at::Tensor zc = z.contiguous();
  const at::Tensor yc = y.contiguous();
  const int64_t m = zc.size(0), k = yc.size(1);
  at::Tensor b = at::empty({m}, zc.options());
  at::Tensor s = at::empty({m, k}, zc.options());
  if (m == 0) return {b, s};
  if (k == 0) {
    // breakpoints only
    at::Tensor dummy = at::zeros({m, 1}, zc.options());
    return {std::get<0>(interp_weights_cuda(zc, dummy, t)), s};
  }
  RETHINK_CHECK(m * k <= INT_MAX, "interp_weights (CUDA kernel): m * k = ", m * k, " exceeds the scan's limit");
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t total = m * k;
  at::Tensor pair_buf = at::empty({2 * total}, zc.options());
  at::Tensor scan_buf = at::empty({2 * total}, zc.options());
  auto* pairs = reinterpret_cast<AffinePair*>(pair_buf.data_ptr<double>());
  auto* scanned = reinterpret_cast<AffinePair*>(scan_buf.data_ptr<double>());
  const int64_t blocks = blocks_for(total, kThreads);
  steps_kernel<<<blocks, kThreads, 0, stream>>>(zc.data_ptr<double>(), yc.data_ptr<double>(), pairs,
                                                b.data_ptr<double>(), m, k, t);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  size_t temp_bytes = 0;
  C10_CUDA_CHECK(cub::DeviceScan::InclusiveScan(nullptr, temp_bytes, pairs, scanned, Compose(),
                                                static_cast<int>(total), stream));
  at::Tensor temp = at::empty({static_cast<int64_t>(temp_bytes) + 1}, zc.options().dtype(at::kByte));
  C10_CUDA_CHECK(cub::DeviceScan::InclusiveScan(temp.data_ptr(), temp_bytes, pairs, scanned, Compose(),
                                                static_cast<int>(total), stream));
  slopes_kernel<<<blocks, kThreads, 0, stream>>>(scanned, s.data_ptr<double>(), m, k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {b, s};
}

// One thread per candidate row (there are few rows): the same sequential loop as the CPU.
__global__ void score_kernel(const double* __restrict__ zs, const int64_t* __restrict__ order,
                             const double* __restrict__ y, double* __restrict__ out, int64_t R, int64_t n,
                             double t) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R) out[r] = interp::score_row(zs + r * n, order + r * n, y, n, t);
}

at::Tensor interp_score_cuda(const at::Tensor& zs, const at::Tensor& order, const at::Tensor& y, double t) {
  interp::check_score_args(zs, order, y, t);
  RETHINK_CHECK(zs.is_cuda(), "interp_score (CUDA kernel): inputs must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(zs.device());
  interp::check_score_values(zs, y);
  const at::Tensor zc = zs.contiguous(), oc = order.contiguous(), yc = y.contiguous();
  const int64_t R = zc.size(0), n = zc.size(1);
  at::Tensor out = at::zeros({R}, zc.options());
  if (R == 0 || n == 0) return out;
  const auto stream = at::cuda::getCurrentCUDAStream();
  score_kernel<<<blocks_for(R, 32), 32, 0, stream>>>(zc.data_ptr<double>(), oc.data_ptr<int64_t>(),
                                                     yc.data_ptr<double>(), out.data_ptr<double>(), R, n, t);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// One thread per query: binary search for the segment, then y_j + s_j (zq - z_j).
__global__ void eval_kernel(const double* __restrict__ zq, const double* __restrict__ b,
                            const double* __restrict__ z, const double* __restrict__ y,
                            const double* __restrict__ s, double* __restrict__ out, int64_t q, int64_t m,
                            int64_t k) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= q) return;
  interp::eval_query(b, z, y, s, m, k, zq[i], out + i * k);
}

at::Tensor interp_eval_cuda(const at::Tensor& zq, const at::Tensor& b, const at::Tensor& z,
                            const at::Tensor& y, const at::Tensor& s) {
  interp::check_eval_args(zq, b, z, y, s);
  RETHINK_CHECK(zq.is_cuda(), "interp_eval (CUDA kernel): inputs must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(zq.device());
  interp::check_eval_values(b, z, y, s);
  const at::Tensor zqc = zq.contiguous(), bc = b.contiguous(), zc = z.contiguous();
  const at::Tensor yc = y.contiguous(), sc = s.contiguous();
  const int64_t q = zqc.size(0), m = bc.size(0), k = yc.size(1);
  at::Tensor out = at::empty({q, k}, zqc.options());
  if (q == 0 || k == 0) return out;
  const auto stream = at::cuda::getCurrentCUDAStream();
  eval_kernel<<<blocks_for(q, kThreads), kThreads, 0, stream>>>(
      zqc.data_ptr<double>(), bc.data_ptr<double>(), zc.data_ptr<double>(), yc.data_ptr<double>(),
      sc.data_ptr<double>(), out.data_ptr<double>(), q, m, k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rethink, CUDA, m) {
  m.impl("interp_project", &interp_project_cuda);
  m.impl("interp_sort", &interp_sort_cuda);
  m.impl("interp_weights", &interp_weights_cuda);
  m.impl("interp_score", &interp_score_cuda);
  m.impl("interp_eval", &interp_eval_cuda);
}

}  // namespace rethink
