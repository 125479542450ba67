// Counter-based randomness shared by the CPU and CUDA randomized_batch kernels.
//
// Nothing here holds state: every random draw is a pure function of (key, counter), so
// the corrupted pixels of any image can be computed alone, in any order, on the host or
// on the device, with identical results. The plain-PyTorch reference
// (rethink/corruption.py) implements the same functions with numpy; the kernels are
// tested against it bit for bit.
//
// - philox4x32_10: Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers:
//   as easy as 1, 2, 3", SC'11), the Random123 variant.
// - Feistel permutation: a keyed, balanced Feistel network on b bits (b even, the
//   smallest with 2^b >= n, at least 2) with 4 rounds; cycle-walking turns it into a
//   bijection of [0, n).
// - Box-Muller on two 32-bit words, computed in double.
//
// Counter layout (ctr = {c0, c1, c2, c3}, key = the 64-bit seed split in two words):
//   per-image permutation keys: {image, 0, kStreamPerm, split}, key = corruption seed
//   shared (shuffled) permutation keys: {0, 0, kStreamShuffle, 0}, key = corruption seed
//   Gaussian values: {image, value_index / 2, kStreamGauss, split}, key = corruption seed
//   augmentation draws: {image, epoch, kStreamAugment, split}, key = loader seed
//     (words: crop offset y, crop offset x, flip bit, rotation; see randomized_batch.h)
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace rethink {

constexpr uint32_t kStreamPerm = 1;
constexpr uint32_t kStreamShuffle = 2;
constexpr uint32_t kStreamGauss = 3;
constexpr uint32_t kStreamAugment = 4;

struct U32x4 {
  uint32_t v[4];
};

RETHINK_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * static_cast<uint64_t>(b)) >> 32);
}

RETHINK_HD U32x4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += W0;
      k1 += W1;
    }
    const uint32_t hi0 = mulhi32(M0, c0), lo0 = M0 * c0;
    const uint32_t hi1 = mulhi32(M1, c2), lo1 = M1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  U32x4 out;
  out.v[0] = c0;
  out.v[1] = c1;
  out.v[2] = c2;
  out.v[3] = c3;
  return out;
}

// 32-bit integer hash (lowbias32, C. Wellons): the Feistel round function.
RETHINK_HD uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// A bijection of [0, n), n >= 1, keyed by four 32-bit round keys.
struct FeistelPerm {
  uint32_t n;
  uint32_t half_bits;
  uint32_t mask;
  uint32_t keys[4];

  // y -> one Feistel pass on 2 * half_bits bits.
  RETHINK_HD uint32_t round_trip(uint32_t x) const {
    uint32_t left = x >> half_bits, right = x & mask;
    for (int r = 0; r < 4; ++r) {
      const uint32_t next = left ^ (hash32(right ^ keys[r]) & mask);
      left = right;
      right = next;
    }
    return (left << half_bits) | right;
  }

  // The permuted position of x in [0, n): cycle-walk until the value falls in range.
  RETHINK_HD uint32_t operator()(uint32_t x) const {
    uint32_t y = round_trip(x);
    while (y >= n) y = round_trip(y);
    return y;
  }
};

// The smallest even bit count b >= 2 with 2^b >= n (n <= 2^30).
RETHINK_HD uint32_t feistel_half_bits(uint32_t n) {
  uint32_t bits = 2;
  while ((static_cast<uint64_t>(1) << bits) < n) bits += 2;
  return bits / 2;
}

RETHINK_HD FeistelPerm make_feistel(uint32_t n, U32x4 keys) {
  FeistelPerm p;
  p.n = n;
  p.half_bits = feistel_half_bits(n);
  p.mask = (1u << p.half_bits) - 1u;
  for (int r = 0; r < 4; ++r) p.keys[r] = keys.v[r];
  return p;
}

RETHINK_HD uint32_t seed_lo(int64_t seed) { return static_cast<uint32_t>(static_cast<uint64_t>(seed)); }
RETHINK_HD uint32_t seed_hi(int64_t seed) { return static_cast<uint32_t>(static_cast<uint64_t>(seed) >> 32); }

// The permutation applied to image `image` of split `split` (random pixels).
RETHINK_HD FeistelPerm image_perm(uint32_t n, int64_t seed, uint32_t image, uint32_t split) {
  return make_feistel(n, philox4x32_10(image, 0u, kStreamPerm, split, seed_lo(seed), seed_hi(seed)));
}

// The one permutation shared by every image of both splits (shuffled pixels).
RETHINK_HD FeistelPerm shared_perm(uint32_t n, int64_t seed) {
  return make_feistel(n, philox4x32_10(0u, 0u, kStreamShuffle, 0u, seed_lo(seed), seed_hi(seed)));
}

// Uniform in (0, 1) from a 32-bit word, exactly representable in double.
RETHINK_HD double u32_to_open01(uint32_t x) {
  return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10;
}

// The pair of standard normal draws for values 2 * pair and 2 * pair + 1 of image
// `image` (Box-Muller: the cosine branch for the even value, the sine branch for the odd).
RETHINK_HD void gauss_pair(int64_t seed, uint32_t image, uint32_t pair, uint32_t split, double* z_even,
                           double* z_odd) {
  const U32x4 r = philox4x32_10(image, pair, kStreamGauss, split, seed_lo(seed), seed_hi(seed));
  const double u1 = u32_to_open01(r.v[0]);
  const double u2 = u32_to_open01(r.v[1]);
  const double radius = sqrt(-2.0 * log(u1));
  const double theta = 6.283185307179586 * u2;
  *z_even = radius * cos(theta);
  *z_odd = radius * sin(theta);
}

// The standard normal draw for value `index` of image `image`.
RETHINK_HD double gauss_value(int64_t seed, uint32_t image, uint32_t index, uint32_t split) {
  double z_even, z_odd;
  gauss_pair(seed, image, index >> 1, split, &z_even, &z_odd);
  return (index & 1u) ? z_odd : z_even;
}

// Pixel corruption modes of the randomized_batch kernels.
enum PixelMode : int32_t {
  kPixelNone = 0,
  kShuffledPixels = 1,  // one permutation of the view's pixel positions (all channels move together)
  kShuffledValues = 2,  // one permutation of all C*OH*OW values of the view
  kRandomPixels = 3,    // a permutation of pixel positions per image
  kRandomValues = 4,    // a permutation of all values per image
  kGaussian = 5,        // every value replaced by mean_c + std_c * N(0, 1)
};

// uint8 pixel value -> float32 on the 0..1 scale, correctly rounded (v / 255).
RETHINK_HD float u8_to_unit(uint8_t v) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(static_cast<float>(v), 255.0f);
#else
  return static_cast<float>(v) / 255.0f;
#endif
}

// mean + std * z rounded once to float32, with no fused multiply-add (so that host,
// device and the numpy reference agree).
RETHINK_HD float gauss_to_float(double mean, double stdev, double z) {
#if defined(__CUDA_ARCH__)
  return static_cast<float>(__dadd_rn(mean, __dmul_rn(stdev, z)));
#else
  volatile double scaled = stdev * z;
  return static_cast<float>(mean + scaled);
#endif
}

}  // namespace rethink
