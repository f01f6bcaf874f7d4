/* nccl.cu — the NCCL communicator of the module (one per process) and the in-place all-reduce
 * on the communication stream (backend_cuda_api.h). Errors come back as -1 with a message that
 * names the call, NCCL's error string and NCCL's own last-error detail; ZeRO-1's reduce-scatter and
 * all-gather the same way, on the same stream; the host decides how to
 * stop the job (it aborts every rank, naming the failing one).
 * For ops that sum inside themselves (pca_apply_sum): a double sum on the compute stream, and a
 * wait for it that polls NCCL's error state and gives up after the timeout given to nccl_init
 * (the host's DPT_TIMEOUT; fatal, like any failure inside an op). */
#include <nccl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cuda_common.cuh"

static_assert(sizeof(ncclUniqueId) == BACKEND_CUDA_NCCL_ID_BYTES, "NCCL unique id size changed");

static ncclComm_t g_comm;
static int g_nranks, g_rank;
static double g_timeout_s; /* the bound of cuda_nccl_wait_compute (0: none), from nccl_init */

/* -1 with *why = "CALL [rank R of N]: NCCL error string (detail)" */
static int nccl_fail(const char **why, const char *call, ncclResult_t r) {
  const char *detail = ncclGetLastError(g_comm);
  const int has = detail && *detail;
  char where[64] = "";
  if (g_comm) snprintf(where, sizeof where, " [rank %d of %d]", g_rank, g_nranks);
  if (why)
    *why = cuda_why("%s%s: NCCL error: %s%s%s%s", call, where, ncclGetErrorString(r), has ? " (" : "",
                    has ? detail : "", has ? ")" : "");
  return -1;
}

#define NCCL_TRY(call)                                                         \
  do {                                                                         \
    ncclResult_t nccl_try_r_ = (call);                                         \
    if (nccl_try_r_ != ncclSuccess) return nccl_fail(why, #call, nccl_try_r_); \
  } while (0)

static int need_ready(const char **why) {
  if (g_cuda.ready) return 0;
  if (why) *why = "the CUDA backend is not set up on a device yet (call ops() first)";
  return -1;
}

/* Abort the communicator without waiting for the other ranks (error paths). */
static void nccl_abort_comm(void) {
  if (!g_comm) return;
  ncclCommAbort(g_comm);
  g_comm = NULL;
}

int cuda_nccl_get_id(void *id, const char **why) {
  if (!id) {
    if (why) *why = "nccl_get_id: NULL id buffer";
    return -1;
  }
  ncclUniqueId u;
  NCCL_TRY(ncclGetUniqueId(&u));
  memcpy(id, &u, sizeof u);
  return 0;
}

int cuda_nccl_init(const void *id, int nranks, int rank, double timeout_s, const char **why) {
  if (need_ready(why)) return -1;
  if (g_comm) {
    if (why) *why = "nccl_init: a communicator already exists (nccl_destroy it first)";
    return -1;
  }
  if (!id || nranks < 1 || rank < 0 || rank >= nranks) {
    if (why) *why = cuda_why("nccl_init: bad arguments (rank %d of %d%s)", rank, nranks, id ? "" : ", NULL id");
    return -1;
  }
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  CUDA_CHECK(cudaSetDevice(g_cuda.device));
  ncclComm_t c = NULL;
  ncclResult_t r = ncclCommInitRank(&c, nranks, u, rank);
  if (r != ncclSuccess) {
    const char *detail = c ? ncclGetLastError(c) : ncclGetLastError(NULL);
    if (why)
      *why = cuda_why("ncclCommInitRank(rank %d of %d): NCCL error: %s%s%s%s", rank, nranks, ncclGetErrorString(r),
                      detail && *detail ? " (" : "", detail && *detail ? detail : "", detail && *detail ? ")" : "");
    if (c) ncclCommAbort(c);
    return -1;
  }
  g_comm = c;
  g_nranks = nranks;
  g_rank = rank;
  g_timeout_s = timeout_s > 0 ? timeout_s : 0;
  return 0;
}

/* -1 with *why when no communicator has been joined yet. */
static int need_comm(const char *call, const char **why) {
  if (g_comm) return 0;
  if (why) *why = cuda_why("%s: no communicator (nccl_init first)", call);
  return -1;
}

/* The queued NCCL call's CUDA launch error, if any (-1 with *why naming the call). */
static int nccl_launched(const char *call, const char **why) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return 0;
  if (why) *why = cuda_why("%s: CUDA error: %s", call, cudaGetErrorString(e));
  return -1;
}

int cuda_nccl_allreduce_sum(float *x, size_t n, const char **why) {
  if (need_comm("nccl_allreduce_sum", why)) return -1;
  if (n == 0) return 0;
  NCCL_TRY(ncclAllReduce(x, x, n, ncclFloat, ncclSum, g_comm, g_cuda.comm));
  return nccl_launched("ncclAllReduce", why);
}

int cuda_nccl_reduce_scatter_sum(const float *x, float *slice, size_t count, const char **why) {
  if (need_comm("nccl_reduce_scatter_sum", why)) return -1;
  if (count == 0) return 0;
  NCCL_TRY(ncclReduceScatter(x, slice, count, ncclFloat, ncclSum, g_comm, g_cuda.comm));
  return nccl_launched("ncclReduceScatter", why);
}

int cuda_nccl_all_gather(const float *slice, float *x, size_t count, const char **why) {
  if (need_comm("nccl_all_gather", why)) return -1;
  if (count == 0) return 0;
  NCCL_TRY(ncclAllGather(slice, x, count, ncclFloat, g_comm, g_cuda.comm));
  return nccl_launched("ncclAllGather", why);
}

int cuda_nccl_check(const char **why) {
  if (!g_comm) return 0;
  ncclResult_t async = ncclSuccess;
  NCCL_TRY(ncclCommGetAsyncError(g_comm, &async));
  if (async != ncclSuccess && async != ncclInProgress)
    return nccl_fail(why, "NCCL communicator (asynchronous error)", async);
  return 0;
}

int cuda_nccl_destroy(int abort_comm, const char **why) {
  if (!g_comm) return 0;
  ncclComm_t c = g_comm;
  int rc = 0;
  if (abort_comm) {
    ncclCommAbort(c);
  } else {
    ncclResult_t r = ncclCommFinalize(c);
    if (r != ncclSuccess) rc = nccl_fail(why, "ncclCommFinalize", r);
    r = ncclCommDestroy(c);
    if (r != ncclSuccess && rc == 0) rc = nccl_fail(why, "ncclCommDestroy", r);
  }
  g_comm = NULL;
  g_nranks = g_rank = 0;
  return rc;
}

/* ---- sums inside the ops (pca_apply_sum) ----------------------------------------------------- */

void cuda_nccl_sum_compute(double *x, size_t n, const char *what) {
  if (!g_comm) cuda_fatal("%s: no NCCL communicator (the host joins one before the first sum)", what);
  ncclResult_t r = ncclAllReduce(x, x, n, ncclDouble, ncclSum, g_comm, g_cuda.compute);
  if (r != ncclSuccess) {
    const char *why = NULL;
    nccl_fail(&why, "ncclAllReduce", r);
    cuda_fatal("%s: %s", what, why);
  }
}

void cuda_nccl_wait_compute(const char *what) {
  const double limit = g_timeout_s;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    cudaError_t e = cudaStreamQuery(g_cuda.compute);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) cuda_fatal("%s: CUDA error: %s", what, cudaGetErrorString(e));
    cudaGetLastError(); /* "not ready" is recorded as the last error: clear it, or the next op's check aborts */
    const char *why = NULL;
    if (cuda_nccl_check(&why)) {
      nccl_abort_comm();
      cuda_fatal("%s: %s", what, why);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (limit > 0 && (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) > limit) {
      nccl_abort_comm();
      cuda_fatal("%s: the NCCL sum did not finish within %g s (DPT_TIMEOUT): a peer rank is hung or gone", what, limit);
    }
  }
}
