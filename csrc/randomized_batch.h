// The one description of the fused randomized_batch op, shared by its CPU and CUDA twins.
//
// The op's schema is fixed:
//   randomized_batch(Tensor images, Tensor labels, Tensor indices, int[] config,
//                    float[] stats, ScalarType dtype) -> (Tensor x, Tensor y)
// `config` holds one integer per BatchField below (its names, in order, are exported to
// Python as rethink._C.batch_fields(), so the Python wrapper builds it by name) and
// `stats` holds 4 * C floats: Gaussian mean, Gaussian std, normalization mean,
// normalization std (zeros where unused). A new option of the op touches this header
// (a field, its check in make_batch_args, its use in source_pixel or the kernels), the
// Python wrapper (rethink/loader.py) and the reference, nothing else.
//
// Per output position the image path is: corrupted image (the per-image corruptions of the
// source image: random pixels or values, Gaussian) -> rotation about the image centre
// (nearest neighbour, zero outside) -> zero padding `pad` and a crop window at (off_y,
// off_x) (random or centred) -> horizontal flip = the view -> shuffled pixels or values
// (one fixed permutation of the view's OH*OW positions or C*OH*OW values, so the network
// sees every pixel of its view, permuted) -> normalization -> cast. source_pixel() maps a
// view position to its source pixel and shuffled_source() an output position or value to
// its view position or value; both kernels use them, so the semantics match on both devices.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "randomize.h"

namespace rethink {

enum class Normalize : int32_t {
  kNone = 0,
  kPerImage = 1,    // (x - mean) / max(std, 1 / sqrt(num_values)), per image (the paper's whitening)
  kPerChannel = 2,  // (x - mean_c) / std_c with the dataset's per-channel statistics
};

// Indices into the op's `config` argument.
enum BatchField : int32_t {
  kPixelModeField = 0,  // PixelMode (randomize.h)
  kCorruptionSeedField,
  kSplitField,
  kAugSeedField,
  kEpochField,
  kPadField,          // zero padding around the image before the crop window
  kRandomCropField,   // 1: crop window drawn per (seed, epoch, image); 0: centred
  kFlipField,         // 1: horizontal flip with probability 1/2 per (seed, epoch, image)
  kMaxRotationField,  // rotation by a whole number of degrees in [-r, r] per (seed, epoch, image)
  kOutHField,
  kOutWField,
  kNormalizeField,  // Normalize
  kChannelsLastField,
  kCheckIndicesField,  // check index ranges on the device of the op (a host sync on CUDA)
  kNumBatchFields
};

// The names of the fields, in order (exported to Python).
inline const char* const kBatchFieldNames[kNumBatchFields] = {
    "pixel_mode", "corruption_seed", "split",      "aug_seed",  "epoch",         "pad",          "random_crop",
    "flip",       "max_rotation",    "out_h",      "out_w",     "normalize",     "channels_last", "check_indices"};

constexpr int kMaxChannels = 32;  // per-channel statistics travel inside BatchArgs
constexpr int kMaxRotation = 45;  // degrees

// Everything a kernel needs, validated and derived once on the host (make_batch_args).
struct BatchArgs {
  int64_t n;  // images in the split
  int32_t C, H, W, OH, OW;
  int32_t pixel_mode;
  int64_t corruption_seed, aug_seed;
  uint32_t split, epoch;
  int32_t pad;
  bool random_crop, flip, channels_last, check_indices;
  int32_t max_rotation;
  Normalize normalize;
  int32_t range_y, range_x;  // crop offsets lie in [0, range]
  uint32_t perm_n;           // size of the permuted domain: H*W / C*H*W (random pixels / values),
                             // OH*OW / C*OH*OW (shuffled pixels / values: the view)
  FeistelPerm shared;        // the shuffled-pixels permutation (of the view)
  double gauss_mean[kMaxChannels];
  double gauss_std[kMaxChannels];
  float norm_mean[kMaxChannels];
  float norm_inv[kMaxChannels];
  double rot_cos[2 * kMaxRotation + 1];  // cos/sin of -max_rotation..max_rotation degrees
  double rot_sin[2 * kMaxRotation + 1];
};

// Validates the op's arguments (TORCH_CHECK messages name the bad value) and derives the
// kernel parameters. Defined in csrc/cpu/randomized_batch.cpp; used by both twins.
BatchArgs make_batch_args(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& indices,
                          at::IntArrayRef config, at::ArrayRef<double> stats, at::ScalarType dtype);

// The augmentation of one image in one epoch: crop offsets, flip and rotation index
// (0..2*max_rotation, i.e. -max_rotation..max_rotation degrees).
struct ImageAugment {
  int32_t off_y, off_x;
  bool flip;
  int32_t rot;  // index into rot_cos / rot_sin
};

RETHINK_HD ImageAugment image_augment(const BatchArgs& p, uint32_t image) {
  const U32x4 r = philox4x32_10(image, p.epoch, kStreamAugment, p.split, seed_lo(p.aug_seed), seed_hi(p.aug_seed));
  ImageAugment a;
  if (p.random_crop) {
    a.off_y = static_cast<int32_t>(r.v[0] % (static_cast<uint32_t>(p.range_y) + 1u));
    a.off_x = static_cast<int32_t>(r.v[1] % (static_cast<uint32_t>(p.range_x) + 1u));
  } else {
    a.off_y = p.range_y / 2;
    a.off_x = p.range_x / 2;
  }
  a.flip = p.flip && (r.v[2] & 1u) != 0u;
  a.rot = p.max_rotation > 0 ? static_cast<int32_t>(r.v[3] % (2u * static_cast<uint32_t>(p.max_rotation) + 1u))
                             : 0;
  return a;
}

RETHINK_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  volatile double r = a * b;  // no fused multiply-add: host, device and numpy round alike
  return r;
#endif
}

RETHINK_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Source pixel (y * W + x in the corrupted image) of output position (oy, ox), or -1 for
// zero (padding, or outside the image after rotation).
RETHINK_HD int64_t source_pixel(const BatchArgs& p, const ImageAugment& a, int32_t oy, int32_t ox) {
  const int32_t y = oy + a.off_y - p.pad;
  const int32_t x = (a.flip ? p.OW - 1 - ox : ox) + a.off_x - p.pad;
  if (y < 0 || y >= p.H || x < 0 || x >= p.W) return -1;
  if (p.max_rotation == 0 || a.rot == p.max_rotation) return static_cast<int64_t>(y) * p.W + x;
  // Inverse rotation about the centre (cy, cx), nearest neighbour: floor(v + 0.5).
  const double cy = 0.5 * (p.H - 1), cx = 0.5 * (p.W - 1);
  const double dy = y - cy, dx = x - cx;
  const double c = p.rot_cos[a.rot], s = p.rot_sin[a.rot];
  const double sy = add_rn(cy, add_rn(mul_rn(c, dy), -mul_rn(s, dx)));
  const double sx = add_rn(cx, add_rn(mul_rn(s, dy), mul_rn(c, dx)));
  const double fy = floor(sy + 0.5), fx = floor(sx + 0.5);
  if (fy < 0.0 || fy >= p.H || fx < 0.0 || fx >= p.W) return -1;
  return static_cast<int64_t>(fy) * p.W + static_cast<int64_t>(fx);
}

// The source pixel after a per-image pixel permutation (random pixels).
RETHINK_HD int64_t permuted_pixel(const BatchArgs& p, const FeistelPerm& perm, int64_t s) {
  if (s >= 0 && p.pixel_mode == kRandomPixels) return static_cast<int64_t>(perm(static_cast<uint32_t>(s)));
  return s;
}

// Shuffled pixels / values: the view position (pixel unit: q in [0, OH*OW)) or view value
// (value unit: k = c*OH*OW + q) whose value output position or value `k` takes.
RETHINK_HD int64_t shuffled_source(const BatchArgs& p, int64_t k) {
  return static_cast<int64_t>(p.shared(static_cast<uint32_t>(k)));
}

}  // namespace rethink
