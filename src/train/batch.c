/* batch.c — staged and device-resident training batches (see batch.h). */
#include "batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dist.h"
#include "log.h"

/* Free a host set buffer: host_free when the sets are pinned, else free. */
static void stage_host_free(const backend_ops *be, void *p, int pinned) {
  if (pinned)
    be->host_free(p);
  else
    free(p);
}

/* Point the h* fields at host set i. */
static void stage_use(batch_stage *s, int i) {
  s->cur = i;
  s->hx = s->set[i][0], s->hptr = s->set[i][1], s->hind = s->set[i][2], s->hval = s->set[i][3], s->hy = s->set[i][4];
}

int batch_stage_init(batch_stage *s, const backend_ops *be, const data_block *src, int64_t rows) {
  memset(s, 0, sizeof *s);
  s->rows_cap = rows;
  s->cols = src->cols;
  s->sparse = src->kind == DATA_CSR;
  if (s->sparse) s->nnz_cap = src->nnz > 0 ? src->nnz : 1; /* a batch never holds more than the block */
  const size_t bytes[5] = {s->sparse ? 0 : sizeof(float) * (size_t)(rows * s->cols),
                           s->sparse ? sizeof(int64_t) * (size_t)(rows + 1) : 0,
                           s->sparse ? sizeof(int32_t) * (size_t)s->nnz_cap : 0,
                           s->sparse ? sizeof(float) * (size_t)s->nnz_cap : 0, sizeof(int32_t) * (size_t)rows};
  const int device = be->kind != BACKEND_CPU;
  s->nsets = device ? 2 : 1;
  s->pinned = device; /* page-locked on a device backend, unless the driver refuses any of it */
  for (int k = 0; k < s->nsets; k++)
    for (int i = 0; i < 5; i++)
      if (bytes[i] && s->pinned && !(s->set[k][i] = be->host_alloc(bytes[i]))) s->pinned = 0;
  if (!s->pinned) { /* all or nothing: give back what was pinned, then plain memory */
    for (int k = 0; k < s->nsets; k++)
      for (int i = 0; i < 5; i++) {
        if (s->set[k][i]) be->host_free(s->set[k][i]);
        s->set[k][i] = bytes[i] ? xcalloc(1, bytes[i]) : NULL;
      }
  }
  stage_use(s, 0);
  void *dev[5] = {0}; /* the device copies; on the CPU the host set itself */
  int ok = 1;
  for (int i = 0; i < 5 && ok; i++)
    if (bytes[i]) ok = (dev[i] = device ? be->alloc(bytes[i]) : s->set[0][i]) != NULL;
  s->dx = dev[0], s->dptr = dev[1], s->dind = dev[2], s->dval = dev[3], s->dy = dev[4];
  return ok ? 0 : log_fail("out of device memory for a batch of %lld rows", (long long)rows);
}

void batch_stage_free(batch_stage *s, const backend_ops *be) {
  if (be && be->kind != BACKEND_CPU)
    be->free(s->dx), be->free(s->dptr), be->free(s->dind), be->free(s->dval), be->free(s->dy);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 5; i++)
      if (s->set[k][i]) {
        if (be)
          stage_host_free(be, s->set[k][i], s->pinned);
        else
          free(s->set[k][i]);
      }
  memset(s, 0, sizeof *s);
}

/* Gather rows into the next host set, queue the uploads, and describe the device batch. */
model_batch batch_stage_rows(batch_stage *s, const backend_ops *be, const data_block *b, const int64_t *rows, int64_t n,
                             int64_t base) {
  stage_use(s, (s->cur + 1) % s->nsets);
  int64_t nnz = 0;
  if (s->sparse) s->hptr[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t r = rows ? rows[i] - base : base + i; /* row within the block */
    s->hy[i] = b->y[r];
    if (s->sparse) {
      int64_t a = b->indptr[r], e = b->indptr[r + 1];
      memcpy(s->hind + nnz, b->indices + a, sizeof(int32_t) * (size_t)(e - a));
      memcpy(s->hval + nnz, b->values + a, sizeof(float) * (size_t)(e - a));
      nnz += e - a;
      s->hptr[i + 1] = nnz;
    } else {
      memcpy(s->hx + i * s->cols, b->x + r * s->cols, sizeof(float) * (size_t)s->cols);
    }
  }
  model_batch mb = {.rows = (int)n, .y = s->dy};
  const int copy = be->kind != BACKEND_CPU; /* the CPU backend reads the staging buffers */
  if (copy) be->upload_async(s->dy, s->hy, sizeof(int32_t) * (size_t)n);
  if (s->sparse) {
    if (copy) {
      be->upload_async(s->dptr, s->hptr, sizeof(int64_t) * (size_t)(n + 1));
      be->upload_async(s->dind, s->hind, sizeof(int32_t) * (size_t)nnz);
      be->upload_async(s->dval, s->hval, sizeof(float) * (size_t)nnz);
    }
    mb.indptr = s->dptr, mb.indices = s->dind, mb.values = s->dval;
  } else {
    if (copy) be->upload_async(s->dx, s->hx, sizeof(float) * (size_t)(n * s->cols));
    mb.x = s->dx;
  }
  return mb;
}

/* Device memory the train shard may take: DPT_RESIDENT_MAX_MB (MiB; 0: never resident, on any
 * backend), else half of the device's memory. The CPU backend's shard is its host block, which
 * costs nothing more: any size. */
static size_t resident_budget(const backend_ops *be) {
  const double mb =
      dist_env_amount("DPT_RESIDENT_MAX_MB", -1, "MiB"); /* -1: unset; bad values stop train_main at start-up */
  if (mb == 0) return 0;
  if (mb > 0) return be->kind == BACKEND_CPU || mb >= 1e12 ? SIZE_MAX : (size_t)(mb * 1048576.0);
  if (be->kind == BACKEND_CPU) return SIZE_MAX;
  backend_device_info info;
  if (backend_device_info_get(be->kind, backend_device_index(be), &info)) return 0;
  return info.memory_bytes / 2;
}

void batch_resident_free(batch_resident *r, const backend_ops *be) {
  if (be && be->kind != BACKEND_CPU) {
    for (int i = 0; i < 5; i++) be->free(r->owned[i]);
    be->free(r->didx);
  }
  if (r->hidx_pinned)
    be->host_free(r->hidx); /* pinned only on a device backend */
  else
    free(r->hidx);
  memset(r, 0, sizeof *r);
}

/* Make the train shard resident when every rank's fits the budget (collective: all ranks choose
 * the same mode, and say which once). Never fails: whatever does not fit or cannot be allocated
 * leaves the batches staged through host memory (stage_rows). */
void batch_resident_init(batch_resident *r, const backend_ops *be, const data_block *b, int64_t rows_cap) {
  const int64_t rows = b->end - b->begin;
  const int sparse = b->kind == DATA_CSR, copy = be->kind != BACKEND_CPU;
  const void *src[5] = {b->x, b->indptr, b->indices, b->values, b->y};
  const size_t sz[5] = {sparse ? 0 : sizeof(float) * (size_t)(rows * b->cols),
                        sparse ? sizeof(int64_t) * (size_t)(rows + 1) : 0,
                        sparse ? sizeof(int32_t) * (size_t)b->nnz : 0, sparse ? sizeof(float) * (size_t)b->nnz : 0,
                        sizeof(int32_t) * (size_t)rows};
  const size_t bytes = sz[0] + sz[1] + sz[2] + sz[3] + sz[4], budget = resident_budget(be);
  int ok = bytes <= budget;
  dist_allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, dist_comm(), "resident batch check");
  double most = (double)bytes / 1048576.0; /* MiB, the largest shard over the ranks */
  dist_allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, dist_comm(), "resident batch check");
  if (!ok) {
    if (budget == 0)
      log_info("data: train batches staged per step through host memory (DPT_RESIDENT_MAX_MB=0)\n");
    else
      log_info(
          "data: train batches staged per step through host memory (the shard, %.1f MiB, is over the "
          "budget of %.1f MiB; DPT_RESIDENT_MAX_MB sets it)\n",
          most, (double)budget / 1048576.0);
    return;
  }
  const size_t idx_bytes = sizeof(int64_t) * (size_t)(2 * rows_cap + 1);
  r->hidx = copy ? be->host_alloc(idx_bytes) : NULL;
  r->hidx_pinned = r->hidx != NULL;
  if (!r->hidx) r->hidx = xmalloc(idx_bytes);
  ok = (r->didx = copy ? be->alloc(idx_bytes) : r->hidx) != NULL;
  const void *d[5] = {0}; /* the shard's arrays in backend memory */
  for (int i = 0; i < 5 && ok; i++) {
    if (!sz[i]) continue;
    if (!copy)
      d[i] = src[i];
    else if ((ok = (r->owned[i] = be->alloc(sz[i])) != NULL))
      be->upload(r->owned[i], src[i], sz[i]), d[i] = r->owned[i];
  }
  r->x = d[0], r->ptr = d[1], r->ind = d[2], r->val = d[3], r->y = d[4];
  dist_allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, dist_comm(), "resident batch check");
  if (!ok) {
    batch_resident_free(r, be);
    log_info(
        "data: train batches staged per step through host memory (out of device memory for the %.1f MiB "
        "shard)\n",
        most);
    return;
  }
  r->on = 1;
  if (copy)
    log_info("data: train shard resident on the device (%.1f MiB per rank), batches gathered there\n", most);
  else
    log_info("data: train shard in host memory (%.1f MiB per rank), batches gathered by the CPU backend\n", most);
}

/* The batch of local-block rows `rows` (global ids) gathered by the backend from the resident
 * shard into the stage's device buffers; only the row indices (and CSR row offsets) are
 * uploaded. */
model_batch batch_resident_rows(const batch_resident *r, const batch_stage *s, const backend_ops *be,
                                const data_block *b, const int64_t *rows, int64_t n) {
  int64_t *idx = r->hidx, *ptr = r->hidx + n;
  size_t words = (size_t)n;
  for (int64_t i = 0; i < n; i++) idx[i] = rows[i] - b->begin;
  if (s->sparse) {
    ptr[0] = 0;
    for (int64_t i = 0; i < n; i++) ptr[i + 1] = ptr[i] + b->indptr[idx[i] + 1] - b->indptr[idx[i]];
    words += (size_t)n + 1;
  }
  if (be->kind != BACKEND_CPU) be->upload_async(r->didx, r->hidx, sizeof(int64_t) * words);
  model_batch mb = {.rows = (int)n, .y = s->dy};
  be->gather_rows(s->dy, r->y, r->didx, (int)n, 1);
  if (s->sparse) {
    be->gather_csr(s->dind, s->dval, r->didx + n, r->ptr, r->ind, r->val, r->didx, (int)n);
    mb.indptr = r->didx + n, mb.indices = s->dind, mb.values = s->dval;
  } else {
    be->gather_rows(s->dx, r->x, r->didx, (int)n, s->cols);
    mb.x = s->dx;
  }
  return mb;
}
