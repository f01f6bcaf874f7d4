/* sampler.h — which training rows make up each global batch: a function of (seed, epoch, step),
 * the dataset size, the global batch and the shard count only, never of the rank count.
 *
 * The N training rows are cut into V contiguous virtual shards (data_shard of N over V: sizes
 * floor(N / V) or one more). Each epoch every shard is shuffled on its own (rng stream
 * (seed ^ epoch, shard)). Global batch t takes floor(B / V) rows from every shard, the next ones of
 * its shuffle, plus one more from B % V shards chosen round-robin by t; within a batch the rows are
 * ordered by shard. A rank owns a contiguous range of shards (data_shard of V over the ranks), so
 * it reads only the contiguous rows of those shards, and its rows of each batch are a contiguous
 * slice of the global batch. An epoch has as many steps as every shard can feed (the few rows left
 * over are dropped, as drop_last). B = N means full-batch gradient descent: one step per epoch over
 * every row; B > N is an error.
 *
 * V = B (SAMPLER_SHARDS_BATCH, the default) makes every batch take exactly one row of every shard
 * (a stratified sample), so a rank owning floor(B / P) or ceil(B / P) shards computes exactly that
 * many rows of every step: the ranks' shares differ by at most one row at any rank count P <= B.
 * Other V keep the order rank-count independent but balance only when P divides V and B % V = 0;
 * V = min(60, N) is the layout of the sampler before issue 19 (SAMPLER_SHARDS_V1), kept so that
 * its checkpoints resume exactly. The argument for each property is in docs/training.md. */
#ifndef DPT_SAMPLER_H
#define DPT_SAMPLER_H

#include <stdint.h>

#define SAMPLER_SHARDS_BATCH 0  /* V = the global batch: one row of every shard per step */
#define SAMPLER_SHARDS_V1    60 /* the fixed V (at most) of checkpoints with a 4-value /sampler */

typedef struct sampler {
  int64_t n, batch;   /* training rows, global batch (<= n) */
  int64_t v;          /* virtual shards, 1 <= v <= n */
  int64_t s_lo, s_hi; /* shards this rank owns */
  uint64_t seed;
  int64_t steps_per_epoch;
  int64_t epoch, step; /* position: the next batch is step `step` of epoch `epoch` */
  int64_t *perm;       /* owned rows' permutations, shard after shard (global row ids) */
  int64_t *cursor;     /* [s_hi - s_lo] rows of each owned shard used so far this epoch */
} sampler;

/* Set up for n rows, global batch `batch`, `shards` virtual shards (SAMPLER_SHARDS_BATCH: the
 * batch), this rank of `size`. Returns 0, or -1 with log_fail when batch > n ("[train] batch_size
 * B is larger than the N training rows"), batch < size, shards > n, or size > shards. */
int sampler_init(sampler *s, int64_t n, int64_t batch, int64_t shards, uint64_t seed, int rank, int size);
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

/* The fewest and most rows this rank computes in one step of an epoch (the same for every
 * epoch; with V = B both are the rank's shard count). */
void sampler_step_rows(const sampler *s, int64_t *fewest, int64_t *most);

#endif
