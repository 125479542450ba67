// CUDA twin of csrc/cpu/randomized_batch.cpp: the fused randomization batch, one block
// per image, one kernel launch per batch, no host synchronization (unless the caller asks
// for index checks). Same semantics as the CPU kernel: the arguments and the
// output-to-source mapping come from csrc/randomized_batch.h, all randomness from the
// counter-based generators in csrc/randomize.h.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>

#include "check.h"
#include "randomized_batch.h"
#include "randomize.h"

namespace rethink {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kCacheBytes = 40 * 1024;  // images up to this many float bytes stay in shared memory

template <typename out_t, bool kChannelsLast>
__global__ void __launch_bounds__(kThreads)
    randomized_batch_kernel(const uint8_t* __restrict__ images, const int64_t* __restrict__ labels,
                            const int64_t* __restrict__ indices, out_t* __restrict__ out,
                            int64_t* __restrict__ yout, const BatchArgs p, const bool cache_values) {
  extern __shared__ float cache[];
  __shared__ float lut[256];
  __shared__ double red_s[kThreads / 32], red_s2[kThreads / 32];
  __shared__ float stat[2];

  const int64_t b = blockIdx.x;
  const int64_t HW = static_cast<int64_t>(p.H) * p.W;
  const int64_t OHW = static_cast<int64_t>(p.OH) * p.OW, numel = p.C * OHW;
  out_t* o = out + b * numel;
  const int64_t i = indices[b];
  if (i < 0 || i >= p.n) {  // block-uniform: unchecked out-of-range index -> NaN row, label -1
    for (int64_t j = threadIdx.x; j < numel; j += blockDim.x)
      o[j] = static_cast<out_t>(__int_as_float(0x7FC00000));
    if (threadIdx.x == 0) yout[b] = -1;
    return;
  }
  for (int t = threadIdx.x; t < 256; t += blockDim.x) lut[t] = u8_to_unit(static_cast<uint8_t>(t));
  if (threadIdx.x == 0) yout[b] = labels[i];
  __syncthreads();

  const uint8_t* img = images + i * p.C * HW;
  const uint32_t image = static_cast<uint32_t>(i);
  const int mode = p.pixel_mode;
  const bool per_image_perm = mode == kRandomPixels || mode == kRandomValues;
  const FeistelPerm perm = per_image_perm ? image_perm(p.perm_n, p.corruption_seed, image, p.split) : FeistelPerm{};
  const ImageAugment a = image_augment(p, image);

  // Corrupted value (0..1 scale) of channel c at source pixel s (already permuted for
  // random pixels); 0 for s < 0.
  auto value = [&](int c, int64_t s) -> float {
    if (s < 0) return 0.f;
    switch (mode) {
      case kRandomValues:
        return lut[img[perm(static_cast<uint32_t>(c * HW + s))]];
      case kGaussian:
        return gauss_to_float(p.gauss_mean[c], p.gauss_std[c],
                              gauss_value(p.corruption_seed, image, static_cast<uint32_t>(c * HW + s), p.split));
      default:
        return lut[img[c * HW + s]];
    }
  };
  auto view_source = [&](int64_t q) -> int64_t {  // source pixel of view position q
    const int32_t oy = static_cast<int32_t>(q / p.OW), ox = static_cast<int32_t>(q % p.OW);
    return permuted_pixel(p, perm, source_pixel(p, a, oy, ox));
  };
  // Source pixel of output position q (shuffled pixels: of the view position it takes).
  auto pixel_source = [&](int64_t q) -> int64_t {
    return view_source(mode == kShuffledPixels ? shuffled_source(p, q) : q);
  };
  // Value of output channel c at output position q whose source pixel is s (shuffled
  // values: the view value the output value takes, from its own channel and position).
  auto out_value = [&](int c, int64_t q, int64_t s) -> float {
    if (mode != kShuffledValues) return value(c, s);
    const int64_t k = shuffled_source(p, c * OHW + q);
    const int64_t s2 = view_source(k % OHW);
    return s2 < 0 ? 0.f : lut[img[(k / OHW) * HW + s2]];
  };
  auto store = [&](int c, int64_t q, float v) {
    const int64_t at = kChannelsLast ? q * p.C + c : c * OHW + q;
    o[at] = static_cast<out_t>(v);
  };

  if (p.normalize != Normalize::kPerImage) {
    const bool pc = p.normalize == Normalize::kPerChannel;
    for (int64_t q = threadIdx.x; q < OHW; q += blockDim.x) {
      const int64_t s = pixel_source(q);
      for (int c = 0; c < p.C; ++c) {
        const float v = out_value(c, q, s);
        store(c, q, pc ? (v - p.norm_mean[c]) * p.norm_inv[c] : v);
      }
    }
    return;
  }

  // Per-image whitening: pass 1 (values, sums), block reduction, pass 2 (write).
  double s1 = 0.0, s2 = 0.0;
  for (int64_t q = threadIdx.x; q < OHW; q += blockDim.x) {
    const int64_t s = pixel_source(q);
    for (int c = 0; c < p.C; ++c) {
      const float v = out_value(c, q, s);
      if (cache_values) cache[c * OHW + q] = v;
      s1 += v;
      s2 += static_cast<double>(v) * v;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    s1 += __shfl_down_sync(0xFFFFFFFFu, s1, off);
    s2 += __shfl_down_sync(0xFFFFFFFFu, s2, off);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    red_s[warp] = s1;
    red_s2[warp] = s2;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double t1 = 0.0, t2 = 0.0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) {
      t1 += red_s[w];
      t2 += red_s2[w];
    }
    const double mean = t1 / numel;
    const double var = fmax(t2 / numel - mean * mean, 0.0);
    const double adj = fmax(sqrt(var), 1.0 / sqrt(static_cast<double>(numel)));
    stat[0] = static_cast<float>(mean);
    stat[1] = static_cast<float>(1.0 / adj);
  }
  __syncthreads();
  const float shift = stat[0], scale = stat[1];
  for (int64_t q = threadIdx.x; q < OHW; q += blockDim.x) {
    const int64_t s = cache_values ? 0 : pixel_source(q);
    for (int c = 0; c < p.C; ++c) {
      const float v = cache_values ? cache[c * OHW + q] : out_value(c, q, s);
      store(c, q, (v - shift) * scale);
    }
  }
}

template <typename out_t>
void launch(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices, at::Tensor& x,
            at::Tensor& y, const BatchArgs& p, bool cache_values, int64_t smem, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(indices.size(0));
  if (p.channels_last) {
    randomized_batch_kernel<out_t, true><<<blocks, kThreads, smem, stream>>>(
        images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>(), indices.data_ptr<int64_t>(),
        x.data_ptr<out_t>(), y.data_ptr<int64_t>(), p, cache_values);
  } else {
    randomized_batch_kernel<out_t, false><<<blocks, kThreads, smem, stream>>>(
        images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>(), indices.data_ptr<int64_t>(),
        x.data_ptr<out_t>(), y.data_ptr<int64_t>(), p, cache_values);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> randomized_batch_cuda(const at::Tensor& images_in, const at::Tensor& labels_in,
                                                         const at::Tensor& indices_in, at::IntArrayRef config,
                                                         at::ArrayRef<double> stats, at::ScalarType dtype) {
  RETHINK_CHECK(images_in.is_cuda(), "randomized_batch (CUDA kernel): images must be on a CUDA device");
  const c10::cuda::CUDAGuard guard(images_in.device());
  const BatchArgs p = make_batch_args(images_in, labels_in, indices_in, config, stats, dtype);
  const at::Tensor images = images_in.contiguous(), labels = labels_in.contiguous(),
                   indices = indices_in.contiguous();
  const int64_t B = indices.size(0);
  RETHINK_CHECK(B < (int64_t(1) << 31), "randomized_batch (CUDA): at most 2^31 - 1 indices per batch, got ", B);
  at::Tensor x = at::empty({B, p.C, p.OH, p.OW}, images.options().dtype(dtype),
                           p.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  at::Tensor y = at::empty({B}, labels.options());
  if (B == 0) return {x, y};
  const int64_t bytes = static_cast<int64_t>(p.C) * p.OH * p.OW * static_cast<int64_t>(sizeof(float));
  const bool cache_values = p.normalize == Normalize::kPerImage && bytes <= kCacheBytes;
  const int64_t smem = cache_values ? bytes : 0;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  switch (dtype) {
    case at::kFloat:
      launch<float>(images, labels, indices, x, y, p, cache_values, smem, stream);
      break;
    case at::kHalf:
      launch<at::Half>(images, labels, indices, x, y, p, cache_values, smem, stream);
      break;
    default:
      launch<at::BFloat16>(images, labels, indices, x, y, p, cache_values, smem, stream);
  }
  return {x, y};
}

}  // namespace

TORCH_LIBRARY_IMPL(rethink, CUDA, m) { m.impl("randomized_batch", &randomized_batch_cuda); }

}  // namespace rethink
