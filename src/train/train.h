/* train.h — `dptrain train` and `dptrain eval`: the data-parallel training loop.
 *
 * Every rank: reads its shards of the training rows and its block of the test rows, builds the
 * same model from the same seed, and for each global batch computes the gradient of its rows
 * (scaled by 1 / global batch), all-reduces it in per-layer buckets started during backward
 * (MPI_Iallreduce, completed before the update), clips, and applies the optimizer — so every
 * replica stays identical. Evaluation is distributed too. Rank 0 prints progress, writes
 * OUT/metrics.jsonl, OUT/config.ini and OUT/checkpoint.h5. */
#ifndef DPT_TRAIN_H
#define DPT_TRAIN_H

/* Entry point of `train` (eval_only = 0) and `eval` (1); argv[0] is the command name, argv[1]
 * the config, then section.key=value overrides. MPI must be initialised (dist_init). Returns a
 * LOG_EXIT_* code, the error already printed once. */
int train_main(int argc, char **argv, int eval_only);

#endif
