/* rng.h — seeded pseudo-random numbers that are the same on every rank and every platform.
 *
 * xoshiro256** seeded through splitmix64 (Blackman & Vigna). Streams are derived from a seed and
 * stream id with rng_init(seed, stream), so e.g. "shuffle of epoch e" or "init of layer l" is a
 * pure function of (seed, e) or (seed, l) and never of the rank count. */
#ifndef DPT_RNG_H
#define DPT_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
  uint64_t s[4];
} rng;

/* Seed generator r with (seed, stream); different streams give independent sequences. */
void rng_init(rng *r, uint64_t seed, uint64_t stream);
/* Next 64 random bits. */
uint64_t rng_u64(rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(rng *r);
/* Standard normal (Box–Muller, no cached second value so the stream position is simple). */
double rng_normal(rng *r);
/* Fisher–Yates shuffle of idx[0..n). */
void rng_shuffle_i64(rng *r, int64_t *idx, size_t n);

#endif
