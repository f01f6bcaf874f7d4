/* sampler.h — which training rows make up each global batch: a function of (seed, epoch, step)
 * and the dataset size only, never of the rank count.
 *
 * The N training rows are cut into V = min(60, N) contiguous virtual shards. Each epoch every shard
 * is shuffled on its own (rng stream (seed ^ epoch, shard)). Global batch t takes
 * floor(B / V) rows from every shard plus one more from B % V shards chosen round-robin by t, so
 * all shards are drawn evenly; within a batch the rows are ordered by shard. A rank owns a
 * contiguous range of shards (data_shard of V over the ranks), so it needs only the contiguous rows
 * of those shards, and its rows of each batch are a contiguous slice of the global batch. An epoch
 * has as many steps as every shard can feed (the few rows left over are dropped, as drop_last).
 * B = N means full-batch gradient descent: one step per epoch over every row; B > N is an error. */
#ifndef DPT_SAMPLER_H
#define DPT_SAMPLER_H

#include <stdint.h>

#define SAMPLER_MAX_SHARDS 60

typedef struct sampler {
  int64_t n, batch;                      /* training rows, global batch (<= n) */
  int v;                                 /* virtual shards */
  int64_t start[SAMPLER_MAX_SHARDS + 1]; /* shard s is rows [start[s], start[s+1]) */
  int s_lo, s_hi;                        /* shards this rank owns */
  uint64_t seed;
  int64_t steps_per_epoch;
  int64_t epoch, step; /* position: the next batch is step `step` of epoch `epoch` */
  int64_t *perm;       /* owned rows' permutations, shard after shard (global row ids) */
  int64_t cursor[SAMPLER_MAX_SHARDS];
} sampler;

/* Set up for n rows, global batch `batch`, this rank of `size`. Returns 0, or -1 with log_fail
 * when batch > n ("[train] batch_size B is larger than the N training rows"), size > number of
 * shards or batch < size. */
int sampler_init(sampler *s, int64_t n, int64_t batch, uint64_t seed, int rank, int size);
void sampler_free(sampler *s);

/* First row and end row (global ids) of the rows this rank needs all epoch long. */
void sampler_local_rows(const sampler *s, int64_t *begin, int64_t *end);

/* Position at (epoch, step) — a fresh epoch's permutations, replayed up to `step`. */
void sampler_seek(sampler *s, int64_t epoch, int64_t step);

/* The next batch: writes this rank's rows (global ids) to rows[] and returns how many; *offset
 * gets the position of the first of them in the global batch. Advances to the next epoch's first
 * step after the last step (the caller sees it in s->epoch). */
int64_t sampler_next(sampler *s, int64_t *rows, int64_t *offset);

/* Largest number of rows sampler_next can return on this rank. */
int64_t sampler_max_local(const sampler *s);

#endif
