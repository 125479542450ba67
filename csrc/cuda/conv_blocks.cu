// CUDA twins of csrc/cpu/conv_blocks.cpp: cross-channel local response normalization and the
// fused ReLU -> max-pool -> LRN, forward and backward, with the semantics of
// csrc/conv_blocks.h. One thread per output value, in memory order (so both the contiguous
// and the channels-last layouts read and write coalesced); the pooling gradient is gathered
// per input value (no atomics: deterministic). Reduced precision (half, bfloat16) is
// accumulated in float.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>

#include "check.h"
#include "conv_blocks.h"

namespace rethink {

namespace {

constexpr int kThreads = 256;

// Sizes and strides of an (N, C, P) tensor whose memory order is (N, C, P) (contiguous) or
// (N, P, C) (channels-last). `channel_of` and the channel stride follow from the layout.
struct Dims {
  int64_t n, c, p;
  bool cl;  // channels-last
  RETHINK_HD int64_t channel(int64_t i) const { return cl ? i % c : (i / p) % c; }
  RETHINK_HD int64_t sc() const { return cl ? 1 : p; }
};

Dims dims_of(const at::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  return Dims{n, c, x.numel() / std::max<int64_t>(n * c, 1), channels_last(x)};
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void check_cuda(const at::Tensor& x, const char* what, const char* op) {
  RETHINK_CHECK(x.is_cuda(), op, " (CUDA kernel): ", what, " must be on a CUDA device, got ", x.device());
  RETHINK_CHECK(at::isFloatingType(x.scalar_type()), op, ": ", what, " must be a floating-point tensor, got ",
                x.scalar_type());
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    lrn_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, scalar_t* __restrict__ scale, Dims d,
               int64_t total, int size, acc_t alpha, acc_t beta, acc_t k) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (i >= total) return;
  const int64_t c = d.channel(i), sc = d.sc();
  int64_t lo, hi;
  lrn_window(c, size, d.c, lo, hi);
  acc_t sum = 0;
  for (int64_t j = lo; j <= hi; ++j) {
    const acc_t v = static_cast<acc_t>(x[i + (j - c) * sc]);
    sum += v * v;
  }
  const acc_t s = k + alpha / static_cast<acc_t>(size) * sum;
  scale[i] = static_cast<scalar_t>(s);
  y[i] = static_cast<scalar_t>(static_cast<acc_t>(x[i]) * lrn_power(s, beta));
}

// t = g x scale^(-beta-1), the per-channel term the LRN gradient sums over.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    lrn_backward_term(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                      const scalar_t* __restrict__ scale, acc_t* __restrict__ t, int64_t total, acc_t beta) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (i >= total) return;
  const acc_t s = static_cast<acc_t>(scale[i]);
  t[i] = static_cast<acc_t>(g[i]) * static_cast<acc_t>(x[i]) * lrn_power(s, beta) / s;
}

template <typename scalar_t, typename acc_t, typename out_t>
__global__ void __launch_bounds__(kThreads)
    lrn_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                        const scalar_t* __restrict__ scale, const acc_t* __restrict__ t, out_t* __restrict__ dx,
                        Dims d, int64_t total, int size, acc_t alpha, acc_t beta) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (i >= total) return;
  const int64_t j = d.channel(i), sc = d.sc();
  int64_t lo, hi;
  lrn_window_holding(j, size, d.c, lo, hi);
  acc_t sum = 0;
  for (int64_t c = lo; c <= hi; ++c) sum += t[i + (c - j) * sc];
  const acc_t coef = acc_t(2) * alpha * beta / static_cast<acc_t>(size);
  dx[i] = static_cast<out_t>(static_cast<acc_t>(g[i]) * lrn_power(static_cast<acc_t>(scale[i]), beta) -
                             coef * static_cast<acc_t>(x[i]) * sum);
}

struct PoolDims {
  int64_t n, c, h, w, oh, ow;
  int kernel, stride, padding;
  bool cl;
};

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    pool_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ pooled, int32_t* __restrict__ argmax,
                PoolDims d, int64_t total, bool relu) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (i >= total) return;
  int64_t n, c, oh, ow;
  if (d.cl) {
    c = i % d.c, ow = (i / d.c) % d.ow, oh = (i / (d.c * d.ow)) % d.oh, n = i / (d.c * d.ow * d.oh);
  } else {
    ow = i % d.ow, oh = (i / d.ow) % d.oh, c = (i / (d.ow * d.oh)) % d.c, n = i / (d.ow * d.oh * d.c);
  }
  const int64_t h0 = oh * d.stride - d.padding < 0 ? 0 : oh * d.stride - d.padding;
  const int64_t h1 = oh * d.stride - d.padding + d.kernel > d.h ? d.h : oh * d.stride - d.padding + d.kernel;
  const int64_t w0 = ow * d.stride - d.padding < 0 ? 0 : ow * d.stride - d.padding;
  const int64_t w1 = ow * d.stride - d.padding + d.kernel > d.w ? d.w : ow * d.stride - d.padding + d.kernel;
  const int64_t base = d.cl ? n * d.h * d.w * d.c + c : (n * d.c + c) * d.h * d.w;
  const int64_t sp = d.cl ? d.c : 1;
  scalar_t best = -std::numeric_limits<scalar_t>::infinity();
  int32_t where = -1;
  bool found_nan = false;
  for (int64_t h = h0; h < h1 && !found_nan; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const scalar_t v = x[base + (h * d.w + w) * sp];
      const bool nan = isnan(static_cast<float>(v));
      if (v > best || nan) {
        best = v, where = static_cast<int32_t>(h * d.w + w);
        if (nan) {
          found_nan = true;
          break;
        }
      }
    }
  if (relu && !found_nan && !(best > scalar_t(0))) best = scalar_t(0), where = -1;
  pooled[i] = best;
  argmax[i] = where;
}

// dx at each input value: the pooled gradients of the windows whose argmax it is.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    pool_backward_kernel(const acc_t* __restrict__ dpool, const int32_t* __restrict__ argmax,
                         scalar_t* __restrict__ dx, PoolDims d, int64_t total) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (i >= total) return;
  int64_t n, c, h, w;
  if (d.cl) {
    c = i % d.c, w = (i / d.c) % d.w, h = (i / (d.c * d.w)) % d.h, n = i / (d.c * d.w * d.h);
  } else {
    w = i % d.w, h = (i / d.w) % d.h, c = (i / (d.w * d.h)) % d.c, n = i / (d.w * d.h * d.c);
  }
  // windows oh with oh * stride - padding <= h < oh * stride - padding + kernel
  const int64_t hp = h + d.padding, wp = w + d.padding;
  const int64_t oh0 = hp < d.kernel ? 0 : (hp - d.kernel) / d.stride + 1;
  const int64_t ow0 = wp < d.kernel ? 0 : (wp - d.kernel) / d.stride + 1;
  const int64_t oh1 = hp / d.stride < d.oh - 1 ? hp / d.stride : d.oh - 1;
  const int64_t ow1 = wp / d.stride < d.ow - 1 ? wp / d.stride : d.ow - 1;
  const int32_t me = static_cast<int32_t>(h * d.w + w);
  acc_t sum = 0;
  for (int64_t oh = oh0; oh <= oh1; ++oh)
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const int64_t o = d.cl ? ((n * d.oh + oh) * d.ow + ow) * d.c + c : ((n * d.c + c) * d.oh + oh) * d.ow + ow;
      if (argmax[o] == me) sum += dpool[o];
    }
  dx[i] = static_cast<scalar_t>(sum);
}

at::Tensor empty_as(const at::Tensor& x, at::IntArrayRef sizes, at::ScalarType dtype) {
  return at::empty(sizes, x.options().dtype(dtype).memory_format(format_of(x)));
}

template <typename scalar_t, typename acc_t>
void launch_lrn(const at::Tensor& x, at::Tensor& y, at::Tensor& scale, int64_t size, double alpha, double beta,
                double k, cudaStream_t stream) {
  const int64_t total = x.numel();
  lrn_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
      x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), scale.mutable_data_ptr<scalar_t>(), dims_of(x),
      total, static_cast<int>(size), static_cast<acc_t>(alpha), static_cast<acc_t>(beta), static_cast<acc_t>(k));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The LRN gradient into dx (of type out_t, the layout of x).
template <typename scalar_t, typename acc_t, typename out_t>
void launch_lrn_backward(const at::Tensor& g, const at::Tensor& x, const at::Tensor& scale, out_t* dx, int64_t size,
                         double alpha, double beta, cudaStream_t stream) {
  const int64_t total = x.numel();
  const auto acc_dtype = std::is_same<acc_t, double>::value ? at::kDouble : at::kFloat;
  at::Tensor t = at::empty({total}, x.options().dtype(acc_dtype));
  lrn_backward_term<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
      g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), scale.const_data_ptr<scalar_t>(),
      t.mutable_data_ptr<acc_t>(), total, static_cast<acc_t>(beta));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  lrn_backward_kernel<scalar_t, acc_t, out_t><<<blocks_for(total), kThreads, 0, stream>>>(
      g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), scale.const_data_ptr<scalar_t>(),
      t.const_data_ptr<acc_t>(), dx, dims_of(x), total, static_cast<int>(size), static_cast<acc_t>(alpha),
      static_cast<acc_t>(beta));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> lrn_cuda(const at::Tensor& input, int64_t size, double alpha, double beta,
                                            double k) {
  check_cuda(input, "input", "lrn");
  RETHINK_CHECK(input.dim() >= 3, "lrn: input must be (N, C, *) with at least 3 dims, got ", input.dim(), "-D");
  check_lrn(size, alpha, beta, k, "lrn");
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = standard_layout(input);
  at::Tensor y = empty_as(x, x.sizes(), x.scalar_type()), scale = empty_as(x, x.sizes(), x.scalar_type());
  if (x.numel() == 0) return {y, scale};
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "lrn_cuda", [&] {
    launch_lrn<scalar_t, at::opmath_type<scalar_t>>(x, y, scale, size, alpha, beta, k, stream);
  });
  return {y, scale};
}

at::Tensor lrn_backward_cuda(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& scale, int64_t size,
                             double alpha, double beta, double k) {
  check_cuda(grad, "grad", "lrn_backward");
  check_lrn_backward(grad, input, scale, size, alpha, beta, k);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = standard_layout(input);
  const auto fmt = format_of(x);
  const at::Tensor g = grad.contiguous(fmt), s = scale.contiguous(fmt);
  at::Tensor dx = empty_as(x, x.sizes(), x.scalar_type());
  if (x.numel() == 0) return dx;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "lrn_backward_cuda", [&] {
    launch_lrn_backward<scalar_t, at::opmath_type<scalar_t>, scalar_t>(g, x, s, dx.mutable_data_ptr<scalar_t>(), size,
                                                                       alpha, beta, stream);
  });
  return dx;
}

PoolDims pool_dims(at::IntArrayRef in, int64_t oh, int64_t ow, int64_t kernel, int64_t stride, int64_t padding,
                   bool cl) {
  return PoolDims{in[0], in[1], in[2], in[3], oh, ow, static_cast<int>(kernel), static_cast<int>(stride),
                  static_cast<int>(padding), cl};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pool_lrn_cuda(const at::Tensor& input, int64_t kernel,
                                                                         int64_t stride, int64_t padding, bool relu,
                                                                         int64_t size, double alpha, double beta,
                                                                         double k) {
  check_cuda(input, "input", "pool_lrn");
  check_pool(input, kernel, stride, padding, "pool_lrn");
  check_lrn(size, alpha, beta, k, "pool_lrn");
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = standard_layout(input);
  const int64_t OH = pool_out_size(x.size(2), kernel, stride, padding);
  const int64_t OW = pool_out_size(x.size(3), kernel, stride, padding);
  const std::vector<int64_t> out_sizes{x.size(0), x.size(1), OH, OW};
  at::Tensor y = empty_as(x, out_sizes, x.scalar_type()), pooled = empty_as(x, out_sizes, x.scalar_type());
  at::Tensor scale = empty_as(x, out_sizes, x.scalar_type()), argmax = empty_as(x, out_sizes, at::kInt);
  if (y.numel() == 0) return {y, pooled, scale, argmax};
  const PoolDims d = pool_dims(x.sizes(), OH, OW, kernel, stride, padding, channels_last(x));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "pool_lrn_cuda", [&] {
    const int64_t total = pooled.numel();
    pool_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), pooled.mutable_data_ptr<scalar_t>(), argmax.mutable_data_ptr<int32_t>(), d,
        total, relu);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    launch_lrn<scalar_t, at::opmath_type<scalar_t>>(pooled, y, scale, size, alpha, beta, k, stream);
  });
  return {y, pooled, scale, argmax};
}

at::Tensor pool_lrn_backward_cuda(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& scale,
                                  const at::Tensor& argmax, at::IntArrayRef input_size, int64_t kernel, int64_t stride,
                                  int64_t padding, int64_t size, double alpha, double beta, double k) {
  check_cuda(grad, "grad", "pool_lrn_backward");
  check_pool_lrn_backward(grad, pooled, scale, argmax, input_size, kernel, stride, padding, size, alpha, beta, k);
  const c10::cuda::CUDAGuard guard(pooled.device());
  const at::Tensor p = standard_layout(pooled);
  const auto fmt = format_of(p);
  const at::Tensor g = grad.contiguous(fmt), s = scale.contiguous(fmt), a = argmax.contiguous(fmt);
  at::Tensor dx = at::empty(input_size, p.options().memory_format(fmt));
  if (dx.numel() == 0) return dx;
  const PoolDims d = pool_dims(input_size, p.size(2), p.size(3), kernel, stride, padding, channels_last(p));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, p.scalar_type(), "pool_lrn_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_dtype = std::is_same<acc_t, double>::value ? at::kDouble : at::kFloat;
    at::Tensor dpool = at::empty(p.sizes(), p.options().dtype(acc_dtype).memory_format(fmt));
    launch_lrn_backward<scalar_t, acc_t, acc_t>(g, p, s, dpool.mutable_data_ptr<acc_t>(), size, alpha, beta, stream);
    const int64_t total = dx.numel();
    pool_backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
        dpool.const_data_ptr<acc_t>(), a.const_data_ptr<int32_t>(), dx.mutable_data_ptr<scalar_t>(), d, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY_IMPL(rethink, CUDA, m) {
  m.impl("lrn", &lrn_cuda);
  m.impl("lrn_backward", &lrn_backward_cuda);
  m.impl("pool_lrn", &pool_lrn_cuda);
  m.impl("pool_lrn_backward", &pool_lrn_backward_cuda);
}

}  // namespace rethink
