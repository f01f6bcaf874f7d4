/* backend_cuda_api.h — the table of entry points that the CUDA backend module exports.
 *
 * The CUDA backend is built as its own shared module (libdpt_cuda.so, kernels/cuda) and loaded
 * with dlopen on first use (src/backend/backend.c), as ggml loads its backends: a dptrain that never touches
 * a GPU does not pay the start-up time it takes to map cuBLAS/NCCL, and the same binary runs on CPU nodes
 * where no CUDA library is installed. Plain C types only: no CUDA header crosses this seam.
 *
 * One process drives one device. The module keeps two streams on it: the compute stream, where
 * every op of the backend_ops table runs in call order, and the communication stream, where the
 * NCCL all-reduce runs. Work is ordered between the two only through events (event_record /
 * stream_wait), which is what bucketed all-reduce during backward needs:
 *
 *   backward of layer l on compute ──record(ev_l, COMPUTE)──▶ stream_wait(COMM, ev_l)
 *     ──▶ nccl_allreduce_sum(bucket l) on COMM ──▶ ... ──record(done, COMM)──▶
 *   stream_wait(COMPUTE, done) ──▶ optim_update on compute
 *
 * Error convention: the functions that return int give 0 on success and -1 on failure with *why
 * set to one line (valid until the next failing call into the module); event_query gives 1 / 0 /
 * -1. Failures inside the ops of backend_ops are fatal instead (the op has no way to report): the
 * module calls the `fatal` hook given to ops() with "FILE:LINE: CALL: message", which must not
 * return (src/backend/backend.c prints it with the rank and aborts the MPI job). */
#ifndef DPT_BACKEND_CUDA_API_H
#define DPT_BACKEND_CUDA_API_H

#include <stddef.h>

#include "backend.h"

/* Bumped whenever the table changes; the loader refuses a module with another value. */
#define BACKEND_CUDA_ABI 11

/* Size of an NCCL unique id (the caller's buffer for nccl_get_id / nccl_init). */
#define BACKEND_CUDA_NCCL_ID_BYTES 128

/* Flags of ops(). TF32: let cuBLAS use TF32 tensor cores for the FP32 GEMMs (faster, ~1e-3
 * relative; off by default, so that results match the CPU backend to fp32 rounding). */
enum { BACKEND_CUDA_TF32 = 1 };

/* The module's streams, for event_record / stream_wait / sync. */
typedef enum backend_cuda_stream { BACKEND_CUDA_STREAM_COMPUTE = 0, BACKEND_CUDA_STREAM_COMM = 1 } backend_cuda_stream;

typedef struct backend_cuda_api {
  int abi; /* BACKEND_CUDA_ABI of the module */
  /* Number of usable devices (0 with *why set when none). */
  int (*device_count)(const char **why);
  /* Describe device `index`: 0, or -1 with *why set. */
  int (*device_info)(int index, backend_device_info *info, const char **why);

  /* Bind the process to `device` (cudaSetDevice), create the streams, the cuBLAS handle and the
   * reduction scratch, and return the ops table (its pointers are device pointers of that
   * device). flags: BACKEND_CUDA_*. fatal: called with one line when an op fails; must not
   * return (NULL: print to stderr and exit(1)). A second call with the same device returns the
   * same table; another device is refused. NULL with *why on failure. */
  const backend_ops *(*ops)(int device, unsigned flags, void (*fatal)(const char *msg), const char **why);
  /* Wait on the host until everything queued on `stream` has finished. */
  int (*sync)(int stream, const char **why);

  /* Events between the streams (need ops() first). event_create: an opaque event, NULL with
   * *why on failure. event_record: mark the current end of `stream`. stream_wait: work queued
   * on `stream` afterwards waits for the event (the host does not wait). event_query: 1 when
   * the work before the event has finished, 0 while it is pending, -1 on an error. */
  void *(*event_create)(const char **why);
  void (*event_destroy)(void *ev);
  int (*event_record)(void *ev, int stream, const char **why);
  int (*stream_wait)(int stream, void *ev, const char **why);
  int (*event_query)(void *ev, const char **why);

  /* NCCL (need ops() first). nccl_get_id: a new unique id into id[BACKEND_CUDA_NCCL_ID_BYTES]
   * (one rank makes it and broadcasts it, e.g. with MPI_Bcast). nccl_init: join the
   * communicator of nranks ranks as `rank` (collective over those ranks; blocks until all have
   * joined); timeout_s (> 0; 0 = none) bounds the waits of ops that sum inside themselves
   * (pca_apply_sum) as DPT_NCCL_TIMEOUT bounds the host's. nccl_allreduce_sum: in-place sum of x[n] (device memory) over the ranks, queued on
   * the communication stream — order it after the compute that wrote x with event_record +
   * stream_wait. nccl_reduce_scatter_sum (ZeRO-1): x[ranks * count] summed over the ranks, this
   * rank's block x[rank * count, (rank + 1) * count) of the sum into slice[count]; nccl_all_gather:
   * every rank's slice[count] into x[ranks * count] in rank order (in place when slice is
   * x + rank * count); both queued on the communication stream like nccl_allreduce_sum. nccl_check: the communicator's asynchronous error state (0 while healthy),
   * for polling while waiting. nccl_destroy: finalize (abort_comm = 0) or abort (abort_comm =
   * 1: on an error path, without waiting for the other ranks) and free the communicator. */
  int (*nccl_get_id)(void *id, const char **why);
  int (*nccl_init)(const void *id, int nranks, int rank, double timeout_s, const char **why);
  int (*nccl_allreduce_sum)(float *x, size_t n, const char **why);
  int (*nccl_reduce_scatter_sum)(const float *x, float *slice, size_t count, const char **why);
  int (*nccl_all_gather)(const float *slice, float *x, size_t count, const char **why);
  int (*nccl_check)(const char **why);
  int (*nccl_destroy)(int abort_comm, const char **why);
} backend_cuda_api;

/* The one symbol libdpt_cuda.so exports. */
const backend_cuda_api *dpt_cuda_api(void);

/* Host side (src/backend/backend.c): the loaded module's table, loading it on first use; NULL with *why
 * set when the build has no CUDA or the module cannot be loaded. */
const backend_cuda_api *backend_cuda_module(const char **why);

/* Host side: the device backend_get(BACKEND_CUDA) bound this process to (local rank modulo the
 * device count), or -1 before. */
int backend_cuda_device(void);

#endif
