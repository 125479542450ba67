// CUDA twin of csrc/cpu/randomized_batch.cpp: the fused randomization batch, one block
// per image, one kernel launch per batch, no host synchronization (unless the caller asks
// for index checks). Same semantics as the CPU kernel; all randomness comes from the
// counter-based generators in csrc/randomize.h.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>

#include "randomize.h"

namespace rethink {

void check_randomized_batch_args(const at::Tensor& images, const at::Tensor& labels,
                                 const at::Tensor& indices, int64_t pixel_mode,
                                 at::ArrayRef<double> gauss_mean, at::ArrayRef<double> gauss_std,
                                 int64_t epoch, int64_t split, int64_t pad, int64_t out_h, int64_t out_w,
                                 int64_t normalize, at::ArrayRef<double> norm_mean,
                                 at::ArrayRef<double> norm_std, at::ScalarType dtype, bool check_indices);

namespace {

constexpr int kThreads = 256;
constexpr int kMaxChannels = 32;            // per-channel statistics travel in the kernel parameters
constexpr int64_t kCacheBytes = 40 * 1024;  // images up to this many float bytes stay in shared memory

struct BatchParams {
  int64_t n;
  int32_t C, H, W, OH, OW;
  int32_t pixel_mode;
  int32_t pad;
  int32_t normalize;
  int32_t range_y, range_x;
  bool flip, random_crop, cache;
  uint32_t split, epoch, perm_n;
  int64_t corruption_seed, aug_seed;
  FeistelPerm shared;
  double gauss_mean[kMaxChannels];
  double gauss_std[kMaxChannels];
  float norm_mean[kMaxChannels];
  float norm_inv[kMaxChannels];
};

template <typename out_t, bool kChannelsLast>
__global__ void __launch_bounds__(kThreads)
    randomized_batch_kernel(const uint8_t* __restrict__ images, const int64_t* __restrict__ labels,
                            const int64_t* __restrict__ indices, out_t* __restrict__ out,
                            int64_t* __restrict__ yout, const BatchParams p) {
  extern __shared__ float cache[];
  __shared__ float lut[256];
  __shared__ double red_s[kThreads / 32], red_s2[kThreads / 32];
  __shared__ float stat[2];

  const int64_t b = blockIdx.x;
  const int64_t HW = static_cast<int64_t>(p.H) * p.W, CHW = p.C * HW;
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

  const uint8_t* img = images + i * CHW;
  const uint32_t image = static_cast<uint32_t>(i);
  const int mode = p.pixel_mode;
  const bool per_image_perm = mode == kRandomPixels || mode == kRandomValues;
  const FeistelPerm perm =
      per_image_perm ? image_perm(p.perm_n, p.corruption_seed, image, p.split) : p.shared;
  AugmentDraw d = augment_draw(p.aug_seed, image, p.epoch, p.split, p.random_crop ? p.range_y : 0u,
                               p.random_crop ? p.range_x : 0u);
  if (!p.random_crop) {
    d.off_y = p.range_y / 2;
    d.off_x = p.range_x / 2;
  }
  const bool do_flip = p.flip && d.flip;

  // Source pixel (or -1: zero padding) of output position q.
  auto source = [&](int64_t q) -> int64_t {
    const int32_t oy = static_cast<int32_t>(q / p.OW), ox = static_cast<int32_t>(q % p.OW);
    const int32_t sy = oy + d.off_y - p.pad;
    const int32_t sx = (do_flip ? p.OW - 1 - ox : ox) + d.off_x - p.pad;
    return (sy >= 0 && sy < p.H && sx >= 0 && sx < p.W) ? static_cast<int64_t>(sy) * p.W + sx : -1;
  };
  // Corrupted value (0..1 scale) of channel c at source pixel s (already permuted for
  // pixel-unit permutations).
  auto value = [&](int c, int64_t s) -> float {
    if (s < 0) return 0.f;
    switch (mode) {
      case kShuffledValues:
      case kRandomValues:
        return lut[img[perm(static_cast<uint32_t>(c * HW + s))]];
      case kGaussian:
        return gauss_to_float(
            p.gauss_mean[c], p.gauss_std[c],
            gauss_value(p.corruption_seed, image, static_cast<uint32_t>(c * HW + s), p.split));
      default:
        return lut[img[c * HW + s]];
    }
  };
  auto pixel_source = [&](int64_t q) -> int64_t {
    int64_t s = source(q);
    if (s >= 0 && (mode == kShuffledPixels || mode == kRandomPixels)) s = perm(static_cast<uint32_t>(s));
    return s;
  };
  auto store = [&](int c, int64_t q, float v) {
    const int64_t at = kChannelsLast ? q * p.C + c : c * OHW + q;
    o[at] = static_cast<out_t>(v);
  };

  if (p.normalize != 1) {
    for (int64_t q = threadIdx.x; q < OHW; q += blockDim.x) {
      const int64_t s = pixel_source(q);
      for (int c = 0; c < p.C; ++c) {
        const float v = value(c, s);
        store(c, q, p.normalize == 2 ? (v - p.norm_mean[c]) * p.norm_inv[c] : v);
      }
    }
    return;
  }

  // Per-image whitening: pass 1 (values, sums), block reduction, pass 2 (write).
  double s1 = 0.0, s2 = 0.0;
  for (int64_t q = threadIdx.x; q < OHW; q += blockDim.x) {
    const int64_t s = pixel_source(q);
    for (int c = 0; c < p.C; ++c) {
      const float v = value(c, s);
      if (p.cache) cache[c * OHW + q] = v;
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
    const int64_t s = p.cache ? 0 : pixel_source(q);
    for (int c = 0; c < p.C; ++c) {
      const float v = p.cache ? cache[c * OHW + q] : value(c, s);
      store(c, q, (v - shift) * scale);
    }
  }
}

template <typename out_t>
void launch(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices, at::Tensor& x,
            at::Tensor& y, const BatchParams& p, bool channels_last, int64_t smem, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(indices.size(0));
  if (channels_last) {
    randomized_batch_kernel<out_t, true><<<blocks, kThreads, smem, stream>>>(
        images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>(), indices.data_ptr<int64_t>(),
        x.data_ptr<out_t>(), y.data_ptr<int64_t>(), p);
  } else {
    randomized_batch_kernel<out_t, false><<<blocks, kThreads, smem, stream>>>(
        images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>(), indices.data_ptr<int64_t>(),
        x.data_ptr<out_t>(), y.data_ptr<int64_t>(), p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> randomized_batch_cuda(
    const at::Tensor& images_in, const at::Tensor& labels_in, const at::Tensor& indices_in,
    int64_t pixel_mode, int64_t corruption_seed, int64_t split, at::ArrayRef<double> gauss_mean,
    at::ArrayRef<double> gauss_std, int64_t aug_seed, int64_t epoch, int64_t pad, bool flip, bool random_crop,
    int64_t out_h, int64_t out_w, int64_t normalize, at::ArrayRef<double> norm_mean,
    at::ArrayRef<double> norm_std, at::ScalarType dtype, bool channels_last, bool check_indices) {
  TORCH_CHECK(images_in.is_cuda(), "randomized_batch (CUDA kernel): images must be on a CUDA device");
  check_randomized_batch_args(images_in, labels_in, indices_in, pixel_mode, gauss_mean, gauss_std, epoch,
                              split, pad, out_h, out_w, normalize, norm_mean, norm_std, dtype, check_indices);
  const c10::cuda::CUDAGuard guard(images_in.device());
  const at::Tensor images = images_in.contiguous(), labels = labels_in.contiguous(),
                   indices = indices_in.contiguous();
  const int64_t B = indices.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  TORCH_CHECK(B < (int64_t(1) << 31), "randomized_batch (CUDA): at most 2^31 - 1 indices per batch, got ", B);
  const bool needs_stats = pixel_mode == kGaussian || normalize == 2;
  TORCH_CHECK(!needs_stats || C <= kMaxChannels,
              "randomized_batch (CUDA): per-channel statistics support at most ", kMaxChannels,
              " channels, got ", C);
  at::Tensor x = at::empty({B, C, out_h, out_w}, images.options().dtype(dtype),
                           channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  at::Tensor y = at::empty({B}, labels.options());
  if (B == 0) return {x, y};

  BatchParams p{};
  p.n = images.size(0);
  p.C = static_cast<int32_t>(C);
  p.H = static_cast<int32_t>(H);
  p.W = static_cast<int32_t>(W);
  p.OH = static_cast<int32_t>(out_h);
  p.OW = static_cast<int32_t>(out_w);
  p.pixel_mode = static_cast<int32_t>(pixel_mode);
  p.pad = static_cast<int32_t>(pad);
  p.normalize = static_cast<int32_t>(normalize);
  p.range_y = static_cast<int32_t>(H + 2 * pad - out_h);
  p.range_x = static_cast<int32_t>(W + 2 * pad - out_w);
  p.flip = flip;
  p.random_crop = random_crop;
  p.split = static_cast<uint32_t>(split);
  p.epoch = static_cast<uint32_t>(epoch);
  const bool by_value = pixel_mode == kShuffledValues || pixel_mode == kRandomValues;
  p.perm_n = static_cast<uint32_t>(by_value ? C * H * W : H * W);
  p.corruption_seed = corruption_seed;
  p.aug_seed = aug_seed;
  p.shared = shared_perm(p.perm_n, corruption_seed);
  if (pixel_mode == kGaussian) {
    for (int64_t c = 0; c < C; ++c) {
      p.gauss_mean[c] = gauss_mean[c];
      p.gauss_std[c] = gauss_std[c];
    }
  }
  if (normalize == 2) {
    for (int64_t c = 0; c < C; ++c) {
      p.norm_mean[c] = static_cast<float>(norm_mean[c]);
      p.norm_inv[c] = static_cast<float>(1.0 / norm_std[c]);
    }
  }
  const int64_t bytes = C * out_h * out_w * static_cast<int64_t>(sizeof(float));
  p.cache = normalize == 1 && bytes <= kCacheBytes;
  const int64_t smem = p.cache ? bytes : 0;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  switch (dtype) {
    case at::kFloat:
      launch<float>(images, labels, indices, x, y, p, channels_last, smem, stream);
      break;
    case at::kHalf:
      launch<at::Half>(images, labels, indices, x, y, p, channels_last, smem, stream);
      break;
    default:
      launch<at::BFloat16>(images, labels, indices, x, y, p, channels_last, smem, stream);
  }
  return {x, y};
}

}  // namespace

TORCH_LIBRARY_IMPL(rethink, CUDA, m) { m.impl("randomized_batch", &randomized_batch_cuda); }

}  // namespace rethink
