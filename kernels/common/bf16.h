/* bf16.h — rounding fp32 to bfloat16, shared by the CPU and CUDA backends (see hd.h), so that
 * gemm_bf16 feeds the same operand values to OpenBLAS (as floats) and to cuBLAS (as bf16).
 *
 * bfloat16 is the upper half of an IEEE fp32: sign, the same 8-bit exponent, 7 stored mantissa
 * bits. Rounding is to nearest, ties to even, on the bit pattern: add 0x7FFF plus the lowest kept
 * bit, then drop the low 16 bits. That carries into the exponent when the mantissa overflows (so
 * values above the largest bf16 round to infinity, as IEEE says), keeps ±infinity and zeros, and
 * is exact for subnormals too. NaN is handled apart (the addition could turn a NaN with only low
 * payload bits into infinity): it stays a quiet NaN with its sign. */
#ifndef DPT_KERN_BF16_H
#define DPT_KERN_BF16_H

#include <stdint.h>
#include <string.h>

#include "hd.h"

static inline KERN_HD uint32_t bf16_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
#endif
}

static inline KERN_HD float bf16_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
#endif
}

/* The bfloat16 nearest to x (ties to even), as its 16-bit pattern. */
static inline KERN_HD uint16_t bf16_from_float(float x) {
  uint32_t u = bf16_float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* A bfloat16 pattern as the fp32 of the same value (exact). */
static inline KERN_HD float bf16_to_float(uint16_t h) { return bf16_bits_float((uint32_t)h << 16); }

/* x rounded to the nearest bfloat16, kept as fp32 (what the CPU reference multiplies). */
static inline KERN_HD float bf16_round(float x) { return bf16_to_float(bf16_from_float(x)); }

#endif
