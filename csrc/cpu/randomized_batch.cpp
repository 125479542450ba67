// rethink::randomized_batch: one fused pass that turns a batch of dataset indices into a
// training batch. Per image: gather (uint8), pixel corruption (a shared or per-image
// Feistel permutation of positions or values, or Gaussian noise), rotation, crop (random,
// with or without zero padding, or centred) and horizontal flip, normalization (per-image
// whitening or per-channel), conversion to float32/float16/bfloat16 in NCHW or
// channels-last layout, and the gather of the (corrupted) label table. The arguments and
// the output-to-source mapping are shared with the CUDA twin (csrc/randomized_batch.h);
// all randomness is counter-based (csrc/randomize.h): nothing per image is stored.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "randomized_batch.h"
#include "randomize.h"

namespace rethink {

BatchArgs make_batch_args(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices,
                          at::IntArrayRef config, at::ArrayRef<double> stats, at::ScalarType dtype) {
  RETHINK_CHECK(images.dim() == 4, "randomized_batch: images must be 4-D (N, C, H, W), got ", images.dim(),
                "-D");
  RETHINK_CHECK(images.scalar_type() == at::kByte, "randomized_batch: images must be uint8, got ",
                images.scalar_type());
  RETHINK_CHECK(labels.dim() == 1 && labels.scalar_type() == at::kLong,
                "randomized_batch: labels must be a 1-D int64 tensor, got ", labels.scalar_type(), " with ",
                labels.dim(), " dims");
  RETHINK_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kLong,
                "randomized_batch: indices must be a 1-D int64 tensor, got ", indices.scalar_type(), " with ",
                indices.dim(), " dims");
  RETHINK_CHECK(images.device() == labels.device() && images.device() == indices.device(),
                "randomized_batch: images, labels and indices must be on one device, got ", images.device(),
                ", ", labels.device(), ", ", indices.device());
  RETHINK_CHECK(static_cast<int64_t>(config.size()) == kNumBatchFields, "randomized_batch: config must hold ",
                static_cast<int>(kNumBatchFields), " integers (rethink._C.batch_fields()), got ", config.size());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  RETHINK_CHECK(labels.size(0) == n, "randomized_batch: labels has ", labels.size(0), " entries for ", n,
                " images");
  RETHINK_CHECK(n < (int64_t(1) << 31), "randomized_batch: at most 2^31 - 1 images, got ", n);
  RETHINK_CHECK(c >= 1 && h >= 1 && w >= 1, "randomized_batch: empty image shape (", c, ", ", h, ", ", w, ")");
  RETHINK_CHECK(c * h * w <= (int64_t(1) << 30), "randomized_batch: images of ", c * h * w,
                " values exceed the 2^30 limit");
  const int64_t pixel_mode = config[kPixelModeField], split = config[kSplitField], epoch = config[kEpochField];
  const int64_t pad = config[kPadField], out_h = config[kOutHField], out_w = config[kOutWField];
  const int64_t normalize = config[kNormalizeField], max_rotation = config[kMaxRotationField];
  RETHINK_CHECK(pixel_mode >= kPixelNone && pixel_mode <= kGaussian, "randomized_batch: unknown pixel_mode ",
                pixel_mode, " (0..5)");
  RETHINK_CHECK(config[kCorruptionSeedField] >= 0 && config[kAugSeedField] >= 0,
                "randomized_batch: seeds must be in [0, 2^63), got corruption_seed=", config[kCorruptionSeedField],
                " and aug_seed=", config[kAugSeedField]);
  RETHINK_CHECK(epoch >= 0 && epoch <= 0xFFFFFFFFll, "randomized_batch: epoch must be in [0, 2^32), got ",
                epoch);
  RETHINK_CHECK(split >= 0 && split <= 0xFFFFFFFFll, "randomized_batch: split must be in [0, 2^32), got ",
                split);
  RETHINK_CHECK(pad >= 0 && pad <= 4096, "randomized_batch: pad must be in [0, 4096], got ", pad);
  RETHINK_CHECK(out_h >= 1 && out_h <= h + 2 * pad && out_w >= 1 && out_w <= w + 2 * pad,
                "randomized_batch: output size (", out_h, ", ", out_w, ") does not fit the image (", h, ", ", w,
                ") padded by ", pad);
  RETHINK_CHECK(normalize >= 0 && normalize <= 2, "randomized_batch: unknown normalize mode ", normalize,
                " (0 none, 1 per-image, 2 per-channel)");
  RETHINK_CHECK(max_rotation >= 0 && max_rotation <= kMaxRotation, "randomized_batch: max_rotation must be in [0, ",
                kMaxRotation, "] degrees, got ", max_rotation);
  for (int f : {kRandomCropField, kFlipField, kChannelsLastField, kCheckIndicesField})
    RETHINK_CHECK(config[f] == 0 || config[f] == 1, "randomized_batch: ", kBatchFieldNames[f],
                  " must be 0 or 1, got ", config[f]);
  const bool gauss = pixel_mode == kGaussian, per_channel = normalize == 2;
  RETHINK_CHECK(!(gauss || per_channel) || c <= kMaxChannels,
                "randomized_batch: per-channel statistics support at most ", kMaxChannels, " channels, got ", c);
  RETHINK_CHECK(static_cast<int64_t>(stats.size()) == 4 * c, "randomized_batch: stats must hold 4 * C = ", 4 * c,
                " floats (Gaussian mean, Gaussian std, normalization mean, normalization std), got ", stats.size());
  for (int64_t k = 0; k < c; ++k) {
    if (gauss) {
      RETHINK_CHECK(std::isfinite(stats[k]) && std::isfinite(stats[c + k]) && stats[c + k] >= 0,
                    "randomized_batch: gaussian needs a finite mean and a finite std >= 0 per channel, got mean ",
                    stats[k], " and std ", stats[c + k], " for channel ", k);
    }
    if (per_channel) {
      RETHINK_CHECK(std::isfinite(stats[2 * c + k]) && std::isfinite(stats[3 * c + k]) && stats[3 * c + k] > 0,
                    "randomized_batch: per-channel normalization needs a finite mean and a finite std > 0 per "
                    "channel, got mean ",
                    stats[2 * c + k], " and std ", stats[3 * c + k], " for channel ", k);
    }
  }
  RETHINK_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
                "randomized_batch: dtype must be float32, float16 or bfloat16, got ", dtype);

  BatchArgs p{};
  p.n = n;
  p.C = static_cast<int32_t>(c);
  p.H = static_cast<int32_t>(h);
  p.W = static_cast<int32_t>(w);
  p.OH = static_cast<int32_t>(out_h);
  p.OW = static_cast<int32_t>(out_w);
  p.pixel_mode = static_cast<int32_t>(pixel_mode);
  p.corruption_seed = config[kCorruptionSeedField];
  p.aug_seed = config[kAugSeedField];
  p.split = static_cast<uint32_t>(split);
  p.epoch = static_cast<uint32_t>(epoch);
  p.pad = static_cast<int32_t>(pad);
  p.random_crop = config[kRandomCropField] != 0;
  p.flip = config[kFlipField] != 0;
  p.channels_last = config[kChannelsLastField] != 0;
  p.check_indices = config[kCheckIndicesField] != 0;
  p.max_rotation = static_cast<int32_t>(max_rotation);
  p.normalize = static_cast<Normalize>(normalize);
  p.range_y = static_cast<int32_t>(h + 2 * pad - out_h);
  p.range_x = static_cast<int32_t>(w + 2 * pad - out_w);
  const bool by_value = pixel_mode == kShuffledValues || pixel_mode == kRandomValues;
  const bool on_view = pixel_mode == kShuffledPixels || pixel_mode == kShuffledValues;
  const int64_t ph = on_view ? out_h : h, pw = on_view ? out_w : w;  // shuffles permute the view
  p.perm_n = static_cast<uint32_t>(by_value ? c * ph * pw : ph * pw);
  p.shared = shared_perm(p.perm_n, p.corruption_seed);
  for (int64_t k = 0; k < c && (gauss || per_channel); ++k) {
    p.gauss_mean[k] = gauss ? stats[k] : 0.0;
    p.gauss_std[k] = gauss ? stats[c + k] : 0.0;
    p.norm_mean[k] = per_channel ? static_cast<float>(stats[2 * c + k]) : 0.f;
    p.norm_inv[k] = per_channel ? static_cast<float>(1.0 / stats[3 * c + k]) : 1.f;
  }
  for (int k = -p.max_rotation; k <= p.max_rotation; ++k) {  // the same doubles as math.cos/sin in Python
    const double rad = static_cast<double>(k) * (3.141592653589793 / 180.0);
    p.rot_cos[k + p.max_rotation] = std::cos(rad);
    p.rot_sin[k + p.max_rotation] = std::sin(rad);
  }
  // The CPU kernel always checks (an out-of-range index would read outside the images);
  // on CUDA the check costs a host sync, so it is the caller's choice.
  if ((p.check_indices || images.is_cpu()) && indices.numel() > 0) {
    const int64_t lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
    RETHINK_CHECK(lo >= 0 && hi < n, "randomized_batch: indices must be in [0, ", n, "), got values in [", lo,
                  ", ", hi, "]");
  }
  return p;
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

// The values (0..1 scale) of one output image, C x OH x OW, into vals: the mapping of
// source_pixel() (csrc/randomized_batch.h). `cv` is the corrupted image (C*H*W floats) for
// value-unit permutations and Gaussian noise, else null: values are then gathered from the
// uint8 image, through the pixel permutation `pix` when there is one. A rotated image uses a
// per-pixel source table; otherwise each output row reads a contiguous (or, flipped, reversed)
// run of a source row, and the identity view is a plain copy.
void gather_image(const BatchArgs& p, const ImageAugment& a, const uint8_t* img, const float* cv,
                  const uint32_t* pix, const float* lut, float* vals, std::vector<int64_t>& src) {
  const int64_t C = p.C, H = p.H, W = p.W, HW = H * W, OH = p.OH, OW = p.OW, OHW = OH * OW;
  if (p.max_rotation > 0 && a.rot != p.max_rotation) {
    src.resize(OHW);
    for (int32_t oy = 0, q = 0; oy < p.OH; ++oy)
      for (int32_t ox = 0; ox < p.OW; ++ox, ++q) {
        const int64_t s = source_pixel(p, a, oy, ox);
        src[q] = (s >= 0 && pix != nullptr) ? pix[s] : s;
      }
    for (int64_t c = 0; c < C; ++c) {
      float* vc = vals + c * OHW;
      if (cv != nullptr) {
        const float* cc = cv + c * HW;
        for (int64_t q = 0; q < OHW; ++q) vc[q] = src[q] >= 0 ? cc[src[q]] : 0.f;
      } else {
        const uint8_t* ic = img + c * HW;
        for (int64_t q = 0; q < OHW; ++q) vc[q] = src[q] >= 0 ? lut[ic[src[q]]] : 0.f;
      }
    }
    return;
  }
  const int64_t shift_y = a.off_y - p.pad, shift_x = a.off_x - p.pad;
  if (!a.flip && shift_y == 0 && shift_x == 0 && OH == H && OW == W) {  // the image itself
    for (int64_t c = 0; c < C; ++c) {
      float* vc = vals + c * HW;
      const uint8_t* ic = img + c * HW;
      if (cv != nullptr) {
        std::copy(cv + c * HW, cv + (c + 1) * HW, vc);
      } else if (pix != nullptr) {
        for (int64_t k = 0; k < HW; ++k) vc[k] = lut[ic[pix[k]]];
      } else {
        for (int64_t k = 0; k < HW; ++k) vc[k] = lut[ic[k]];
      }
    }
    return;
  }
  // Output columns [lo, hi) read source columns inside the image; the rest is zero padding.
  int64_t lo, hi;
  if (!a.flip) {  // x = ox + shift_x
    lo = std::max<int64_t>(0, -shift_x);
    hi = std::min<int64_t>(OW, W - shift_x);
  } else {  // x = OW - 1 - ox + shift_x
    lo = std::max<int64_t>(0, OW - W + shift_x);
    hi = std::min<int64_t>(OW, OW + shift_x);
  }
  lo = std::min(lo, OW);
  hi = std::max(hi, lo);
  const int64_t step = a.flip ? -1 : 1;
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* ic = img + c * HW;
    const float* cc = cv != nullptr ? cv + c * HW : nullptr;
    for (int64_t oy = 0; oy < OH; ++oy) {
      float* dst = vals + c * OHW + oy * OW;
      const int64_t sy = oy + shift_y;
      if (sy < 0 || sy >= H) {
        std::fill(dst, dst + OW, 0.f);
        continue;
      }
      std::fill(dst, dst + lo, 0.f);
      std::fill(dst + hi, dst + OW, 0.f);
      const int64_t base = sy * W + shift_x + (a.flip ? OW - 1 : 0);
      if (cc != nullptr) {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = cc[base + step * ox];
      } else if (pix != nullptr) {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = lut[ic[pix[base + step * ox]]];
      } else {
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = lut[ic[base + step * ox]];
      }
    }
  }
}

template <typename out_t>
void run_cpu(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices, at::Tensor& x,
             at::Tensor& y, const BatchArgs& p) {
  const int64_t C = p.C, HW = static_cast<int64_t>(p.H) * p.W, CHW = C * HW;
  const int64_t B = indices.size(0), OHW = static_cast<int64_t>(p.OH) * p.OW, numel = C * OHW;
  const uint8_t* img_base = images.data_ptr<uint8_t>();
  const int64_t* lab = labels.data_ptr<int64_t>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  out_t* out = x.data_ptr<out_t>();
  int64_t* yout = y.data_ptr<int64_t>();

  float lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = u8_to_unit(static_cast<uint8_t>(v));
  const int mode = p.pixel_mode;
  const bool shared = mode == kShuffledPixels || mode == kShuffledValues;  // act on the view
  const bool permute = mode == kRandomPixels || mode == kRandomValues;    // per image, on the image
  // Random pixels (and none, and the shuffles' view) gather straight from the uint8 image
  // through the source table; random values and Gaussian values are made whole first.
  const bool whole = mode == kRandomValues || mode == kGaussian;
  std::vector<uint32_t> shared_tab;
  if (shared) {
    shared_tab.resize(p.perm_n);
    feistel_fill(p.shared, shared_tab.data());
  }

  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> corr(whole ? CHW : 0), view(numel), shuffled(shared ? numel : 0);
    std::vector<int64_t> src;
    std::vector<uint32_t> tab(permute ? p.perm_n : 0);
    const uint32_t* ptab = tab.data();
    for (int64_t b = begin; b < end; ++b) {
      const int64_t i = idx[b];
      yout[b] = lab[i];
      const uint8_t* img = img_base + i * CHW;
      const uint32_t image = static_cast<uint32_t>(i);
      if (permute) feistel_fill(image_perm(p.perm_n, p.corruption_seed, image, p.split), tab.data());
      // 1. The corrupted image, when its values are not a pixel-unit gather of the uint8 image.
      const float* cv = nullptr;
      if (whole) {
        float* w = corr.data();
        if (mode == kGaussian) {
          for (int64_t k = 0; k < CHW; k += 2) {
            double z0, z1;
            gauss_pair(p.corruption_seed, image, static_cast<uint32_t>(k >> 1), p.split, &z0, &z1);
            const int64_t c0 = k / HW;
            w[k] = gauss_to_float(p.gauss_mean[c0], p.gauss_std[c0], z0);
            if (k + 1 < CHW) {
              const int64_t c1 = (k + 1) / HW;
              w[k + 1] = gauss_to_float(p.gauss_mean[c1], p.gauss_std[c1], z1);
            }
          }
        } else {
          for (int64_t k = 0; k < CHW; ++k) w[k] = lut[img[ptab[k]]];
        }
        cv = w;
      }
      // 2. The view: values on the 0..1 scale after rotation, crop and flip, C x OH x OW;
      // then the shuffles' one permutation of its positions or values.
      const uint32_t* pix = mode == kRandomPixels ? ptab : nullptr;
      gather_image(p, image_augment(p, image), img, cv, pix, lut, view.data(), src);
      const float* vals_ptr = view.data();
      if (shared) {
        const uint32_t* st = shared_tab.data();
        float* sh = shuffled.data();
        if (mode == kShuffledValues) {
          for (int64_t k = 0; k < numel; ++k) sh[k] = view[st[k]];
        } else {
          for (int64_t c = 0; c < C; ++c)
            for (int64_t q = 0; q < OHW; ++q) sh[c * OHW + q] = view[c * OHW + st[q]];
        }
        vals_ptr = sh;
      }
      // 3. Normalization and the cast.
      float shift_all = 0.f, scale_all = 1.f;
      if (p.normalize == Normalize::kPerImage) {
        double s = 0.0, s2 = 0.0;
        const float* v = vals_ptr;
#pragma omp simd reduction(+ : s, s2)
        for (int64_t k = 0; k < numel; ++k) {
          s += v[k];
          s2 += static_cast<double>(v[k]) * v[k];
        }
        const double mean = s / numel;
        const double var = std::max(s2 / numel - mean * mean, 0.0);
        const double adj = std::max(std::sqrt(var), 1.0 / std::sqrt(static_cast<double>(numel)));
        shift_all = static_cast<float>(mean);
        scale_all = static_cast<float>(1.0 / adj);
      }
      out_t* o = out + b * numel;
      for (int64_t c = 0; c < C; ++c) {
        const bool pc = p.normalize == Normalize::kPerChannel;
        const float sh = pc ? p.norm_mean[c] : shift_all, sc = pc ? p.norm_inv[c] : scale_all;
        const float* vc = vals_ptr + c * OHW;
        if (p.normalize == Normalize::kNone) {
          if (!p.channels_last) {
            for (int64_t q = 0; q < OHW; ++q) o[c * OHW + q] = static_cast<out_t>(vc[q]);
          } else {
            for (int64_t q = 0; q < OHW; ++q) o[q * C + c] = static_cast<out_t>(vc[q]);
          }
        } else if (!p.channels_last) {
          for (int64_t q = 0; q < OHW; ++q) o[c * OHW + q] = static_cast<out_t>((vc[q] - sh) * sc);
        } else {
          for (int64_t q = 0; q < OHW; ++q) o[q * C + c] = static_cast<out_t>((vc[q] - sh) * sc);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> randomized_batch_cpu(const at::Tensor& images_in, const at::Tensor& labels_in,
                                                        const at::Tensor& indices_in, at::IntArrayRef config,
                                                        at::ArrayRef<double> stats, at::ScalarType dtype) {
  RETHINK_CHECK(images_in.device().is_cpu(), "randomized_batch (CPU kernel): images must be on the CPU");
  const BatchArgs p = make_batch_args(images_in, labels_in, indices_in, config, stats, dtype);
  const at::Tensor images = images_in.contiguous(), labels = labels_in.contiguous(),
                   indices = indices_in.contiguous();
  const int64_t B = indices.size(0);
  at::Tensor x = at::empty({B, p.C, p.OH, p.OW}, images.options().dtype(dtype),
                           p.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  at::Tensor y = at::empty({B}, labels.options());
  if (B == 0) return {x, y};
  switch (dtype) {
    case at::kFloat:
      run_cpu<float>(images, labels, indices, x, y, p);
      break;
    case at::kHalf:
      run_cpu<at::Half>(images, labels, indices, x, y, p);
      break;
    default:
      run_cpu<at::BFloat16>(images, labels, indices, x, y, p);
  }
  return {x, y};
}

// Test hook: the Feistel permutation (shared or of one image) as a tensor, for bijection
// and uniformity checks against the Python reference.
at::Tensor feistel_permutation_cpu(int64_t n, int64_t seed, int64_t image, int64_t split, bool shared) {
  RETHINK_CHECK(n >= 1 && n <= (int64_t(1) << 30), "feistel_permutation: n must be in [1, 2^30], got ", n);
  RETHINK_CHECK(image >= 0 && image <= 0xFFFFFFFFll, "feistel_permutation: image must be in [0, 2^32), got ",
                image);
  RETHINK_CHECK(split >= 0 && split <= 0xFFFFFFFFll, "feistel_permutation: split must be in [0, 2^32), got ",
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
      "randomized_batch(Tensor images, Tensor labels, Tensor indices, int[] config, float[] stats, "
      "ScalarType dtype) -> (Tensor, Tensor)");
  m.def("feistel_permutation(int n, int seed, int image, int split, bool shared) -> Tensor");
}

TORCH_LIBRARY_IMPL(rethink, CPU, m) { m.impl("randomized_batch", &randomized_batch_cpu); }

TORCH_LIBRARY_IMPL(rethink, CompositeExplicitAutograd, m) {
  m.impl("feistel_permutation", &feistel_permutation_cpu);
}

}  // namespace rethink
