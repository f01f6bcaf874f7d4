/* batch.h — how a training or evaluation batch reaches the backend (used by train.c).
 *
 * Two paths, one result (a model_batch of device pointers):
 *   staged:   the rows are gathered on the host into a staging buffer and uploaded each step
 *             (the CPU backend reads the staging buffer itself: no copy);
 *   resident: the rank's train shard is copied to the device once at set-up, and each step only
 *             the batch's row indices (and CSR row offsets) go up; the backend's gather_rows /
 *             gather_csr ops assemble the batch on the device.
 * Resident and staged batches are bit-identical (tests/cli/mpi_train.sh checks it). Nothing here
 * allocates after set-up. */
#ifndef DPT_BATCH_H
#define DPT_BATCH_H

#include <stdint.h>

#include "backend.h"
#include "data.h"
#include "model.h"

/* A batch staged on the host and its device copy. On a device backend the host side is two sets
 * of page-locked buffers used in turn, and the uploads are asynchronous: the host gathers batch
 * t+1 into one set while the copy of batch t from the other may still be queued behind the
 * device's work (every step returns its loss to the host, so a set is free again two batches
 * later). One set of device buffers suffices: the copies and the compute are ordered on one
 * stream. On the CPU backend one host set, which is also the "device" copy. */
typedef struct batch_stage {
  int64_t rows_cap, nnz_cap, cols;
  int sparse;
  float *hx, *dx;       /* dense [rows_cap, cols] */
  int64_t *hptr, *dptr; /* CSR [rows_cap + 1] */
  int32_t *hind, *dind; /* CSR [nnz_cap] */
  float *hval, *dval;   /* CSR [nnz_cap] */
  int32_t *hy, *dy;     /* [rows_cap]; h*: the set the last batch was staged in */
  void *set[2][5];      /* host sets {x, ptr, ind, val, y}; set[1] unused on the CPU */
  int nsets, cur;
  int pinned; /* the sets are backend host_alloc memory (else xmalloc) */
} batch_stage;

/* The rank's train shard in backend memory, from which the backend gathers each batch into the
 * stage's device buffers: only the batch's row indices travel per step. On the CUDA backend a
 * copy made at set-up; on the CPU backend the host block itself (nothing is copied). */
typedef struct batch_resident {
  int on;
  const float *x;       /* dense [rows, cols] */
  const int64_t *ptr;   /* CSR [rows + 1] */
  const int32_t *ind;   /* CSR [nnz] */
  const float *val;     /* CSR [nnz] */
  const int32_t *y;     /* [rows] */
  void *owned[5];       /* the device copies above, to free (none on the CPU) */
  int64_t *hidx, *didx; /* [2 rows_cap + 1]: the batch's rows in the shard, then (CSR) its
                                row offsets (hidx page-locked, uploaded asynchronously); didx is
                                hidx on the CPU */
  int hidx_pinned;      /* hidx is backend host_alloc memory */
} batch_resident;

/* Host staging and device buffers for batches of up to `rows` rows of src's kind (CSR: room for
 * src's entries, more than any batch of it holds). Returns 0, or -1 with log_fail when the device
 * is out of memory. */
int batch_stage_init(batch_stage *s, const backend_ops *be, const data_block *src, int64_t rows);

/* Free the buffers (be NULL: host buffers only). */
void batch_stage_free(batch_stage *s, const backend_ops *be);

/* The batch of block b's rows `rows` (global ids; row = rows[i] − base), or of the n rows from
 * base on when rows is NULL, staged and uploaded; the returned batch points at s's device
 * buffers. */
model_batch batch_stage_rows(batch_stage *s, const backend_ops *be, const data_block *b, const int64_t *rows, int64_t n,
                             int64_t base);

/* Make b (the train shard) resident when every rank's fits the budget (DPT_RESIDENT_MAX_MB, MiB,
 * 0: never; else half the device's memory; any size on the CPU). Collective over dist_comm():
 * all ranks choose the same mode and rank 0 says which. Never fails: r->on = 0 leaves the
 * batches staged. rows_cap is the stage's row capacity. */
void batch_resident_init(batch_resident *r, const backend_ops *be, const data_block *b, int64_t rows_cap);

/* Free the device copies (be NULL: host buffers only). */
void batch_resident_free(batch_resident *r, const backend_ops *be);

/* The batch of b's rows `rows` (global ids) gathered on the device from the resident shard into
 * s's device buffers (r->on must be 1). */
model_batch batch_resident_rows(const batch_resident *r, const batch_stage *s, const backend_ops *be,
                                const data_block *b, const int64_t *rows, int64_t n);

#endif
