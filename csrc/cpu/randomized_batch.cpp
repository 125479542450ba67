// rethink::randomized_batch: one fused pass that turns a batch of dataset indices into a
// training batch. Per image: gather (uint8), pixel corruption (a shared or per-image
// Feistel permutation of positions or values, or Gaussian noise), crop (random with zero
// padding, or centered) and horizontal flip, normalization (per-image whitening or
// per-channel), conversion to float32/float16/bfloat16 in NCHW or channels-last layout,
// and the gather of the (corrupted) label table. All randomness is counter-based
// (csrc/randomize.h): nothing per image is stored.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "randomize.h"

namespace rethink {

// Validates the arguments shared by the CPU and CUDA kernels (defined here, declared in
// csrc/cuda/randomized_batch.cu). Index ranges are checked when check_indices is set.
void check_randomized_batch_args(const at::Tensor& images, const at::Tensor& labels,
                                 const at::Tensor& indices, int64_t pixel_mode,
                                 at::ArrayRef<double> gauss_mean, at::ArrayRef<double> gauss_std,
                                 int64_t epoch, int64_t split, int64_t pad, int64_t out_h, int64_t out_w,
                                 int64_t normalize, at::ArrayRef<double> norm_mean,
                                 at::ArrayRef<double> norm_std, at::ScalarType dtype, bool check_indices) {
  TORCH_CHECK(images.dim() == 4, "randomized_batch: images must be 4-D (N, C, H, W), got ", images.dim(),
              "-D");
  TORCH_CHECK(images.scalar_type() == at::kByte, "randomized_batch: images must be uint8, got ",
              images.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == at::kLong,
              "randomized_batch: labels must be a 1-D int64 tensor, got ", labels.scalar_type(), " with ",
              labels.dim(), " dims");
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kLong,
              "randomized_batch: indices must be a 1-D int64 tensor, got ", indices.scalar_type(), " with ",
              indices.dim(), " dims");
  TORCH_CHECK(images.device() == labels.device() && images.device() == indices.device(),
              "randomized_batch: images, labels and indices must be on one device, got ", images.device(),
              ", ", labels.device(), ", ", indices.device());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  TORCH_CHECK(labels.size(0) == n, "randomized_batch: labels has ", labels.size(0), " entries for ", n,
              " images");
  TORCH_CHECK(n < (int64_t(1) << 31), "randomized_batch: at most 2^31 - 1 images, got ", n);
  TORCH_CHECK(c >= 1 && h >= 1 && w >= 1, "randomized_batch: empty image shape (", c, ", ", h, ", ", w, ")");
  TORCH_CHECK(c * h * w <= (int64_t(1) << 30), "randomized_batch: images of ", c * h * w,
              " values exceed the 2^30 limit");
  TORCH_CHECK(pixel_mode >= kPixelNone && pixel_mode <= kGaussian, "randomized_batch: unknown pixel_mode ",
              pixel_mode, " (0..5)");
  if (pixel_mode == kGaussian) {
    TORCH_CHECK(static_cast<int64_t>(gauss_mean.size()) == c && static_cast<int64_t>(gauss_std.size()) == c,
                "randomized_batch: gaussian needs one mean and one std per channel (", c, "), got ",
                gauss_mean.size(), " and ", gauss_std.size());
  }
  TORCH_CHECK(epoch >= 0 && epoch <= 0xFFFFFFFFll, "randomized_batch: epoch must be in [0, 2^32), got ",
              epoch);
  TORCH_CHECK(split >= 0 && split <= 0xFFFFFFFFll, "randomized_batch: split must be in [0, 2^32), got ",
              split);
  TORCH_CHECK(pad >= 0 && pad <= 4096, "randomized_batch: pad must be in [0, 4096], got ", pad);
  TORCH_CHECK(out_h >= 1 && out_h <= h + 2 * pad && out_w >= 1 && out_w <= w + 2 * pad,
              "randomized_batch: output size (", out_h, ", ", out_w, ") does not fit the image (", h, ", ", w,
              ") padded by ", pad);
  TORCH_CHECK(normalize >= 0 && normalize <= 2, "randomized_batch: unknown normalize mode ", normalize,
              " (0 none, 1 per-image, 2 per-channel)");
  if (normalize == 2) {
    TORCH_CHECK(static_cast<int64_t>(norm_mean.size()) == c && static_cast<int64_t>(norm_std.size()) == c,
                "randomized_batch: per-channel normalization needs one mean and one std per channel (", c,
                "), got ", norm_mean.size(), " and ", norm_std.size());
    for (double s : norm_std) TORCH_CHECK(s > 0, "randomized_batch: per-channel std must be > 0, got ", s);
  }
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              "randomized_batch: dtype must be float32, float16 or bfloat16, got ", dtype);
  if (check_indices && indices.numel() > 0) {
    const int64_t lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < n, "randomized_batch: indices must be in [0, ", n, "), got values in [", lo,
                ", ", hi, "]");
  }
}

namespace {

// perm(x) for every x in [0, n) into out[0..n): one branch-free pass (the same arithmetic
// as FeistelPerm::round_trip, written so that the compiler vectorizes it; an AVX2 clone is
// picked at load time where the CPU has it), then cycle-walking for the few values that
// fell outside [0, n).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void feistel_fill(const FeistelPerm& p, uint32_t* out) {
  const uint32_t n = p.n, hb = p.half_bits, mask = p.mask;
  const uint32_t k0 = p.keys[0], k1 = p.keys[1], k2 = p.keys[2], k3 = p.keys[3];
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
    const uint32_t x = static_cast<uint32_t>(i);
    uint32_t l = x >> hb, r = x & mask, t;
    t = l ^ (hash32(r ^ k0) & mask);
    l = r;
    r = t;
    t = l ^ (hash32(r ^ k1) & mask);
    l = r;
    r = t;
    t = l ^ (hash32(r ^ k2) & mask);
    l = r;
    r = t;
    t = l ^ (hash32(r ^ k3) & mask);
    l = r;
    r = t;
    out[i] = (l << hb) | r;
  }
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
    uint32_t y = out[i];
    while (y >= n) y = p.round_trip(y);
    out[i] = y;
  }
}

template <typename out_t>
void run_cpu(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices, at::Tensor& x,
             at::Tensor& y, int64_t pixel_mode, int64_t corruption_seed, int64_t split,
             at::ArrayRef<double> gauss_mean, at::ArrayRef<double> gauss_std, int64_t aug_seed, int64_t epoch,
             int64_t pad, bool flip, bool random_crop, int64_t normalize, at::ArrayRef<double> norm_mean,
             at::ArrayRef<double> norm_std, bool channels_last) {
  const int64_t C = images.size(1), H = images.size(2), W = images.size(3);
  const int64_t B = indices.size(0), OH = x.size(2), OW = x.size(3);
  const int64_t HW = H * W, CHW = C * HW, OHW = OH * OW, numel = C * OHW;
  const uint8_t* img_base = images.data_ptr<uint8_t>();
  const int64_t* lab = labels.data_ptr<int64_t>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  out_t* out = x.data_ptr<out_t>();
  int64_t* yout = y.data_ptr<int64_t>();

  float lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = u8_to_unit(static_cast<uint8_t>(v));
  std::vector<float> ch_mean(C, 0.f), ch_inv(C, 1.f);
  if (normalize == 2) {
    for (int64_t c = 0; c < C; ++c) {
      ch_mean[c] = static_cast<float>(norm_mean[c]);
      ch_inv[c] = static_cast<float>(1.0 / norm_std[c]);
    }
  }
  const bool shared = pixel_mode == kShuffledPixels || pixel_mode == kShuffledValues;
  const bool by_value = pixel_mode == kShuffledValues || pixel_mode == kRandomValues;
  const bool permute = pixel_mode >= kShuffledPixels && pixel_mode <= kRandomValues;
  const uint32_t perm_n = static_cast<uint32_t>(by_value ? CHW : HW);
  const FeistelPerm shared_p = shared_perm(perm_n, corruption_seed);
  const uint32_t range_y = static_cast<uint32_t>(H + 2 * pad - OH),
                 range_x = static_cast<uint32_t>(W + 2 * pad - OW);

  std::vector<uint32_t> shared_tab;
  if (shared) {
    shared_tab.resize(perm_n);
    feistel_fill(shared_p, shared_tab.data());
  }

  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> corr(CHW), crop_buf(numel);
    std::vector<uint32_t> tab(permute && !shared ? perm_n : 0);
    const uint32_t* ptab = shared ? shared_tab.data() : tab.data();
    for (int64_t b = begin; b < end; ++b) {
      const int64_t i = idx[b];
      yout[b] = lab[i];
      const uint8_t* img = img_base + i * CHW;
      const uint32_t image = static_cast<uint32_t>(i);
      if (permute && !shared)
        feistel_fill(image_perm(perm_n, corruption_seed, image, static_cast<uint32_t>(split)), tab.data());
      // 1. The corrupted image on the 0..1 scale, C x H x W.
      float* cv = corr.data();
      switch (pixel_mode) {
        case kShuffledPixels:
        case kRandomPixels:
          for (int64_t c = 0; c < C; ++c) {
            const uint8_t* ic = img + c * HW;
            float* oc = cv + c * HW;
            for (int64_t p = 0; p < HW; ++p) oc[p] = lut[ic[ptab[p]]];
          }
          break;
        case kShuffledValues:
        case kRandomValues:
          for (int64_t k = 0; k < CHW; ++k) cv[k] = lut[img[ptab[k]]];
          break;
        case kGaussian:
          for (int64_t k = 0; k < CHW; k += 2) {
            double z0, z1;
            gauss_pair(corruption_seed, image, static_cast<uint32_t>(k >> 1), static_cast<uint32_t>(split),
                       &z0, &z1);
            const int64_t c0 = k / HW;
            cv[k] = gauss_to_float(gauss_mean[c0], gauss_std[c0], z0);
            if (k + 1 < CHW) {
              const int64_t c1 = (k + 1) / HW;
              cv[k + 1] = gauss_to_float(gauss_mean[c1], gauss_std[c1], z1);
            }
          }
          break;
        default:
          for (int64_t k = 0; k < CHW; ++k) cv[k] = lut[img[k]];
      }
      // 2. Crop (random with zero padding, or centered) and flip: C x OH x OW.
      AugmentDraw d =
          augment_draw(aug_seed, image, static_cast<uint32_t>(epoch), static_cast<uint32_t>(split),
                       random_crop ? range_y : 0u, random_crop ? range_x : 0u);
      if (!random_crop) {
        d.off_y = static_cast<int32_t>(range_y / 2);
        d.off_x = static_cast<int32_t>(range_x / 2);
      }
      const bool do_flip = flip && d.flip;
      const float* vals = cv;
      const bool identity = OH == H && OW == W && d.off_y == pad && d.off_x == pad && !do_flip;
      if (!identity) {
        // Output columns [lo, hi) read source columns inside the image; the rest is padding.
        const int64_t shift_x = d.off_x - pad;
        int64_t lo, hi;
        if (!do_flip) {  // sx = ox + shift_x
          lo = std::max<int64_t>(0, -shift_x);
          hi = std::min<int64_t>(OW, W - shift_x);
        } else {  // sx = OW - 1 - ox + shift_x
          lo = std::max<int64_t>(0, OW - W + shift_x);
          hi = std::min<int64_t>(OW, OW + shift_x);
        }
        lo = std::min(lo, OW);
        hi = std::max(hi, lo);
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t oy = 0; oy < OH; ++oy) {
            const int64_t sy = oy + d.off_y - pad;
            float* dst = crop_buf.data() + c * OHW + oy * OW;
            if (sy < 0 || sy >= H) {
              std::fill(dst, dst + OW, 0.f);
              continue;
            }
            const float* row = cv + c * HW + sy * W;
            std::fill(dst, dst + lo, 0.f);
            std::fill(dst + hi, dst + OW, 0.f);
            if (!do_flip) {
              std::copy(row + lo + shift_x, row + hi + shift_x, dst + lo);
            } else {
              const float* r = row + OW - 1 + shift_x;
              for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = r[-ox];
            }
          }
        }
        vals = crop_buf.data();
      }
      // Normalization.
      float shift_all = 0.f, scale_all = 1.f;
      if (normalize == 1) {
        double s = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s, s2)
        for (int64_t k = 0; k < numel; ++k) {
          s += vals[k];
          s2 += static_cast<double>(vals[k]) * vals[k];
        }
        const double mean = s / numel;
        const double var = std::max(s2 / numel - mean * mean, 0.0);
        const double adj = std::max(std::sqrt(var), 1.0 / std::sqrt(static_cast<double>(numel)));
        shift_all = static_cast<float>(mean);
        scale_all = static_cast<float>(1.0 / adj);
      }
      out_t* o = out + b * numel;
      if (!channels_last) {
        for (int64_t c = 0; c < C; ++c) {
          const float sh = normalize == 2 ? ch_mean[c] : shift_all,
                      sc = normalize == 2 ? ch_inv[c] : scale_all;
          const float* bc = vals + c * OHW;
          out_t* oc = o + c * OHW;
          if (normalize == 0) {
            for (int64_t q = 0; q < OHW; ++q) oc[q] = static_cast<out_t>(bc[q]);
          } else {
            for (int64_t q = 0; q < OHW; ++q) oc[q] = static_cast<out_t>((bc[q] - sh) * sc);
          }
        }
      } else {
        for (int64_t q = 0; q < OHW; ++q)
          for (int64_t c = 0; c < C; ++c) {
            const float v = vals[c * OHW + q];
            float r = v;
            if (normalize == 1) r = (v - shift_all) * scale_all;
            if (normalize == 2) r = (v - ch_mean[c]) * ch_inv[c];
            o[q * C + c] = static_cast<out_t>(r);
          }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> randomized_batch_cpu(
    const at::Tensor& images_in, const at::Tensor& labels_in, const at::Tensor& indices_in,
    int64_t pixel_mode, int64_t corruption_seed, int64_t split, at::ArrayRef<double> gauss_mean,
    at::ArrayRef<double> gauss_std, int64_t aug_seed, int64_t epoch, int64_t pad, bool flip, bool random_crop,
    int64_t out_h, int64_t out_w, int64_t normalize, at::ArrayRef<double> norm_mean,
    at::ArrayRef<double> norm_std, at::ScalarType dtype, bool channels_last, bool check_indices) {
  TORCH_CHECK(images_in.device().is_cpu(), "randomized_batch (CPU kernel): images must be on the CPU");
  check_randomized_batch_args(images_in, labels_in, indices_in, pixel_mode, gauss_mean, gauss_std, epoch,
                              split, pad, out_h, out_w, normalize, norm_mean, norm_std, dtype,
                              /*check_indices=*/true);
  const at::Tensor images = images_in.contiguous(), labels = labels_in.contiguous(),
                   indices = indices_in.contiguous();
  const int64_t B = indices.size(0), C = images.size(1);
  at::Tensor x = at::empty({B, C, out_h, out_w}, images.options().dtype(dtype),
                           channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  at::Tensor y = at::empty({B}, labels.options());
  if (B == 0) return {x, y};
  switch (dtype) {
    case at::kFloat:
      run_cpu<float>(images, labels, indices, x, y, pixel_mode, corruption_seed, split, gauss_mean, gauss_std,
                     aug_seed, epoch, pad, flip, random_crop, normalize, norm_mean, norm_std, channels_last);
      break;
    case at::kHalf:
      run_cpu<at::Half>(images, labels, indices, x, y, pixel_mode, corruption_seed, split, gauss_mean,
                        gauss_std, aug_seed, epoch, pad, flip, random_crop, normalize, norm_mean, norm_std,
                        channels_last);
      break;
    default:
      run_cpu<at::BFloat16>(images, labels, indices, x, y, pixel_mode, corruption_seed, split, gauss_mean,
                            gauss_std, aug_seed, epoch, pad, flip, random_crop, normalize, norm_mean,
                            norm_std, channels_last);
  }
  return {x, y};
}

// Test hook: the Feistel permutation (shared or of one image) as a tensor, for bijection
// and uniformity checks against the Python reference.
at::Tensor feistel_permutation_cpu(int64_t n, int64_t seed, int64_t image, int64_t split, bool shared) {
  TORCH_CHECK(n >= 1 && n <= (int64_t(1) << 30), "feistel_permutation: n must be in [1, 2^30], got ", n);
  TORCH_CHECK(image >= 0 && image <= 0xFFFFFFFFll, "feistel_permutation: image must be in [0, 2^32), got ",
              image);
  TORCH_CHECK(split >= 0 && split <= 0xFFFFFFFFll, "feistel_permutation: split must be in [0, 2^32), got ",
              split);
  const FeistelPerm p = shared ? shared_perm(static_cast<uint32_t>(n), seed)
                               : image_perm(static_cast<uint32_t>(n), seed, static_cast<uint32_t>(image),
                                            static_cast<uint32_t>(split));
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  std::vector<uint32_t> tab(n);
  feistel_fill(p, tab.data());
  for (int64_t k = 0; k < n; ++k) o[k] = tab[k];
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rethink, m) {
  m.def(
      "randomized_batch(Tensor images, Tensor labels, Tensor indices, int pixel_mode, int corruption_seed, "
      "int split, "
      "float[] gauss_mean, float[] gauss_std, int aug_seed, int epoch, int pad, bool flip, bool random_crop, "
      "int out_h, int out_w, int normalize, float[] norm_mean, float[] norm_std, ScalarType dtype, "
      "bool channels_last, bool check_indices) -> (Tensor, Tensor)");
  m.def("feistel_permutation(int n, int seed, int image, int split, bool shared) -> Tensor");
}

TORCH_LIBRARY_IMPL(rethink, CPU, m) { m.impl("randomized_batch", &randomized_batch_cpu); }

TORCH_LIBRARY_IMPL(rethink, CompositeExplicitAutograd, m) {
  m.impl("feistel_permutation", &feistel_permutation_cpu);
}

}  // namespace rethink
