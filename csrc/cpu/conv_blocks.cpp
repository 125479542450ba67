// The paper's conv-net blocks on CPU: cross-channel local response normalization (LRN) and
// small AlexNet's fused ReLU -> max-pool -> LRN, forward and backward. Semantics in
// csrc/conv_blocks.h, shared with the CUDA twins in csrc/cuda/conv_blocks.cu. Inputs are
// (N, C, H, W) (LRN: (N, C, *)) in contiguous or channels-last layout; outputs keep it.
// One image per task (at::parallel_for over N); within an image the channel sums run over
// whole planes, so the inner loops are unit-stride in the contiguous layout.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <limits>
#include <vector>

#include "check.h"
#include "conv_blocks.h"

namespace rethink {

// Layout helpers and argument checks shared with the CUDA kernels (declared in csrc/conv_blocks.h).
bool channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor standard_layout(const at::Tensor& x) {
  if (x.is_contiguous() || channels_last(x)) return x;
  return x.contiguous();
}

at::MemoryFormat format_of(const at::Tensor& x) {
  return channels_last(x) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

void check_lrn(int64_t size, double alpha, double beta, double k, const char* op) {
  RETHINK_CHECK(size >= 1, op, ": size must be >= 1, got ", size);
  RETHINK_CHECK(std::isfinite(alpha) && alpha >= 0, op, ": alpha must be finite and >= 0, got ", alpha);
  RETHINK_CHECK(std::isfinite(beta) && beta >= 0, op, ": beta must be finite and >= 0, got ", beta);
  RETHINK_CHECK(std::isfinite(k) && k > 0, op, ": k must be finite and > 0, got ", k);
}

void check_pool(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding, const char* op) {
  RETHINK_CHECK(x.dim() == 4, op, ": input must be (N, C, H, W), got ", x.dim(), "-D");
  RETHINK_CHECK(kernel >= 1 && stride >= 1, op, ": kernel_size and stride must be >= 1, got ", kernel, " and ",
                stride);
  RETHINK_CHECK(padding >= 0 && 2 * padding <= kernel, op, ": padding must be in [0, kernel_size / 2], got ",
                padding, " for kernel_size ", kernel);
  RETHINK_CHECK(x.size(2) + 2 * padding >= kernel && x.size(3) + 2 * padding >= kernel, op, ": input of ",
                x.size(2), "x", x.size(3), " is smaller than the ", kernel, "x", kernel, " window (padding ", padding,
                ")");
  RETHINK_CHECK(x.size(2) * x.size(3) < (int64_t(1) << 31), op, ": planes of at most 2^31 - 1 positions");
}

void check_lrn_backward(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& scale, int64_t size,
                        double alpha, double beta, double k) {
  check_lrn(size, alpha, beta, k, "lrn_backward");
  RETHINK_CHECK(grad.sizes() == input.sizes() && scale.sizes() == input.sizes(),
                "lrn_backward: grad ", grad.sizes(), ", input ", input.sizes(), " and scale ", scale.sizes(),
                " must have one shape");
  RETHINK_CHECK(grad.scalar_type() == input.scalar_type() && scale.scalar_type() == input.scalar_type(),
                "lrn_backward: grad, input and scale must have one dtype");
}

void check_pool_lrn_backward(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& scale,
                             const at::Tensor& argmax, at::IntArrayRef input_size, int64_t kernel, int64_t stride,
                             int64_t padding, int64_t size, double alpha, double beta, double k) {
  check_lrn(size, alpha, beta, k, "pool_lrn_backward");
  RETHINK_CHECK(input_size.size() == 4, "pool_lrn_backward: input_size must hold 4 sizes, got ", input_size.size());
  RETHINK_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel,
                "pool_lrn_backward: bad window (kernel_size ", kernel, ", stride ", stride, ", padding ", padding, ")");
  RETHINK_CHECK(grad.dim() == 4 && grad.sizes() == pooled.sizes() && scale.sizes() == pooled.sizes() &&
                    argmax.sizes() == pooled.sizes(),
                "pool_lrn_backward: grad ", grad.sizes(), ", pooled ", pooled.sizes(), ", scale ", scale.sizes(),
                " and argmax ", argmax.sizes(), " must have one 4-D shape");
  RETHINK_CHECK(argmax.scalar_type() == at::kInt, "pool_lrn_backward: argmax must be int32, got ",
                argmax.scalar_type());
  RETHINK_CHECK(input_size[0] == pooled.size(0) && input_size[1] == pooled.size(1) &&
                    input_size[2] + 2 * padding >= kernel && input_size[3] + 2 * padding >= kernel &&
                    pool_out_size(input_size[2], kernel, stride, padding) == pooled.size(2) &&
                    pool_out_size(input_size[3], kernel, stride, padding) == pooled.size(3),
                "pool_lrn_backward: input_size ", input_size, " does not pool to ", pooled.sizes(), " (kernel_size ",
                kernel, ", stride ", stride, ", padding ", padding, ")");
  RETHINK_CHECK(grad.scalar_type() == pooled.scalar_type() && scale.scalar_type() == pooled.scalar_type(),
                "pool_lrn_backward: grad, pooled and scale must have one dtype");
}

namespace {

// Strides of an (N, C, P) view of a tensor (N, C, *): contiguous (P stride 1) or channels-last
// (C stride 1, P stride C). Anything else is made contiguous by the caller.
struct Layout {
  int64_t n, c, p;      // sizes
  int64_t sn, sc, sp;   // strides
};

Layout layout_of(const at::Tensor& x) {
  Layout l{x.size(0), x.size(1), x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1), 0, 0, 0};
  if (channels_last(x)) {
    l.sn = l.c * l.p, l.sc = 1, l.sp = l.c;
  } else {
    l.sn = l.c * l.p, l.sc = l.p, l.sp = 1;
  }
  return l;
}

at::Tensor empty_like_layout(const at::Tensor& x, at::IntArrayRef sizes, at::ScalarType dtype) {
  auto opts = x.options().dtype(dtype);
  if (channels_last(x)) return at::empty(sizes, opts.memory_format(at::MemoryFormat::ChannelsLast));
  return at::empty(sizes, opts);
}

void check_float(const at::Tensor& x, const char* what, const char* op) {
  RETHINK_CHECK(at::isFloatingType(x.scalar_type()), op, ": ", what, " must be a floating-point tensor, got ",
                x.scalar_type());
  RETHINK_CHECK(x.device().is_cpu(), op, ": ", what, " must be on the CPU here, got ", x.device());
}

// sum[p] = sum over channels j in [lo, hi] of planes[j * P + p]: the LRN's window sum, used
// forward (over x^2) and backward (over the gradient's per-channel term).
template <typename acc_t>
void window_sum(const acc_t* planes, int64_t lo, int64_t hi, int64_t P, acc_t* sum) {
  std::fill(sum, sum + P, acc_t(0));
  for (int64_t j = lo; j <= hi; ++j) {
    const acc_t* s = planes + j * P;
    for (int64_t p = 0; p < P; ++p) sum[p] += s[p];
  }
}

// LRN of one image: x, y, scale at offset `base` with layout l. `sq` is scratch of l.c * l.p.
template <typename scalar_t, typename acc_t>
void lrn_image(const scalar_t* x, scalar_t* y, scalar_t* scale, const Layout& l, int64_t size, acc_t alpha,
               acc_t beta, acc_t k, std::vector<acc_t>& sq, std::vector<acc_t>& acc) {
  const acc_t a = alpha / static_cast<acc_t>(size);
  for (int64_t c = 0; c < l.c; ++c) {
    acc_t* s = sq.data() + c * l.p;
    const scalar_t* xc = x + c * l.sc;
    for (int64_t p = 0; p < l.p; ++p) {
      const acc_t v = static_cast<acc_t>(xc[p * l.sp]);
      s[p] = v * v;
    }
  }
  for (int64_t c = 0; c < l.c; ++c) {
    int64_t lo, hi;
    lrn_window(c, size, l.c, lo, hi);
    acc_t* sum = acc.data();
    window_sum(sq.data(), lo, hi, l.p, sum);
    const scalar_t* xc = x + c * l.sc;
    scalar_t* yc = y + c * l.sc;
    scalar_t* sc = scale + c * l.sc;
    for (int64_t p = 0; p < l.p; ++p) {
      const acc_t sv = k + a * sum[p];
      sc[p * l.sp] = static_cast<scalar_t>(sv);
      yc[p * l.sp] = static_cast<scalar_t>(static_cast<acc_t>(xc[p * l.sp]) * lrn_power(sv, beta));
    }
  }
}

// The LRN gradient of one image. `t` and `acc` are scratch of l.c * l.p and l.p.
// dx[c, p] is written at dx + c * dsc + p * dsp (the input's layout, or a dense scratch plane).
template <typename scalar_t, typename acc_t, typename out_t>
void lrn_backward_image(const scalar_t* g, const scalar_t* x, const scalar_t* scale, const Layout& l, out_t* dx,
                        int64_t dsc, int64_t dsp, int64_t size, acc_t alpha, acc_t beta, std::vector<acc_t>& t,
                        std::vector<acc_t>& acc) {
  for (int64_t c = 0; c < l.c; ++c) {
    acc_t* tc = t.data() + c * l.p;
    const int64_t o = c * l.sc;
    for (int64_t p = 0; p < l.p; ++p) {
      const acc_t sv = static_cast<acc_t>(scale[o + p * l.sp]);
      tc[p] = static_cast<acc_t>(g[o + p * l.sp]) * static_cast<acc_t>(x[o + p * l.sp]) * lrn_power(sv, beta) / sv;
    }
  }
  const acc_t coef = acc_t(2) * alpha * beta / static_cast<acc_t>(size);
  for (int64_t j = 0; j < l.c; ++j) {
    int64_t lo, hi;
    lrn_window_holding(j, size, l.c, lo, hi);
    acc_t* sum = acc.data();
    window_sum(t.data(), lo, hi, l.p, sum);
    const int64_t o = j * l.sc;
    for (int64_t p = 0; p < l.p; ++p) {
      const acc_t sv = static_cast<acc_t>(scale[o + p * l.sp]);
      const acc_t xv = static_cast<acc_t>(x[o + p * l.sp]);
      dx[j * dsc + p * dsp] =
          static_cast<out_t>(static_cast<acc_t>(g[o + p * l.sp]) * lrn_power(sv, beta) - coef * xv * sum[p]);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> lrn_cpu(const at::Tensor& input, int64_t size, double alpha, double beta,
                                           double k) {
  check_float(input, "input", "lrn");
  RETHINK_CHECK(input.dim() >= 3, "lrn: input must be (N, C, *) with at least 3 dims, got ", input.dim(), "-D");
  check_lrn(size, alpha, beta, k, "lrn");
  const at::Tensor x = standard_layout(input);
  at::Tensor y = empty_like_layout(x, x.sizes(), x.scalar_type());
  at::Tensor scale = empty_like_layout(x, x.sizes(), x.scalar_type());
  if (x.numel() == 0) return {y, scale};
  const Layout l = layout_of(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "lrn_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    scalar_t* sp = scale.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, l.n, 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> sq(l.c * l.p), acc(l.p);
      for (int64_t n = b; n < e; ++n)
        lrn_image<scalar_t, acc_t>(xp + n * l.sn, yp + n * l.sn, sp + n * l.sn, l, size, alpha, beta, k, sq, acc);
    });
  });
  return {y, scale};
}

at::Tensor lrn_backward_cpu(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& scale, int64_t size,
                            double alpha, double beta, double k) {
  check_float(grad, "grad", "lrn_backward");
  check_lrn_backward(grad, input, scale, size, alpha, beta, k);
  const at::Tensor x = standard_layout(input);
  const auto fmt = format_of(x);
  const at::Tensor g = grad.contiguous(fmt), s = scale.contiguous(fmt);
  at::Tensor dx = empty_like_layout(x, x.sizes(), x.scalar_type());
  if (x.numel() == 0) return dx;
  const Layout l = layout_of(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "lrn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* sp = s.const_data_ptr<scalar_t>();
    scalar_t* dp = dx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, l.n, 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> t(l.c * l.p), acc(l.p);
      for (int64_t n = b; n < e; ++n)
        lrn_backward_image<scalar_t, acc_t, scalar_t>(gp + n * l.sn, xp + n * l.sn, sp + n * l.sn, l, dp + n * l.sn,
                                                      l.sc, l.sp, size, alpha, beta, t, acc);
    });
  });
  return dx;
}

// Max-pool (after ReLU when `relu`) of one image into `pooled` and `argmax`.
template <typename scalar_t>
void pool_image(const scalar_t* x, scalar_t* pooled, int32_t* argmax, const Layout& in, const Layout& out,
                int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kernel, int64_t stride, int64_t padding,
                bool relu) {
  for (int64_t c = 0; c < in.c; ++c) {
    const scalar_t* xc = x + c * in.sc;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * stride - padding, 0);
      const int64_t h1 = std::min<int64_t>(oh * stride - padding + kernel, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * stride - padding, 0);
        const int64_t w1 = std::min<int64_t>(ow * stride - padding + kernel, W);
        scalar_t best = -std::numeric_limits<scalar_t>::infinity();
        int32_t where = -1;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const scalar_t v = xc[(h * W + w) * in.sp];
            if (v > best || std::isnan(static_cast<float>(v))) {
              best = v, where = static_cast<int32_t>(h * W + w);
              if (std::isnan(static_cast<float>(v))) h = h1, w = w1;  // NaN propagates, as in torch
            }
          }
        if (relu && !(best > scalar_t(0)) && !std::isnan(static_cast<float>(best))) best = scalar_t(0), where = -1;
        const int64_t o = c * out.sc + (oh * OW + ow) * out.sp;
        pooled[o] = best;
        argmax[o] = where;
      }
    }
  }
}

// The same max-pool for the contiguous layout, separably: the maximum over each window's
// columns for every input row (with its column), then over the window's rows (first row wins a
// tie, and within a row the first column: row-major order, as in pool_image). A plane holding a
// NaN goes through pool_image, which propagates it.
template <typename scalar_t>
void pool_image_contiguous(const scalar_t* x, scalar_t* pooled, int32_t* argmax, int64_t C, int64_t H, int64_t W,
                           int64_t OH, int64_t OW, int64_t kernel, int64_t stride, int64_t padding, bool relu,
                           std::vector<scalar_t>& rowmax, std::vector<int32_t>& rowarg) {
  for (int64_t c = 0; c < C; ++c) {
    const scalar_t* xc = x + c * H * W;
    bool nan = false;
    for (int64_t i = 0; i < H * W; ++i) nan |= (xc[i] != xc[i]);
    scalar_t* pc = pooled + c * OH * OW;
    int32_t* ac = argmax + c * OH * OW;
    if (nan) {
      const Layout one{1, 1, H * W, 0, 0, 1}, one_out{1, 1, OH * OW, 0, 0, 1};
      pool_image<scalar_t>(xc, pc, ac, one, one_out, H, W, OH, OW, kernel, stride, padding, relu);
      continue;
    }
    for (int64_t h = 0; h < H; ++h) {
      const scalar_t* row = xc + h * W;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * stride - padding, 0);
        const int64_t w1 = std::min<int64_t>(ow * stride - padding + kernel, W);
        scalar_t best = row[w0];
        int32_t where = static_cast<int32_t>(w0);
        for (int64_t w = w0 + 1; w < w1; ++w)
          if (row[w] > best) best = row[w], where = static_cast<int32_t>(w);
        rowmax[h * OW + ow] = best;
        rowarg[h * OW + ow] = static_cast<int32_t>(h * W) + where;
      }
    }
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * stride - padding, 0);
      const int64_t h1 = std::min<int64_t>(oh * stride - padding + kernel, H);
      scalar_t* po = pc + oh * OW;
      int32_t* ao = ac + oh * OW;
      for (int64_t ow = 0; ow < OW; ++ow) po[ow] = rowmax[h0 * OW + ow], ao[ow] = rowarg[h0 * OW + ow];
      for (int64_t h = h0 + 1; h < h1; ++h) {
        const scalar_t* rm = rowmax.data() + h * OW;
        const int32_t* ra = rowarg.data() + h * OW;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const bool more = rm[ow] > po[ow];
          po[ow] = more ? rm[ow] : po[ow];
          ao[ow] = more ? ra[ow] : ao[ow];
        }
      }
      if (relu)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const bool pos = po[ow] > scalar_t(0);
          po[ow] = pos ? po[ow] : scalar_t(0);
          ao[ow] = pos ? ao[ow] : -1;
        }
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pool_lrn_cpu(const at::Tensor& input, int64_t kernel,
                                                                        int64_t stride, int64_t padding, bool relu,
                                                                        int64_t size, double alpha, double beta,
                                                                        double k) {
  check_float(input, "input", "pool_lrn");
  check_pool(input, kernel, stride, padding, "pool_lrn");
  check_lrn(size, alpha, beta, k, "pool_lrn");
  const at::Tensor x = standard_layout(input);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = pool_out_size(H, kernel, stride, padding), OW = pool_out_size(W, kernel, stride, padding);
  const std::vector<int64_t> out_sizes{N, C, OH, OW};
  at::Tensor y = empty_like_layout(x, out_sizes, x.scalar_type());
  at::Tensor pooled = empty_like_layout(x, out_sizes, x.scalar_type());
  at::Tensor scale = empty_like_layout(x, out_sizes, x.scalar_type());
  at::Tensor argmax = empty_like_layout(x, out_sizes, at::kInt);
  if (y.numel() == 0) return {y, pooled, scale, argmax};
  const Layout in = layout_of(x), out = layout_of(y);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "pool_lrn_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    scalar_t* pp = pooled.mutable_data_ptr<scalar_t>();
    scalar_t* sp = scale.mutable_data_ptr<scalar_t>();
    int32_t* ap = argmax.mutable_data_ptr<int32_t>();
    at::parallel_for(0, N, 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> sq(out.c * out.p), acc(out.p);
      std::vector<scalar_t> rowmax(H * OW);
      std::vector<int32_t> rowarg(H * OW);
      for (int64_t n = b; n < e; ++n) {
        if (in.sp == 1)
          pool_image_contiguous<scalar_t>(xp + n * in.sn, pp + n * out.sn, ap + n * out.sn, C, H, W, OH, OW, kernel,
                                          stride, padding, relu, rowmax, rowarg);
        else
          pool_image<scalar_t>(xp + n * in.sn, pp + n * out.sn, ap + n * out.sn, in, out, H, W, OH, OW, kernel,
                               stride, padding, relu);
        lrn_image<scalar_t, acc_t>(pp + n * out.sn, yp + n * out.sn, sp + n * out.sn, out, size, alpha, beta, k, sq,
                                   acc);
      }
    });
  });
  return {y, pooled, scale, argmax};
}

at::Tensor pool_lrn_backward_cpu(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& scale,
                                 const at::Tensor& argmax, at::IntArrayRef input_size, int64_t kernel, int64_t stride,
                                 int64_t padding, int64_t size, double alpha, double beta, double k) {
  check_float(grad, "grad", "pool_lrn_backward");
  check_pool_lrn_backward(grad, pooled, scale, argmax, input_size, kernel, stride, padding, size, alpha, beta, k);
  const at::Tensor p = standard_layout(pooled);
  const auto fmt = format_of(p);
  const at::Tensor g = grad.contiguous(fmt), s = scale.contiguous(fmt), a = argmax.contiguous(fmt);
  const int64_t N = input_size[0], C = input_size[1], H = input_size[2], W = input_size[3];
  at::Tensor dx = at::empty(input_size, p.options().memory_format(fmt));
  if (dx.numel() == 0) return dx;
  if (p.numel() == 0) return dx.zero_();
  const Layout out = layout_of(p), in = layout_of(dx);
  const int64_t HW = H * W;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, p.scalar_type(), "pool_lrn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* sp = s.const_data_ptr<scalar_t>();
    const int32_t* ap = a.const_data_ptr<int32_t>();
    scalar_t* dp = dx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, N, 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> t(out.c * out.p), acc(out.p), dpool(out.c * out.p);
      for (int64_t n = b; n < e; ++n) {
        // the LRN gradient into dpool ((C, P), dense), then added at the argmax positions of
        // the image's gradient (zeroed here, while it is in cache)
        const int64_t o = n * out.sn;
        std::fill(dp + n * in.sn, dp + (n + 1) * in.sn, scalar_t(0));
        lrn_backward_image<scalar_t, acc_t, acc_t>(gp + o, pp + o, sp + o, out, dpool.data(), out.p, 1, size, alpha,
                                                   beta, t, acc);
        for (int64_t c = 0; c < C; ++c) {
          scalar_t* dc = dp + n * in.sn + c * in.sc;
          const int32_t* ac = ap + o + c * out.sc;
          const acc_t* gc = dpool.data() + c * out.p;
          for (int64_t q = 0; q < out.p; ++q) {
            const int32_t where = ac[q * out.sp];
            if (where >= 0 && where < HW) dc[where * in.sp] += static_cast<scalar_t>(gc[q]);
          }
        }
      }
    });
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rethink, m) {
  m.def("lrn(Tensor input, int size, float alpha, float beta, float k) -> (Tensor, Tensor)");
  m.def("lrn_backward(Tensor grad, Tensor input, Tensor scale, int size, float alpha, float beta, float k) -> Tensor");
  m.def(
      "pool_lrn(Tensor input, int kernel_size, int stride, int padding, bool relu, int size, float alpha, "
      "float beta, float k) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "pool_lrn_backward(Tensor grad, Tensor pooled, Tensor scale, Tensor argmax, int[] input_size, "
      "int kernel_size, int stride, int padding, int size, float alpha, float beta, float k) -> Tensor");
}

TORCH_LIBRARY_IMPL(rethink, CPU, m) {
  m.impl("lrn", &lrn_cpu);
  m.impl("lrn_backward", &lrn_backward_cpu);
  m.impl("pool_lrn", &pool_lrn_cpu);
  m.impl("pool_lrn_backward", &pool_lrn_backward_cpu);
}

}  // namespace rethink
