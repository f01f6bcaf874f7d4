/* sampler.c — rank-count independent global batches over virtual shards (see sampler.h).
 *
 * Nothing here is O(V) per rank except sampler_init's step count for a V that does not divide the
 * batch (the old 60-shard layout); the shard bounds are data_shard's closed form, and only the
 * owned shards have a cursor, so V = B stays cheap at any batch and rank count. */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "data.h"
#include "log.h"
#include "rng.h"

/* First row of shard sh (sh = v: n): data_shard's split of n over v, in 64 bits. */
static int64_t shard_begin(const sampler *s, int64_t sh) {
  if (sh >= s->v) return s->n;
  int64_t base = s->n / s->v, extra = s->n % s->v;
  return sh * base + (sh < extra ? sh : extra);
}

static int64_t shard_len(const sampler *s, int64_t sh) { return shard_begin(s, sh + 1) - shard_begin(s, sh); }

/* Rows shard sh gives to global batch t. */
static int64_t take(const sampler *s, int64_t sh, int64_t t) {
  if (s->batch >= s->n) return shard_len(s, sh);
  int64_t base = s->batch / s->v, rem = s->batch % s->v;
  if (rem == 0) return base;
  /* the B % V extra rows go to a window of shards that advances by B % V every step, so each
   * shard gets its extras evenly spread (one every V / (B % V) steps) */
  int64_t pos = ((sh - (t % s->v) * rem) % s->v + s->v) % s->v;
  return base + (pos < rem ? 1 : 0);
}

/* Steps per epoch: as many as every shard can feed its share. */
static int64_t count_steps(const sampler *s) {
  if (s->batch >= s->n) return 1;
  const int64_t base = s->batch / s->v;
  if (s->batch % s->v == 0) return (s->n / s->v) / base; /* the shortest shard, base rows a step */
  int64_t *used = xcalloc((size_t)s->v, sizeof(int64_t)), t = 0;
  for (;; t++) {
    int ok = 1;
    for (int64_t sh = 0; sh < s->v && ok; sh++) ok = used[sh] + take(s, sh, t) <= shard_len(s, sh);
    if (!ok) break;
    for (int64_t sh = 0; sh < s->v; sh++) used[sh] += take(s, sh, t);
  }
  free(used);
  return t;
}

int sampler_init(sampler *s, int64_t n, int64_t batch, int64_t shards, uint64_t seed, int rank, int size) {
  memset(s, 0, sizeof *s);
  if (n < 1) return log_fail("the training set is empty");
  if (batch > n) /* optim.name = gd asks for batch = n: the full batch */
    return log_fail("[train] batch_size %lld is larger than the %lld training rows", (long long)batch, (long long)n);
  if (batch < size) return log_fail("[train] batch_size %lld is smaller than the %d ranks", (long long)batch, size);
  if (shards > n)
    return log_fail("[train] shards %lld is larger than the %lld training rows", (long long)shards, (long long)n);
  s->n = n;
  s->batch = batch;
  s->seed = seed;
  s->v = shards == SAMPLER_SHARDS_BATCH ? batch : shards;
  if (size > s->v)
    return log_fail("%d ranks but only %lld virtual shards of training data (at most %lld ranks)", size,
                    (long long)s->v, (long long)s->v);
  data_shard(s->v, rank, size, &s->s_lo, &s->s_hi);
  s->steps_per_epoch = count_steps(s);
  if (s->steps_per_epoch < 1)
    return log_fail("[train] batch_size %lld leaves no full batch in %lld rows", (long long)batch, (long long)n);
  s->perm = xmalloc(sizeof(int64_t) * (size_t)(shard_begin(s, s->s_hi) - shard_begin(s, s->s_lo) + 1));
  s->cursor = xcalloc((size_t)(s->s_hi - s->s_lo + 1), sizeof(int64_t));
  sampler_seek(s, 0, 0);
  return 0;
}

void sampler_free(sampler *s) {
  free(s->perm);
  free(s->cursor);
  s->perm = NULL;
  s->cursor = NULL;
}

void sampler_local_rows(const sampler *s, int64_t *begin, int64_t *end) {
  *begin = shard_begin(s, s->s_lo);
  *end = shard_begin(s, s->s_hi);
}

void sampler_seek(sampler *s, int64_t epoch, int64_t step) {
  s->epoch = epoch;
  s->step = 0;
  int64_t *p = s->perm;
  for (int64_t sh = s->s_lo; sh < s->s_hi; sh++) {
    const int64_t first = shard_begin(s, sh), len = shard_len(s, sh);
    for (int64_t i = 0; i < len; i++) p[i] = first + i;
    rng r;
    rng_init(&r, s->seed ^ (0xA5A5A5A5ull + (uint64_t)epoch * 0x9E3779B97F4A7C15ull), (uint64_t)sh);
    rng_shuffle_i64(&r, p, (size_t)len);
    s->cursor[sh - s->s_lo] = 0;
    p += len;
  }
  for (; s->step < step; s->step++)
    for (int64_t sh = s->s_lo; sh < s->s_hi; sh++) s->cursor[sh - s->s_lo] += take(s, sh, s->step);
}

int64_t sampler_next(sampler *s, int64_t *rows, int64_t *offset) {
  int64_t k = 0, off = 0;
  if (s->batch >= s->n)
    off = shard_begin(s, s->s_lo);
  else if (s->batch % s->v == 0)
    off = s->s_lo * (s->batch / s->v);
  else
    for (int64_t sh = 0; sh < s->s_lo; sh++) off += take(s, sh, s->step);
  const int64_t *p = s->perm;
  for (int64_t sh = s->s_lo; sh < s->s_hi; sh++) {
    const int64_t c = take(s, sh, s->step);
    int64_t *cur = &s->cursor[sh - s->s_lo];
    memcpy(rows + k, p + *cur, sizeof(int64_t) * (size_t)c);
    *cur += c;
    k += c;
    p += shard_len(s, sh);
  }
  *offset = off;
  if (++s->step == s->steps_per_epoch) sampler_seek(s, s->epoch + 1, 0);
  return k;
}

int64_t sampler_max_local(const sampler *s) {
  if (s->batch >= s->n) return shard_begin(s, s->s_hi) - shard_begin(s, s->s_lo);
  return (s->batch / s->v + (s->batch % s->v ? 1 : 0)) * (s->s_hi - s->s_lo);
}

void sampler_step_rows(const sampler *s, int64_t *fewest, int64_t *most) {
  if (s->batch >= s->n || s->batch % s->v == 0) {
    *fewest = *most = sampler_max_local(s);
    return;
  }
  *fewest = INT64_MAX, *most = 0;
  for (int64_t t = 0; t < s->steps_per_epoch; t++) {
    int64_t k = 0;
    for (int64_t sh = s->s_lo; sh < s->s_hi; sh++) k += take(s, sh, t);
    *fewest = k < *fewest ? k : *fewest;
    *most = k > *most ? k : *most;
  }
}
