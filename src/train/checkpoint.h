/* checkpoint.h — the full training state in one HDF5 file (docs/design.md), written atomically.
 *
 *   /params            float32 [P]   the flat parameter buffer (layer by layer, W then b)
 *   /optim/<name>      float32 [P]   each optimizer state buffer, named as torch.optim's state
 *   /sampler           int64 [4]     epoch, step within epoch, training rows, global batch
 *   attributes         step, epoch, seed, world_size, optimizer, dims (the layer widths),
 *                      config (the resolved INI text)
 * Everything the run derives from the seed (shuffles, dropout masks, initial weights) is recomputed
 * from (seed, epoch, step), so no generator state needs storing: a resume continues bit-identically
 * on the same rank count, and on another rank count as the sampler is rank-count independent. */
#ifndef DPT_CHECKPOINT_H
#define DPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_MAX_STATE 3

typedef struct checkpoint {
  size_t n_params;
  float *params; /* host [n_params] */
  int n_state;
  float *state[CHECKPOINT_MAX_STATE]; /* host [n_params] each */
  char *state_name[CHECKPOINT_MAX_STATE];
  char *optimizer; /* e.g. "nesterov" */
  int n_dims;
  int64_t dims[32]; /* layer widths d[0..L] */
  int64_t step, epoch, step_in_epoch, seed, world_size, n_train, batch;
  char *config; /* resolved INI text */
} checkpoint;

/* Write c to path atomically (temporary + fsync + rename). Serial: call on one rank. Refuses a
 * state with a non-finite value ("PATH: not written: /params[12] is nan; the last good checkpoint
 * is kept"): such a file could only be resumed into NaN. Returns 0, or -1 with
 * log_fail("PATH: why"). Does not take ownership of c's buffers. */
int checkpoint_save(const char *path, const checkpoint *c);

/* The run directory's files (the trainer's): each checkpoint is DIR/checkpoint-SSSSSSSS.h5 (S:
 * steps done, zero-padded), and DIR/checkpoint.h5 is a symbolic link to the newest.
 * checkpoint_point makes `link` a symbolic link to `target` (a name relative to link's directory)
 * atomically: a temporary link renamed over it, so a reader (or a resume after kill -9) sees the
 * old target or the new, never neither. Returns 0, or -1 with log_fail. */
int checkpoint_point(const char *link, const char *target);

/* Remove all but the newest `keep` DIR/checkpoint-*.h5 files, and the temporaries of writes
 * that were interrupted (another process's). Returns 0, or -1 with log_fail. */
int checkpoint_prune(const char *dir, int64_t keep);

/* Read path into c (allocating every buffer; free with checkpoint_free). Returns 0, or -1 with
 * log_fail("PATH: why") for a missing, non-HDF5 or malformed file. */
int checkpoint_load(const char *path, checkpoint *c);

/* Read only /params of any HDF5 file (a checkpoint, or weights written elsewhere, e.g. exported
 * from PyTorch in the layout above): a new host buffer of exactly n_params floats (free it), or
 * NULL with log_fail("PATH: /params has N values, expected n_params") and the like. */
float *checkpoint_load_params(const char *path, size_t n_params);

void checkpoint_free(checkpoint *c);

#endif
