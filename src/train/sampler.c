/* sampler.c — rank-count independent global batches over virtual shards (see sampler.h). */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "data.h"
#include "log.h"
#include "rng.h"

/* Rows shard sh gives to global batch t. */
static int64_t take(const sampler *s, int sh, int64_t t) {
  if (s->batch >= s->n) return s->start[sh + 1] - s->start[sh];
  int64_t base = s->batch / s->v, rem = s->batch % s->v;
  /* the B % V extra rows go to a window of shards that advances by B % V every step, so each
   * shard gets its extras evenly spread (one every V / (B % V) steps) */
  int64_t pos = ((sh - (t % s->v) * rem) % s->v + s->v) % s->v;
  return base + (pos < rem ? 1 : 0);
}

int sampler_init(sampler *s, int64_t n, int64_t batch, uint64_t seed, int rank, int size) {
  memset(s, 0, sizeof *s);
  if (n < 1) return log_fail("the training set is empty");
  if (batch > n) /* optim.name = gd asks for batch = n: the full batch */
    return log_fail("[train] batch_size %lld is larger than the %lld training rows", (long long)batch, (long long)n);
  s->n = n;
  s->batch = batch;
  s->seed = seed;
  s->v = n < SAMPLER_MAX_SHARDS ? (int)n : SAMPLER_MAX_SHARDS;
  if (size > s->v) return log_fail("%d ranks but only %d shards of training data (at most %d ranks)", size, s->v, s->v);
  if (s->batch < size) return log_fail("[train] batch_size %lld is smaller than the %d ranks", (long long)batch, size);
  for (int i = 0; i < s->v; i++) {
    int64_t e;
    data_shard(n, i, s->v, &s->start[i], &e);
  }
  s->start[s->v] = n;
  int64_t lo, hi;
  data_shard(s->v, rank, size, &lo, &hi);
  s->s_lo = (int)lo;
  s->s_hi = (int)hi;
  /* steps per epoch: as long as every shard can feed its share */
  int64_t used[SAMPLER_MAX_SHARDS] = {0}, t = 0;
  for (;; t++) {
    int ok = 1;
    for (int sh = 0; sh < s->v && ok; sh++) ok = used[sh] + take(s, sh, t) <= s->start[sh + 1] - s->start[sh];
    if (!ok) break;
    for (int sh = 0; sh < s->v; sh++) used[sh] += take(s, sh, t);
    if (s->batch >= s->n) {
      t++;
      break;
    }
  }
  s->steps_per_epoch = t;
  if (t < 1)
    return log_fail("[train] batch_size %lld leaves no full batch in %lld rows", (long long)batch, (long long)n);
  s->perm = xmalloc(sizeof(int64_t) * (size_t)(s->start[s->s_hi] - s->start[s->s_lo] + 1));
  sampler_seek(s, 0, 0);
  return 0;
}

void sampler_free(sampler *s) {
  free(s->perm);
  s->perm = NULL;
}

void sampler_local_rows(const sampler *s, int64_t *begin, int64_t *end) {
  *begin = s->start[s->s_lo];
  *end = s->start[s->s_hi];
}

void sampler_seek(sampler *s, int64_t epoch, int64_t step) {
  s->epoch = epoch;
  s->step = 0;
  int64_t *p = s->perm;
  for (int sh = s->s_lo; sh < s->s_hi; sh++) {
    int64_t len = s->start[sh + 1] - s->start[sh];
    for (int64_t i = 0; i < len; i++) p[i] = s->start[sh] + i;
    rng r;
    rng_init(&r, s->seed ^ (0xA5A5A5A5ull + (uint64_t)epoch * 0x9E3779B97F4A7C15ull), (uint64_t)sh);
    rng_shuffle_i64(&r, p, (size_t)len);
    s->cursor[sh] = 0;
    p += len;
  }
  for (; s->step < step; s->step++)
    for (int sh = s->s_lo; sh < s->s_hi; sh++) s->cursor[sh] += take(s, sh, s->step);
}

int64_t sampler_next(sampler *s, int64_t *rows, int64_t *offset) {
  int64_t k = 0, off = 0;
  for (int sh = 0; sh < s->s_lo; sh++) off += take(s, sh, s->step);
  const int64_t *p = s->perm;
  for (int sh = s->s_lo; sh < s->s_hi; sh++) {
    int64_t c = take(s, sh, s->step);
    memcpy(rows + k, p + s->cursor[sh], sizeof(int64_t) * (size_t)c);
    s->cursor[sh] += c;
    k += c;
    p += s->start[sh + 1] - s->start[sh];
  }
  *offset = off;
  if (++s->step == s->steps_per_epoch) sampler_seek(s, s->epoch + 1, 0);
  return k;
}

int64_t sampler_max_local(const sampler *s) {
  if (s->batch >= s->n) return s->start[s->s_hi] - s->start[s->s_lo];
  return (s->batch / s->v + 1) * (s->s_hi - s->s_lo);
}
