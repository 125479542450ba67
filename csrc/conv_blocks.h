// Shared by the CPU (csrc/cpu/conv_blocks.cpp) and CUDA (csrc/cuda/conv_blocks.cu) kernels of
// the paper's conv-net blocks: cross-channel local response normalization (LRN) and the
// fused ReLU -> max-pool -> LRN of small AlexNet's block.
//
// Semantics (those of torch.nn.LocalResponseNorm, for inputs (N, C, *)):
//   scale[n, c, p] = k + alpha / size * sum_{c' = c - size/2}^{c + (size-1)/2} x[n, c', p]^2
//   y[n, c, p]     = x[n, c, p] * scale[n, c, p]^(-beta)
// (channels outside [0, C) count as zeros, and the sum is divided by `size` whatever the
// number of channels inside; `/` is integer division). The gradient:
//   dx[j] = g[j] scale[j]^(-beta)
//           - 2 alpha beta / size * x[j] * sum_{c = j - (size-1)/2}^{j + size/2} g[c] x[c] scale[c]^(-beta-1)
//
// The fused block: pooled = max over each kernel x kernel window (stride, zero padding counted
// as -inf) of relu(x) when `relu` (else of x), then y = LRN(pooled). `argmax` holds, per
// pooled value, the flat index h * W + w of the input position it came from, or -1 when the
// ReLU made it zero (no gradient flows then: ReLU's gradient at 0 is 0). Ties go to the first
// position in row-major window order, as torch's max_pool2d does.
#pragma once

#include <math.h>
#include <cstdint>

#include "common.h"

#include <ATen/core/Tensor.h>

namespace rethink {

// scale^(-beta), with the paper's beta = 0.75 and beta = 0.5 computed without pow.
template <typename acc_t>
RETHINK_HD acc_t lrn_power(acc_t scale, acc_t beta) {
  if (beta == acc_t(0.75)) {
    const acc_t r = acc_t(1) / sqrt(scale);
    return r * sqrt(r);
  }
  if (beta == acc_t(0.5)) return acc_t(1) / sqrt(scale);
  return pow(scale, -beta);
}

// The channels [lo, hi] of channel c's window (forward: the sum that makes scale[c]), clipped
// to [0, C).
RETHINK_HD void lrn_window(int64_t c, int64_t size, int64_t C, int64_t& lo, int64_t& hi) {
  lo = c - size / 2 < 0 ? 0 : c - size / 2;
  hi = c + (size - 1) / 2 > C - 1 ? C - 1 : c + (size - 1) / 2;
}

// The channels [lo, hi] whose windows hold channel j (backward: the sum that reaches dx[j]).
RETHINK_HD void lrn_window_holding(int64_t j, int64_t size, int64_t C, int64_t& lo, int64_t& hi) {
  lo = j - (size - 1) / 2 < 0 ? 0 : j - (size - 1) / 2;
  hi = j + size / 2 > C - 1 ? C - 1 : j + size / 2;
}

// The pooled output size of max_pool2d (floor mode): (n + 2 padding - kernel) / stride + 1.
RETHINK_HD int64_t pool_out_size(int64_t n, int64_t kernel, int64_t stride, int64_t padding) {
  return (n + 2 * padding - kernel) / stride + 1;
}

// Host side, defined in csrc/cpu/conv_blocks.cpp and used by both backends.
// A 4-D tensor in channels-last layout (and not also contiguous).
bool channels_last(const at::Tensor& x);
// x itself when contiguous or channels-last, else a contiguous copy.
at::Tensor standard_layout(const at::Tensor& x);
at::MemoryFormat format_of(const at::Tensor& x);
void check_lrn(int64_t size, double alpha, double beta, double k, const char* op);
void check_pool(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding, const char* op);
void check_lrn_backward(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& scale, int64_t size,
                        double alpha, double beta, double k);
void check_pool_lrn_backward(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& scale,
                             const at::Tensor& argmax, at::IntArrayRef input_size, int64_t kernel, int64_t stride,
                             int64_t padding, int64_t size, double alpha, double beta, double k);

}  // namespace rethink
