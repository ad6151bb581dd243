// XNOR-popcount kernels of cpnas.deploy (CPU).
//
// A binary 1x1 convolution with +-1 inputs and +-1 weights is a GEMM whose products are
// XNORs and whose sums are popcounts (XNOR-Net, Rastegari et al., ECCV 2016, Sec. 3.2):
// with the sign bits of C values packed into words (bit = 1 for -1),
//     dot(x, w) = C - 2 * popcount(bits(x) XOR bits(w)),
// padding bits being 0 in both operands so they never count. The per-output-channel
// scale alpha and the BatchNorm that follows are folded into one affine term, so the
// kernel writes out[p, o] = scale[o] * dot + bias[o] in float32 (one fused multiply-add).
//
// Storage packs 64 signs per uint64 word; the kernels read the same bytes as 32-bit
// words (little endian: word k of 64 bits = words 2k, 2k+1 of 32 bits) so that one
// AVX-512 register holds 16 popcounts of 16 output channels and converts to 16 floats
// in one instruction. Paths: AVX-512 VPOPCNTDQ, AVX2 (nibble lookup), portable popcount;
// chosen at compile time (the extension is built with -march=native on the machine
// that runs it).
//
// A binary depthwise convolution (the first half of every sep_conv / dil_conv) has
// +-1 inputs, +-1 weights and zero padding, so each output is a small integer
// d = sum over the in-image taps of sign(x) * sign(w), |d| <= 25. It is computed in int8:
// the input's signs are written once as int8 (+1 / -1, 0 for padding rows/columns and
// for padded channels), each tap adds x or -x (weight sign) lane by lane, 64 channels
// per AVX-512 register (32 per AVX2 register), and the sign bits of the 64 sums are the
// packed input word of the pointwise XNOR GEMM that follows. The depthwise scale alpha > 0
// never changes the sign of d != 0. At d = 0 (a tie: border pixels with an even number of
// taps inside the image) the simulated network's float32 conv returns the rounding residual
// of its sum of +-alpha terms, and the sign that follows takes that residual's sign (+1 for
// an exact 0). The network was trained and tested with that arithmetic, so the kernel
// reproduces it at ties: the float32 sum of the +-alpha products in the order the float conv
// adds them, tap after tap, row by row from the top-left, starting from 0 (oneDNN's depthwise
// kernels, in both memory formats and both dilated-conv forms of cpnas.fastconv; the tests
// compare against the simulated network itself). Between the two
// halves of a sep_conv the GEMM's epilogue writes the int8 signs of its folded-BN
// output straight into the next depthwise conv's zero-padded input, so no float tensor
// is materialized between two binary layers.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <cmath>
#include <algorithm>
#include <mutex>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define CPNAS_DW_AVX512 1
#endif

namespace {

std::string simd_path() {
#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
  return "avx512_vpopcntdq";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "portable";
#endif
}

std::string depthwise_path() {
#if defined(CPNAS_DW_AVX512)
  return "avx512bw_int8";
#elif defined(__AVX2__)
  return "avx2_int8";
#else
  return "portable_int8";
#endif
}

// Sign bits of one row of C floats into `words` 64-bit words: bit c is 1 iff x[c] < 0 (so +0.0 and -0.0
// both pack to +1, as cpnas.binary.sign); bits past C are 0.
inline void pack_row(const float* row, int64_t C, uint64_t* dst, int64_t words) {
#if defined(__AVX512F__)
  // 16 channels per compare, two compares per 32-bit word, each word stored once (little endian: 32-bit word j
  // is bits 32j..32j+31 of the 64-bit words). One store per word also lets the GEMM's 32-bit loads of a
  // freshly packed block be forwarded from the store buffer (two 16-bit stores under one load are not).
  uint32_t* out32 = reinterpret_cast<uint32_t*>(dst);
  const __m512 zero = _mm512_setzero_ps();
  auto half = [&](int64_t c0) -> uint32_t {
    const int64_t m = std::min<int64_t>(16, C - c0);
    if (m >= 16) return (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(row + c0), zero, _CMP_LT_OQ);
    if (m <= 0) return 0u;
    const __mmask16 lanes = (__mmask16)((1u << m) - 1);
    return (uint32_t)_mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, row + c0), zero, _CMP_LT_OQ);
  };
  for (int64_t j = 0; j < 2 * words; ++j) out32[j] = half(32 * j) | (half(32 * j + 16) << 16);
#else
  for (int64_t k = 0; k < words; ++k) {
    const int64_t c0 = k * 64;
    const int64_t n = std::min<int64_t>(64, C - c0);
    uint64_t w = 0;
#if defined(__AVX2__)
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 v = _mm256_loadu_ps(row + c0 + j);
      w |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ)) << j;
    }
    for (; j < n; ++j) w |= (uint64_t)(row[c0 + j] < 0.0f) << j;
#else
    for (int64_t j = 0; j < n; ++j) w |= (uint64_t)(row[c0 + j] < 0.0f) << j;
#endif
    dst[k] = w;
  }
#endif
}

void pack_rows(const float* x, int64_t rows, int64_t C, int64_t stride, uint64_t* out, int64_t words) {
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) pack_row(x + p * stride, C, out + p * words, words);
  });
}

#if defined(__AVX2__) && !(defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__))
inline __m256i popcount_epi32_avx2(__m256i v) {
  // popcount of every byte by two 4-bit lookups, then summed within each 32-bit lane
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  const __m256i bytes = _mm256_add_epi8(lo, hi);
  const __m256i pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}
#endif

// One block of np <= PB rows: out[p, o] = scale[o] * (C - 2 popcount(a[p] ^ w[o])) + bias[o]
//   a:  np x K32 (uint32 words of the packed activations of these rows)
//   wt: K32 x Opad (transposed packed weights, Opad a multiple of 16, zero beyond O)
constexpr int PB = 8;  // rows per block: each weight vector loaded once serves 8 rows (8 x 2 accumulators; 12 spill)

#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
// R rows x NV 16-output vectors per step, both compile-time so that the R*NV accumulators stay in registers
// (a runtime row count made the compiler keep them in memory).
template <int R, int NV>
inline void block_avx512(const uint32_t* a, int64_t K32, const uint32_t* wt, int64_t O, int64_t Opad, int64_t o,
                         const float* scale, const float* bias, int64_t C, float* out, int64_t ldo, bool add) {
  __m512i acc[R][NV];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K32; ++k) {
    __m512i w[NV];
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512((const void*)(wt + k * Opad + o + 16 * v));
    for (int i = 0; i < R; ++i) {
      const __m512i x = _mm512_set1_epi32((int32_t)a[i * K32 + k]);
      for (int v = 0; v < NV; ++v)
        acc[i][v] = _mm512_add_epi32(acc[i][v], _mm512_popcnt_epi32(_mm512_xor_si512(x, w[v])));
    }
  }
  const __m512i cvec = _mm512_set1_epi32((int32_t)C);
  for (int v = 0; v < NV; ++v) {
    const int64_t ov = o + 16 * v;
    const int64_t m = std::min<int64_t>(16, O - ov);
    if (m <= 0) break;
    const __mmask16 lanes = (__mmask16)((m == 16) ? 0xFFFF : ((1u << m) - 1));
    const __m512 s = _mm512_maskz_loadu_ps(lanes, scale + ov);
    const __m512 t = _mm512_maskz_loadu_ps(lanes, bias + ov);
    for (int i = 0; i < R; ++i) {
      const __m512i dot = _mm512_sub_epi32(cvec, _mm512_slli_epi32(acc[i][v], 1));
      float* dst = out + i * ldo + ov;
      __m512 y = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(dot), t);
      if (add) y = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, dst), y);
      _mm512_mask_storeu_ps(dst, lanes, y);
    }
  }
}

template <int R>
inline void rows_avx512(const uint32_t* a, int64_t K32, const uint32_t* wt, int64_t O, int64_t Opad,
                        const float* scale, const float* bias, int64_t C, float* out, int64_t ldo, bool add) {
  int64_t o = 0;
  for (; o + 32 <= Opad; o += 32) block_avx512<R, 2>(a, K32, wt, O, Opad, o, scale, bias, C, out, ldo, add);
  for (; o < Opad; o += 16) block_avx512<R, 1>(a, K32, wt, O, Opad, o, scale, bias, C, out, ldo, add);
}
#endif

// Rows of `out` are `ldo` floats apart (a channel slice of a wider tensor: a cell's concatenation); with `add`
// the result is added to what `out` holds (a node's sum: out + y, the simulated network's states[j] + y).
void gemm_block(const uint32_t* a, int64_t np, int64_t K32, const uint32_t* wt, int64_t O, int64_t Opad,
                const float* scale, const float* bias, int64_t C, float* out, int64_t ldo = -1, bool add = false) {
  if (ldo < 0) ldo = O;
#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
  if (np == PB) {
    rows_avx512<PB>(a, K32, wt, O, Opad, scale, bias, C, out, ldo, add);
  } else {
    for (int64_t i = 0; i < np; ++i)
      rows_avx512<1>(a + i * K32, K32, wt, O, Opad, scale, bias, C, out + i * ldo, ldo, add);
  }
#elif defined(__AVX2__)
  const __m256i cvec = _mm256_set1_epi32((int32_t)C);
  for (int64_t o = 0; o < Opad; o += 8) {
    __m256i acc[PB];
    for (int64_t i = 0; i < PB; ++i) acc[i] = _mm256_setzero_si256();
    for (int64_t k = 0; k < K32; ++k) {
      const __m256i w = _mm256_loadu_si256((const __m256i*)(wt + k * Opad + o));
      for (int64_t i = 0; i < np; ++i) {
        const __m256i x = _mm256_set1_epi32((int32_t)a[i * K32 + k]);
        acc[i] = _mm256_add_epi32(acc[i], popcount_epi32_avx2(_mm256_xor_si256(x, w)));
      }
    }
    const int64_t m = std::min<int64_t>(8, O - o);
    for (int64_t i = 0; i < np; ++i) {
      alignas(32) int32_t d[8];
      _mm256_store_si256((__m256i*)d, _mm256_sub_epi32(cvec, _mm256_slli_epi32(acc[i], 1)));
      float* dst = out + i * ldo + o;
      for (int64_t j = 0; j < m; ++j) {
        const float y = std::fma(scale[o + j], (float)d[j], bias[o + j]);
        dst[j] = add ? dst[j] + y : y;
      }
    }
  }
#else
  for (int64_t i = 0; i < np; ++i) {
    const uint32_t* ai = a + i * K32;
    float* dst = out + i * ldo;
    for (int64_t o = 0; o < O; ++o) {
      int32_t pc = 0;
      for (int64_t k = 0; k < K32; ++k) pc += __builtin_popcount(ai[k] ^ wt[k * Opad + o]);
      const float y = std::fma(scale[o], (float)(C - 2 * pc), bias[o]);
      dst[o] = add ? dst[o] + y : y;
    }
  }
#endif
}

void xnor_gemm_kernel(const uint32_t* a, int64_t rows, int64_t K32, const uint32_t* wt, int64_t O, int64_t Opad,
                      const float* scale, const float* bias, int64_t C, float* out, int64_t ldo = -1,
                      bool add = false) {
  if (ldo < 0) ldo = O;
  const int64_t blocks = (rows + PB - 1) / PB;
  at::parallel_for(0, blocks, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t p0 = blk * PB;
      gemm_block(a + p0 * K32, std::min<int64_t>(PB, rows - p0), K32, wt, O, Opad, scale, bias, C, out + p0 * ldo,
                 ldo, add);
    }
  });
}

// Pack and multiply block by block: the packed rows of a block stay in L1 between the two steps.
void xnor_conv_kernel(const float* x, int64_t rows, int64_t C, int64_t stride, const uint32_t* wt, int64_t O,
                      int64_t Opad, const float* scale, const float* bias, float* out) {
  const int64_t words = (C + 63) / 64, K32 = 2 * words;
  const int64_t blocks = (rows + PB - 1) / PB;
  at::parallel_for(0, blocks, 8, [&](int64_t b0, int64_t b1) {
    std::vector<uint64_t> packed(PB * words);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t p0 = blk * PB, np = std::min<int64_t>(PB, rows - p0);
      for (int64_t i = 0; i < np; ++i) pack_row(x + (p0 + i) * stride, C, packed.data() + i * words, words);
      gemm_block(reinterpret_cast<const uint32_t*>(packed.data()), np, K32, wt, O, Opad, scale, bias, C,
                 out + p0 * O);
    }
  });
}


// ---- binary depthwise convolution in int8 ------------------------------------------------------------------

inline int64_t round64(int64_t c) { return (c + 63) / 64 * 64; }

// dst[c] = sign(src[c]) as int8 (+1, or -1 where src < 0; +-0 -> +1) for c < C, 0 for C <= c < Cpad.
inline void signs_to_int8(const float* src, int64_t C, int8_t* dst, int64_t Cpad) {
  if (Cpad > C) std::memset(dst + C, 0, Cpad - C);
  int64_t c = 0;
#if defined(CPNAS_DW_AVX512) && defined(__AVX512VL__)
  const __m512 zero = _mm512_setzero_ps();
  const __m128i plus = _mm_set1_epi8(1), minus = _mm_set1_epi8(-1);
  for (; c + 16 <= C; c += 16) {
    const __mmask16 neg = _mm512_cmp_ps_mask(_mm512_loadu_ps(src + c), zero, _CMP_LT_OQ);
    _mm_storeu_si128((__m128i*)(dst + c), _mm_mask_blend_epi8(neg, plus, minus));
  }
  if (c < C) {
    const __mmask16 lanes = (__mmask16)((1u << (C - c)) - 1);
    const __mmask16 neg = _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, src + c), zero, _CMP_LT_OQ);
    _mm_mask_storeu_epi8(dst + c, lanes, _mm_mask_blend_epi8(neg, plus, minus));
    return;
  }
#endif
  for (; c < C; ++c) dst[c] = src[c] < 0.0f ? int8_t(-1) : int8_t(1);
}

// Zero the border of an (N, H+2p, W+2p, Cpad) int8 image (signs_to_int8 writes the rest).
void zero_border(int8_t* out, int64_t N, int64_t H, int64_t W, int64_t pad, int64_t Cpad) {
  const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < Hp; ++h) {
      int8_t* row = out + (n * Hp + h) * Wp * Cpad;
      if (h < pad || h >= H + pad) {
        std::memset(row, 0, Wp * Cpad);
        continue;
      }
      std::memset(row, 0, pad * Cpad);
      std::memset(row + (W + pad) * Cpad, 0, pad * Cpad);
    }
}

// Signs of float rows (N*H*W rows of C channels, row stride `stride`) into an int8 image (N, H+2p, W+2p, Cpad)
// whose border the caller zeroed: +1 / -1 inside, 0 in the border and in the channels past C.
void sign_pad_kernel(const float* x, int64_t stride, int64_t N, int64_t H, int64_t W, int64_t C, int64_t pad,
                     int8_t* out, int64_t Cpad) {
  const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  at::parallel_for(0, N * H, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / H, h = r % H;
      for (int64_t w = 0; w < W; ++w) {
        const float* src = x + ((n * H + h) * W + w) * stride;
        int8_t* dst = out + ((n * Hp + h + pad) * Wp + w + pad) * Cpad;
        signs_to_int8(src, C, dst, Cpad);
      }
    }
  });
}

// The sign bits (bit 1 = negative) of the float32 conv's outputs at the tie lanes `ties` of one 64-channel block:
// the sum of alpha[c] * xs * w over the taps in the float conv's order (row by row, from 0; products exact, one
// rounding per addition; padding taps add 0 and are skipped).
inline uint64_t float_tie_signs(uint64_t ties, const int8_t* corner, const int8_t* w, const float* alpha, int64_t k,
                                int64_t dil, int64_t Wp, int64_t Cpad) {
  uint64_t word = 0;
  while (ties) {
    const int c = __builtin_ctzll(ties);
    ties &= ties - 1;
    const float a = alpha[c];
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const int v = corner[(i * dil * Wp + j * dil) * Cpad + c] * w[(i * k + j) * Cpad + c];
        if (v != 0) sum += v > 0 ? a : -a;
      }
    if (sum < 0.0f) word |= uint64_t(1) << c;
  }
  return word;
}

// d[p, c] = sum over the k x k taps of xs * w (xs: int8 (N, Hp, Wp, Cpad), zero-padded; w: int8 (k*k, Cpad) of +-1,
// 0 past C). Writes the sign bits of alpha * d as the float32 conv computes it (bit 1 = negative: d < 0, or d = 0
// and a negative rounding residual, float_tie_signs; alpha: float32, one per channel < C), Cpad/64 words per
// output pixel, and, when `sums` is not null, d itself as int8 (N*Ho*Wo, Cpad).
void depthwise_kernel(const int8_t* xs, int64_t N, int64_t Hp, int64_t Wp, int64_t Cpad, const int8_t* w,
                      const float* alpha, int64_t k, int64_t stride, int64_t dil, int64_t Ho, int64_t Wo,
                      uint64_t* bits, int8_t* sums) {
  const int64_t K = Cpad / 64, taps = k * k;
  std::vector<uint64_t> live(K, 0);  // the lanes of real channels: their weights are +-1, padded ones 0
  for (int64_t kk = 0; kk < K; ++kk)
    for (int c = 0; c < 64; ++c) live[kk] |= (uint64_t)(w[64 * kk + c] != 0) << c;
#if defined(CPNAS_DW_AVX512)
  std::vector<__mmask64> neg(taps * K);
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t kk = 0; kk < K; ++kk)
      neg[t * K + kk] = _mm512_movepi8_mask(_mm512_loadu_si512((const void*)(w + t * Cpad + 64 * kk)));
#endif
  at::parallel_for(0, N * Ho, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / Ho, oh = r % Ho;
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t p = (n * Ho + oh) * Wo + ow;
        const int8_t* corner = xs + ((n * Hp + oh * stride) * Wp + ow * stride) * Cpad;
        for (int64_t kk = 0; kk < K; ++kk) {
#if defined(CPNAS_DW_AVX512)
          const __m512i zero = _mm512_setzero_si512();
          __m512i acc = zero;
          for (int64_t i = 0; i < k; ++i) {
            const int8_t* row = corner + i * dil * Wp * Cpad + 64 * kk;
            for (int64_t j = 0; j < k; ++j) {
              const __m512i v = _mm512_loadu_si512((const void*)(row + j * dil * Cpad));
              acc = _mm512_add_epi8(acc, _mm512_mask_sub_epi8(v, neg[(i * k + j) * K + kk], zero, v));
            }
          }
          uint64_t word = (uint64_t)_mm512_movepi8_mask(acc);
          const uint64_t ties = (uint64_t)_mm512_cmpeq_epi8_mask(acc, zero) & live[kk];
          if (ties) {  // float_tie_signs, 16 lanes at a time: each lane's sum in the same order, exact products
            for (int q = 0; q < 4; ++q) {
              const __mmask16 lanes = (__mmask16)(ties >> (16 * q));
              if (!lanes) continue;
              const __m512 a = _mm512_maskz_loadu_ps(lanes, alpha + 64 * kk + 16 * q);
              __m512 sum = _mm512_setzero_ps();
              for (int64_t i = 0; i < k; ++i) {
                const int8_t* row = corner + i * dil * Wp * Cpad + 64 * kk + 16 * q;
                for (int64_t j = 0; j < k; ++j) {
                  const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(row + j * dil * Cpad)));
                  const __m512i t = _mm512_mask_sub_epi32(v, (__mmask16)(neg[(i * k + j) * K + kk] >> (16 * q)),
                                                          _mm512_setzero_si512(), v);
                  sum = _mm512_add_ps(sum, _mm512_mul_ps(_mm512_cvtepi32_ps(t), a));
                }
              }
              word |= (uint64_t)(_mm512_cmp_ps_mask(sum, _mm512_setzero_ps(), _CMP_LT_OQ) & lanes) << (16 * q);
            }
          }
          bits[p * K + kk] = word;
          if (sums) _mm512_storeu_si512((void*)(sums + p * Cpad + 64 * kk), acc);
#elif defined(__AVX2__)
          __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
          for (int64_t i = 0; i < k; ++i) {
            const int8_t* row = corner + i * dil * Wp * Cpad + 64 * kk;
            const int8_t* wr = w + i * k * Cpad + 64 * kk;
            for (int64_t j = 0; j < k; ++j) {
              const int8_t* src = row + j * dil * Cpad;
              const int8_t* wt = wr + j * Cpad;
              lo = _mm256_add_epi8(lo, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)src),
                                                        _mm256_loadu_si256((const __m256i*)wt)));
              hi = _mm256_add_epi8(hi, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)(src + 32)),
                                                        _mm256_loadu_si256((const __m256i*)(wt + 32))));
            }
          }
          uint64_t word = (uint64_t)(uint32_t)_mm256_movemask_epi8(lo)
                          | ((uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32);
          const __m256i z = _mm256_setzero_si256();
          const uint64_t ties = ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, z))
                                 | ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, z)) << 32))
                                & live[kk];
          if (ties) word |= float_tie_signs(ties, corner + 64 * kk, w + 64 * kk, alpha + 64 * kk, k, dil, Wp, Cpad);
          bits[p * K + kk] = word;
          if (sums) {
            _mm256_storeu_si256((__m256i*)(sums + p * Cpad + 64 * kk), lo);
            _mm256_storeu_si256((__m256i*)(sums + p * Cpad + 64 * kk + 32), hi);
          }
#else
          int8_t acc[64] = {0};
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int8_t* src = corner + (i * dil * Wp + j * dil) * Cpad + 64 * kk;
              const int8_t* wt = w + (i * k + j) * Cpad + 64 * kk;
              for (int c = 0; c < 64; ++c) acc[c] = int8_t(acc[c] + src[c] * wt[c]);
            }
          uint64_t word = 0, ties = 0;
          for (int c = 0; c < 64; ++c) word |= (uint64_t)(acc[c] < 0) << c, ties |= (uint64_t)(acc[c] == 0) << c;
          ties &= live[kk];
          if (ties) word |= float_tie_signs(ties, corner + 64 * kk, w + 64 * kk, alpha + 64 * kk, k, dil, Wp, Cpad);
          bits[p * K + kk] = word;
          if (sums) std::memcpy(sums + p * Cpad + 64 * kk, acc, 64);
#endif
        }
      }
    }
  });
}

// The XNOR GEMM with the next depthwise conv's input as its epilogue: sign(scale * dot + bias) as int8 into the
// zero-bordered (N, Ho+2p, Wo+2p, Cpad) image, rows = N*Ho*Wo in order.
void xnor_gemm_sign_pad_kernel(const uint32_t* a, int64_t rows, int64_t K32, const uint32_t* wt, int64_t O,
                               int64_t Opad, const float* scale, const float* bias, int64_t C, int64_t Ho, int64_t Wo,
                               int64_t pad, int8_t* out, int64_t Cpad) {
  const int64_t blocks = (rows + PB - 1) / PB;
  const int64_t Hp = Ho + 2 * pad, Wp = Wo + 2 * pad;
  at::parallel_for(0, blocks, 8, [&](int64_t b0, int64_t b1) {
    std::vector<float> tmp(PB * O);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t p0 = blk * PB, np = std::min<int64_t>(PB, rows - p0);
      gemm_block(a + p0 * K32, np, K32, wt, O, Opad, scale, bias, C, tmp.data());
      for (int64_t i = 0; i < np; ++i) {
        const int64_t p = p0 + i, n = p / (Ho * Wo), hw = p % (Ho * Wo);
        int8_t* dst = out + ((n * Hp + hw / Wo + pad) * Wp + hw % Wo + pad) * Cpad;
        const float* src = tmp.data() + i * O;
        signs_to_int8(src, O, dst, Cpad);
      }
    }
  });
}

// ---- 3x3 pooling on NHWC float32, as PyTorch's CPU kernels compute it ---------------------------------------

// One 3x3 window, padding 1, stride s, over an NHWC image whose pixels are `ld` floats apart, into rows `ldo`
// apart (with `add`, added to what they hold). Max: the maximum over the in-image window (padding never wins: it
// is -inf in PyTorch), exact in any order, NaN propagating as in PyTorch. Average (count_include_pad=False): the
// window summed row by row from 0, then divided by its size, the order of PyTorch's channels_last CPU kernel, so
// the values are bit-identical to it.
template <bool Max>
void pool_kernel(const float* x, int64_t ld, int64_t N, int64_t H, int64_t W, int64_t C, int64_t s, int64_t Ho,
                 int64_t Wo, float* out, int64_t ldo, bool add) {
  at::parallel_for(0, N * Ho, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> acc(C);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / Ho, oh = r % Ho;
      const int64_t h0 = std::max<int64_t>(oh * s - 1, 0), h1 = std::min<int64_t>(oh * s + 2, H);
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * s - 1, 0), w1 = std::min<int64_t>(ow * s + 2, W);
        float* a = acc.data();
        if (Max) std::memcpy(a, x + ((n * H + h0) * W + w0) * ld, C * sizeof(float));
        else std::fill(a, a + C, 0.0f);
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const float* src = x + ((n * H + h) * W + w) * ld;
            if (Max) {
              for (int64_t c = 0; c < C; ++c) a[c] = (src[c] > a[c] || std::isnan(src[c])) ? src[c] : a[c];
            } else {
              for (int64_t c = 0; c < C; ++c) a[c] += src[c];
            }
          }
        if (!Max) {
          const float count = (float)((h1 - h0) * (w1 - w0));
          for (int64_t c = 0; c < C; ++c) a[c] /= count;
        }
        float* dst = out + ((n * Ho + oh) * Wo + ow) * ldo;
        if (add) {
          for (int64_t c = 0; c < C; ++c) dst[c] += a[c];
        } else {
          std::memcpy(dst, a, C * sizeof(float));
        }
      }
    }
  });
}

}  // namespace

// x: a 2-D float32 tensor whose rows are the C channels of one pixel (a channels_last
// activation viewed as (N*H*W, C)); returns int64 (rows, ceil(C/64)) words of sign bits.
torch::Tensor pack_signs(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "pack_signs: expected a 2-D float32 tensor");
  TORCH_CHECK(x.stride(1) == 1, "pack_signs: channels must be contiguous");
  const int64_t rows = x.size(0), C = x.size(1), words = (C + 63) / 64;
  auto out = torch::empty({rows, words}, x.options().dtype(torch::kInt64));
  pack_rows(x.data_ptr<float>(), rows, C, x.stride(0), reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>()),
            words);
  return out;
}

// a: int64 (rows, K) packed activations; wt: int32 (2K, Opad) transposed packed weights;
// returns float32 (rows, O) = scale * dot + bias.
torch::Tensor xnor_gemm(torch::Tensor a, torch::Tensor wt, torch::Tensor scale, torch::Tensor bias, int64_t C) {
  TORCH_CHECK(a.dim() == 2 && a.scalar_type() == torch::kInt64 && a.is_contiguous(), "xnor_gemm: bad activations");
  TORCH_CHECK(wt.dim() == 2 && wt.scalar_type() == torch::kInt32 && wt.is_contiguous(), "xnor_gemm: bad weights");
  TORCH_CHECK(wt.size(0) == 2 * a.size(1), "xnor_gemm: activation and weight words differ");
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32
              && scale.is_contiguous() && bias.is_contiguous() && scale.numel() == bias.numel(),
              "xnor_gemm: bad scale/bias");
  const int64_t rows = a.size(0), O = scale.numel(), Opad = wt.size(1);
  TORCH_CHECK(Opad >= O && Opad % 16 == 0, "xnor_gemm: weight columns must be padded to a multiple of 16");
  TORCH_CHECK(C >= 0 && C <= 64 * a.size(1), "xnor_gemm: C exceeds the packed words");
  auto out = torch::empty({rows, O}, scale.options());
  xnor_gemm_kernel(reinterpret_cast<const uint32_t*>(a.data_ptr<int64_t>()), rows, 2 * a.size(1),
            reinterpret_cast<const uint32_t*>(wt.data_ptr<int32_t>()), O, Opad, scale.data_ptr<float>(),
            bias.data_ptr<float>(), C, out.data_ptr<float>());
  return out;
}

// x: float32 (rows, C) with contiguous channels; the fused pack + XNOR-popcount + affine of a binary 1x1 conv.
torch::Tensor xnor_conv1x1(torch::Tensor x, torch::Tensor wt, torch::Tensor scale, torch::Tensor bias) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.stride(1) == 1,
              "xnor_conv1x1: expected float32 rows with contiguous channels");
  TORCH_CHECK(wt.dim() == 2 && wt.scalar_type() == torch::kInt32 && wt.is_contiguous(), "xnor_conv1x1: bad weights");
  const int64_t rows = x.size(0), C = x.size(1), O = scale.numel(), Opad = wt.size(1);
  TORCH_CHECK(wt.size(0) == 2 * ((C + 63) / 64), "xnor_conv1x1: weight words do not match C");
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32
              && scale.is_contiguous() && bias.is_contiguous() && bias.numel() == O, "xnor_conv1x1: bad scale/bias");
  TORCH_CHECK(Opad >= O && Opad % 16 == 0, "xnor_conv1x1: weight columns must be padded to a multiple of 16");
  auto out = torch::empty({rows, O}, scale.options());
  xnor_conv_kernel(x.data_ptr<float>(), rows, C, x.stride(0), reinterpret_cast<const uint32_t*>(wt.data_ptr<int32_t>()),
                   O, Opad, scale.data_ptr<float>(), bias.data_ptr<float>(), out.data_ptr<float>());
  return out;
}


// x: float32 (N*H*W, C) rows with contiguous channels -> int8 (N, H+2p, W+2p, round64(C)) signs, zero border.
torch::Tensor sign_pad(torch::Tensor x, int64_t N, int64_t H, int64_t W, int64_t pad) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.stride(1) == 1 && x.size(0) == N * H * W,
              "sign_pad: expected float32 (N*H*W, C) rows with contiguous channels");
  TORCH_CHECK(pad >= 0, "sign_pad: negative padding");
  const int64_t C = x.size(1), Cpad = round64(C);
  auto out = torch::empty({N, H + 2 * pad, W + 2 * pad, Cpad}, x.options().dtype(torch::kInt8));
  zero_border(out.data_ptr<int8_t>(), N, H, W, pad, Cpad);
  sign_pad_kernel(x.data_ptr<float>(), x.stride(0), N, H, W, C, pad, out.data_ptr<int8_t>(), Cpad);
  return out;
}

int64_t out_size(int64_t padded, int64_t k, int64_t stride, int64_t dil) { return (padded - dil * (k - 1) - 1) / stride + 1; }

// alpha: contiguous float32, one per channel at least up to the last channel whose weights are +-1.
void check_alpha(const torch::Tensor& alpha, const torch::Tensor& w, const char* name) {
  TORCH_CHECK(alpha.dim() == 1 && alpha.scalar_type() == torch::kFloat32 && alpha.is_contiguous(), name,
              ": expected float32 alpha, one per channel");
  const int8_t* w0 = w.data_ptr<int8_t>();
  for (int64_t c = alpha.numel(); c < w.size(1); ++c)
    TORCH_CHECK(w0[c] == 0, name, ": alpha has fewer entries than the weights have channels");
}

// xs: int8 (N, Hp, Wp, Cpad) from sign_pad; w: int8 (k*k, Cpad); alpha: float32 per channel (its scale, which
// resolves ties as the float conv does). Returns the sign bits (N*Ho*Wo, Cpad/64) int64 and, with `sums`, the
// integers themselves, int8 (N*Ho*Wo, Cpad) (else an empty tensor).
std::vector<torch::Tensor> binary_depthwise(torch::Tensor xs, torch::Tensor w, torch::Tensor alpha, int64_t k,
                                            int64_t stride, int64_t dil, bool with_sums) {
  TORCH_CHECK(xs.dim() == 4 && xs.scalar_type() == torch::kInt8 && xs.is_contiguous() && xs.size(3) % 64 == 0,
              "binary_depthwise: expected a contiguous int8 (N, Hp, Wp, Cpad) image, Cpad a multiple of 64");
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == torch::kInt8 && w.is_contiguous() && w.size(0) == k * k
              && w.size(1) == xs.size(3), "binary_depthwise: expected int8 weights (k*k, Cpad)");
  TORCH_CHECK(k >= 1 && stride >= 1 && dil >= 1 && k * k <= 127, "binary_depthwise: bad k / stride / dilation");
  check_alpha(alpha, w, "binary_depthwise");
  const int64_t N = xs.size(0), Hp = xs.size(1), Wp = xs.size(2), Cpad = xs.size(3);
  const int64_t Ho = out_size(Hp, k, stride, dil), Wo = out_size(Wp, k, stride, dil);
  TORCH_CHECK(Ho > 0 && Wo > 0, "binary_depthwise: the kernel does not fit the padded input");
  auto bits = torch::empty({N * Ho * Wo, Cpad / 64}, xs.options().dtype(torch::kInt64));
  auto sums = with_sums ? torch::empty({N * Ho * Wo, Cpad}, xs.options()) : torch::empty({0}, xs.options());
  depthwise_kernel(xs.data_ptr<int8_t>(), N, Hp, Wp, Cpad, w.data_ptr<int8_t>(), alpha.data_ptr<float>(), k, stride,
                   dil, Ho, Wo,
                   reinterpret_cast<uint64_t*>(bits.data_ptr<int64_t>()), with_sums ? sums.data_ptr<int8_t>() : nullptr);
  return {bits, sums};
}

void check_gemm_args(const torch::Tensor& a, const torch::Tensor& wt, const torch::Tensor& scale,
                     const torch::Tensor& bias, int64_t C, const char* name) {
  TORCH_CHECK(a.dim() == 2 && a.scalar_type() == torch::kInt64 && a.is_contiguous(), name, ": bad activations");
  TORCH_CHECK(wt.dim() == 2 && wt.scalar_type() == torch::kInt32 && wt.is_contiguous(), name, ": bad weights");
  TORCH_CHECK(wt.size(0) == 2 * a.size(1), name, ": activation and weight words differ");
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32
              && scale.is_contiguous() && bias.is_contiguous() && scale.numel() == bias.numel(), name,
              ": bad scale/bias");
  TORCH_CHECK(wt.size(1) >= scale.numel() && wt.size(1) % 16 == 0, name,
              ": weight columns must be padded to a multiple of 16");
  TORCH_CHECK(C >= 0 && C <= 64 * a.size(1), name, ": C exceeds the packed words");
}

// The XNOR GEMM whose epilogue writes int8 sign(scale * dot + bias) into a zero-bordered (N, Ho+2p, Wo+2p, Cpad).
torch::Tensor xnor_gemm_sign_pad(torch::Tensor a, torch::Tensor wt, torch::Tensor scale, torch::Tensor bias, int64_t C,
                                 int64_t N, int64_t Ho, int64_t Wo, int64_t pad) {
  check_gemm_args(a, wt, scale, bias, C, "xnor_gemm_sign_pad");
  TORCH_CHECK(a.size(0) == N * Ho * Wo && pad >= 0, "xnor_gemm_sign_pad: rows do not match N*Ho*Wo");
  const int64_t O = scale.numel(), Cpad = round64(O);
  auto out = torch::empty({N, Ho + 2 * pad, Wo + 2 * pad, Cpad}, a.options().dtype(torch::kInt8));
  zero_border(out.data_ptr<int8_t>(), N, Ho, Wo, pad, Cpad);
  xnor_gemm_sign_pad_kernel(reinterpret_cast<const uint32_t*>(a.data_ptr<int64_t>()), a.size(0), 2 * a.size(1),
                            reinterpret_cast<const uint32_t*>(wt.data_ptr<int32_t>()), O, wt.size(1),
                            scale.data_ptr<float>(), bias.data_ptr<float>(), C, Ho, Wo, pad, out.data_ptr<int8_t>(),
                            Cpad);
  return out;
}

// A chain of binary (depthwise k x k -> pointwise 1x1 + folded BN) stages: one for dil_conv, two for sep_conv.
// x: float32 (N*H*W, C) rows; per stage, tensors {dw weights int8 (k*k, Cpad), dw alpha, wt, scale, bias} and ints
// {k, stride, pad, dilation}. Returns float32 (N*Ho*Wo, O) of the last stage and its Ho, Wo.
std::tuple<torch::Tensor, int64_t, int64_t> binary_chain(torch::Tensor x, int64_t N, int64_t H, int64_t W,
                                                         std::vector<torch::Tensor> tensors, std::vector<int64_t> ints) {
  const int64_t stages = (int64_t)tensors.size() / 5;
  TORCH_CHECK(stages >= 1 && (int64_t)tensors.size() == 5 * stages && (int64_t)ints.size() == 4 * stages,
              "binary_chain: 5 tensors and 4 integers per stage");
  torch::Tensor xs = sign_pad(x, N, H, W, ints[2]);
  int64_t h = H, w = W, C = x.size(1);
  for (int64_t s = 0; s < stages; ++s) {
    const int64_t k = ints[4 * s], stride = ints[4 * s + 1], dil = ints[4 * s + 3];
    const torch::Tensor &dw = tensors[5 * s], &alpha = tensors[5 * s + 1], &wt = tensors[5 * s + 2],
                        &scale = tensors[5 * s + 3], &bias = tensors[5 * s + 4];
    auto bits = binary_depthwise(xs, dw, alpha, k, stride, dil, false)[0];
    h = out_size(xs.size(1), k, stride, dil);
    w = out_size(xs.size(2), k, stride, dil);
    if (s + 1 < stages) {
      xs = xnor_gemm_sign_pad(bits, wt, scale, bias, C, N, h, w, ints[4 * (s + 1) + 2]);
    } else {
      check_gemm_args(bits, wt, scale, bias, C, "binary_chain");
      auto out = torch::empty({bits.size(0), scale.numel()}, scale.options());
      xnor_gemm_kernel(reinterpret_cast<const uint32_t*>(bits.data_ptr<int64_t>()), bits.size(0), 2 * bits.size(1),
                       reinterpret_cast<const uint32_t*>(wt.data_ptr<int32_t>()), scale.numel(), wt.size(1),
                       scale.data_ptr<float>(), bias.data_ptr<float>(), C, out.data_ptr<float>());
      return {out, h, w};
    }
    C = scale.numel();
  }
  TORCH_CHECK(false, "binary_chain: unreachable");
}

// 3x3 pooling, padding 1, of a channels_last float32 tensor (N, C, H, W); `kind` 0 = max, 1 = average
// (count_include_pad=False). Returns a channels_last tensor.
torch::Tensor pool3x3(torch::Tensor x, int64_t stride, int64_t kind) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32 && x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "pool3x3: expected a channels_last float32 (N, C, H, W) tensor");
  TORCH_CHECK(stride == 1 || stride == 2, "pool3x3: stride 1 or 2");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Ho = (H + 2 - 3) / stride + 1, Wo = (W + 2 - 3) / stride + 1;
  auto out = torch::empty({N, C, Ho, Wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  (kind == 0 ? pool_kernel<true> : pool_kernel<false>)(x.data_ptr<float>(), C, N, H, W, C, stride, Ho, Wo,
                                                      out.data_ptr<float>(), C, false);
  return out;
}

// ---- a whole cell in one call ------------------------------------------------------------------------------
//
// A cell of the evaluation network (DARTS, Liu et al. 2019; CP-NAS Sec. 2.2) as a program of packed ops: the two
// preprocessing convs write states 0 and 1, every edge op reads a state and writes (or adds to) a node, and the
// output is the concatenation of the concat nodes. Each concat node is written in place as its channel slice of
// the output (rows `ldo` apart), so the concatenation costs nothing, and a node's sum is formed in the epilogue of
// the op that writes its second term (out + y, in the simulated network's order). Scratch memory (preprocessed
// states, the nodes outside the concatenation, the int8 depthwise images and the sign bits) is sized at the first
// call for a given input shape and reused after; only the output tensor is new at every call.
//
// Instructions (int64): [kind, src, dst, add, ...]:
//   CONV  [0, src, dst, add, stride, offset, ch_offset, t_wt, t_scale, t_bias]   binary 1x1 + folded BN; the input
//         pixel of output (oh, ow) is (oh*stride+offset, ow*stride+offset), a zero row (all signs +1) outside
//         the image (a factorized reduce is two of these, offsets 0 and 1, into the two channel halves)
//   CHAIN [1, src, dst, add, stages, (k, stride, pad, dil, t_dw, t_alpha, t_wt, t_scale, t_bias) x stages]
//   POOL  [2, src, dst, add, max?, stride]
//   COPY  [3, src, dst, add]                                                      skip_connect
constexpr int64_t CHAIN_STAGE = 9;  // integers per CHAIN stage

struct State {
  float* data = nullptr;
  int64_t H = 0, W = 0, C = 0, ld = 0;
  const float* pixel(int64_t n, int64_t h, int64_t w) const { return data + ((n * H + h) * W + w) * ld; }
};

class CellPlan {
 public:
  CellPlan(std::vector<torch::Tensor> tensors, std::vector<int64_t> program, int64_t states, int64_t channels,
           std::vector<int64_t> concat)
      : tensors_(std::move(tensors)), program_(std::move(program)), states_(states), C_(channels),
        concat_(std::move(concat)) {
    for (auto& t : tensors_) TORCH_CHECK(t.is_contiguous(), "CellPlan: tensors must be contiguous");
    TORCH_CHECK(states_ >= 2 && !concat_.empty(), "CellPlan: bad states / concat");
    for (int64_t j : concat_) TORCH_CHECK(j >= 2 && j < states_, "CellPlan: concat holds a node outside 2..states-1");
  }

  // s0, s1: channels_last float32 (N, C, H, W). Returns the cell's output, channels_last (N, |concat|*C, Ho, Wo).
  torch::Tensor forward(const torch::Tensor& s0, const torch::Tensor& s1) {
    for (const auto* s : {&s0, &s1})
      TORCH_CHECK(s->dim() == 4 && s->scalar_type() == torch::kFloat32
                  && s->is_contiguous(at::MemoryFormat::ChannelsLast), "CellPlan: inputs must be channels_last float32");
    TORCH_CHECK(s0.size(0) == s1.size(0), "CellPlan: batch sizes differ");
    std::lock_guard<std::mutex> guard(mutex_);
    const std::vector<int64_t> key = {s0.size(0), s0.size(1), s0.size(2), s0.size(3), s1.size(1), s1.size(2),
                                      s1.size(3)};
    if (key != key_) plan(key);
    const int64_t N = key[0];
    auto out = torch::empty({N, (int64_t)concat_.size() * C_, Ho_, Wo_},
                            s0.options().memory_format(at::MemoryFormat::ChannelsLast));
    for (size_t k = 0; k < concat_.size(); ++k) st_[concat_[k]].data = out.data_ptr<float>() + k * C_;
    in_[0] = {s0.data_ptr<float>(), s0.size(2), s0.size(3), s0.size(1), s0.size(1)};
    in_[1] = {s1.data_ptr<float>(), s1.size(2), s1.size(3), s1.size(1), s1.size(1)};
    run(N);
    return out;
  }

 private:
  const float* f(int64_t i) const { return tensors_[i].data_ptr<float>(); }
  const uint32_t* u(int64_t i) const { return reinterpret_cast<const uint32_t*>(tensors_[i].data_ptr<int32_t>()); }

  // Shapes of every state and the scratch sizes, walking the program once; buffers allocated here.
  void plan(const std::vector<int64_t>& key) {
    const int64_t N = key[0];
    st_.assign(states_, State());
    std::vector<State> in = {{nullptr, key[2], key[3], key[1], key[1]}, {nullptr, key[5], key[6], key[4], key[4]}};
    int64_t img = 0, bits = 0, own = 0;
    std::vector<int64_t> offsets(states_, -1);
    for (size_t pc = 0; pc < program_.size();) {
      const int64_t* ins = program_.data() + pc;
      const int64_t kind = ins[0], src = ins[1], dst = ins[2];
      const bool pre = kind == 0 && src < 0;  // preprocessing reads the cell inputs (src -1 / -2)
      const State& x = pre ? in[-src - 1] : st_[src];
      TORCH_CHECK(pre || (src < states_ && x.H > 0), "CellPlan: an op reads state ", src, " before it is written");
      int64_t H = x.H, W = x.W, len = 4;
      if (kind == 0) {
        H = (x.H - 1) / ins[4] + 1, W = (x.W - 1) / ins[4] + 1, len = 10;
      } else if (kind == 1) {
        int64_t C = x.C;
        len = 5 + CHAIN_STAGE * ins[4];
        for (int64_t sg = 0; sg < ins[4]; ++sg) {
          const int64_t* g = ins + 5 + CHAIN_STAGE * sg;
          TORCH_CHECK(tensors_[g[5]].scalar_type() == torch::kFloat32 && tensors_[g[5]].dim() == 1
                      && tensors_[g[5]].numel() >= C && tensors_[g[4]].size(1) == round64(C),
                      "CellPlan: a chain stage's depthwise weights or alpha do not fit its input channels");
          const int64_t Hp = H + 2 * g[2], Wp = W + 2 * g[2];
          img = std::max(img, N * Hp * Wp * round64(C));
          H = out_size(Hp, g[0], g[1], g[3]), W = out_size(Wp, g[0], g[1], g[3]);
          bits = std::max(bits, N * H * W * round64(C) / 64);
          C = tensors_[g[7]].numel();
        }
      } else if (kind == 2) {
        H = (x.H - 1) / ins[5] + 1, W = (x.W - 1) / ins[5] + 1, len = 6;
      }
      State& d = st_[dst];
      if (d.H == 0) {
        d.H = H, d.W = W, d.C = C_;
        const bool in_concat = std::find(concat_.begin(), concat_.end(), dst) != concat_.end();
        d.ld = in_concat ? (int64_t)concat_.size() * C_ : C_;
        if (!in_concat) offsets[dst] = own, own += N * H * W * C_;
      }
      TORCH_CHECK(d.H == H && d.W == W, "CellPlan: the ops into node ", dst, " disagree on its size");
      pc += len;
    }
    for (int64_t j : concat_) {
      TORCH_CHECK(st_[j].H > 0, "CellPlan: concat node ", j, " is never written");
      TORCH_CHECK(st_[j].H == st_[concat_[0]].H && st_[j].W == st_[concat_[0]].W, "CellPlan: concat sizes differ");
    }
    Ho_ = st_[concat_[0]].H, Wo_ = st_[concat_[0]].W;
    states_buf_.assign(own, 0.0f);
    for (int64_t j = 0; j < states_; ++j)
      if (offsets[j] >= 0) st_[j].data = states_buf_.data() + offsets[j];
    img_a_.assign(img, 0), img_b_.assign(img, 0), bits_.assign(bits, 0);
    key_ = key;
  }

  void run(int64_t N) {
    for (size_t pc = 0; pc < program_.size();) {
      const int64_t* ins = program_.data() + pc;
      const int64_t kind = ins[0], src = ins[1];
      const State& x = src < 0 ? in_[-src - 1] : st_[src];
      const State& d = st_[ins[2]];
      const bool add = ins[3] != 0;
      if (kind == 0) {
        conv(x, ins, d, add, N);
        pc += 10;
      } else if (kind == 1) {
        chain(x, ins, d, add, N);
        pc += 5 + CHAIN_STAGE * ins[4];
      } else if (kind == 2) {
        (ins[4] ? pool_kernel<true> : pool_kernel<false>)(x.data, x.ld, N, x.H, x.W, x.C, ins[5], d.H, d.W, d.data,
                                                          d.ld, add);
        pc += 6;
      } else if (kind == 3) {
        at::parallel_for(0, N * d.H * d.W, 64, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            const float* a = x.data + p * x.ld;
            float* b = d.data + p * d.ld;
            if (add) {
              for (int64_t c = 0; c < d.C; ++c) b[c] += a[c];
            } else {
              std::memcpy(b, a, d.C * sizeof(float));
            }
          }
        });
        pc += 4;
      } else {
        TORCH_CHECK(false, "CellPlan: unknown instruction ", kind);
      }
    }
  }

  // A binary 1x1 conv + folded BN, packing each block's input rows on the fly (zero rows past the image).
  void conv(const State& x, const int64_t* ins, const State& d, bool add, int64_t N) {
    const int64_t stride = ins[4], offset = ins[5];
    const torch::Tensor& scale = tensors_[ins[8]];
    const int64_t O = scale.numel(), Opad = tensors_[ins[7]].size(1), C = x.C, words = (C + 63) / 64;
    const int64_t rows = N * d.H * d.W, blocks = (rows + PB - 1) / PB;
    float* out = d.data + ins[6];
    at::parallel_for(0, blocks, 8, [&](int64_t b0, int64_t b1) {
      std::vector<uint64_t> packed(PB * words);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t p0 = blk * PB, np = std::min<int64_t>(PB, rows - p0);
        for (int64_t i = 0; i < np; ++i) {
          const int64_t p = p0 + i, n = p / (d.H * d.W), oh = p / d.W % d.H, ow = p % d.W;
          const int64_t h = oh * stride + offset, w = ow * stride + offset;
          if (h < x.H && w < x.W) pack_row(x.pixel(n, h, w), C, packed.data() + i * words, words);
          else std::fill(packed.data() + i * words, packed.data() + (i + 1) * words, 0);
        }
        gemm_block(reinterpret_cast<const uint32_t*>(packed.data()), np, 2 * words, u(ins[7]), O, Opad, f(ins[8]),
                   f(ins[9]), C, out + p0 * d.ld, d.ld, add);
      }
    });
  }

  // depthwise k x k (int8) -> pointwise XNOR + folded BN, stage after stage; int8 signs between stages.
  void chain(const State& x, const int64_t* ins, const State& d, bool add, int64_t N) {
    const int64_t stages = ins[4];
    int64_t H = x.H, W = x.W, C = x.C, pad = ins[5 + 2];
    int8_t* img = img_a_.data();
    zero_border(img, N, H, W, pad, round64(C));
    sign_pad_kernel(x.data, x.ld, N, H, W, C, pad, img, round64(C));
    for (int64_t sg = 0; sg < stages; ++sg) {
      const int64_t* g = ins + 5 + CHAIN_STAGE * sg;
      const int64_t k = g[0], stride = g[1], dil = g[3], Cpad = round64(C);
      const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
      H = out_size(Hp, k, stride, dil), W = out_size(Wp, k, stride, dil);
      depthwise_kernel(img, N, Hp, Wp, Cpad, tensors_[g[4]].data_ptr<int8_t>(), f(g[5]), k, stride, dil, H, W,
                       bits_.data(), nullptr);
      const torch::Tensor& wt = tensors_[g[6]];
      const int64_t O = tensors_[g[7]].numel(), K32 = 2 * (Cpad / 64);
      const auto* a = reinterpret_cast<const uint32_t*>(bits_.data());
      if (sg + 1 < stages) {
        pad = g[CHAIN_STAGE + 2];
        img = img == img_a_.data() ? img_b_.data() : img_a_.data();
        zero_border(img, N, H, W, pad, round64(O));
        xnor_gemm_sign_pad_kernel(a, N * H * W, K32, u(g[6]), O, wt.size(1), f(g[7]), f(g[8]), C, H, W, pad, img,
                                  round64(O));
      } else {
        xnor_gemm_kernel(a, N * H * W, K32, u(g[6]), O, wt.size(1), f(g[7]), f(g[8]), C, d.data, d.ld, add);
      }
      C = O;
    }
  }

  std::vector<torch::Tensor> tensors_;
  std::vector<int64_t> program_;
  int64_t states_, C_;
  std::vector<int64_t> concat_;
  std::vector<int64_t> key_;
  std::vector<State> st_;
  State in_[2];
  int64_t Ho_ = 0, Wo_ = 0;
  std::vector<float> states_buf_;
  std::vector<int8_t> img_a_, img_b_;
  std::vector<uint64_t> bits_;
  std::mutex mutex_;
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("xnor_conv1x1", &xnor_conv1x1, "pack the rows' signs and run the XNOR-popcount GEMM, block by block");
  m.def("pack_signs", &pack_signs, "pack the sign bits of each row (64 per int64 word; 1 = negative)");
  m.def("xnor_gemm", &xnor_gemm, "scale * (C - 2 popcount(a ^ w)) + bias, rows x O, float32");
  m.def("simd_path", &simd_path, "the popcount path compiled in");
  m.def("depthwise_path", &depthwise_path, "the binary depthwise path compiled in");
  m.def("sign_pad", &sign_pad, "int8 signs of float rows in a zero-bordered NHWC image, channels padded to 64");
  m.def("binary_depthwise", &binary_depthwise, "binary depthwise conv in int8: sign bits (and the integers)");
  m.def("xnor_gemm_sign_pad", &xnor_gemm_sign_pad, "XNOR GEMM writing the int8 signs of its output, zero-bordered");
  m.def("pool3x3", &pool3x3, "3x3 max or average pooling (count_include_pad=False), channels_last");
  m.def("binary_chain", &binary_chain, "binary (depthwise -> pointwise + folded BN) stages, float output");
  // module_local: the builds for several instruction sets load side by side, each with its own CellPlan
  pybind11::class_<CellPlan>(m, "CellPlan", pybind11::module_local(),
                             "a whole packed cell as one call, its scratch memory planned once")
      .def(pybind11::init<std::vector<torch::Tensor>, std::vector<int64_t>, int64_t, int64_t, std::vector<int64_t>>())
      .def("forward", &CellPlan::forward, "the cell on channels_last float32 inputs s0, s1",
           pybind11::call_guard<pybind11::gil_scoped_release>());
}
