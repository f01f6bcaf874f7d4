/* backend_cuda.cu — the CUDA backend module libdpt_cuda.so: device discovery, binding a process
 * to its device (streams, cuBLAS, scratch), memory, events, and the two tables it hands out —
 * backend_ops (src/backend/backend.h; the op families live in gemm.cu, sparse.cu, act.cu, loss.cu, pca.cu,
 * optim.cu, gather.cu) and backend_cuda_api (src/backend/backend_cuda_api.h; NCCL in nccl.cu). Loaded by
 * src/backend/backend.c with dlopen; dpt_cuda_api is its only exported symbol. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nccl.h>

#include "cuda_common.cuh"

cuda_ctx g_cuda = {};

static char g_why[512];

const char *cuda_why(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_why, sizeof g_why, fmt, ap);
  va_end(ap);
  return g_why;
}

void cuda_fatal(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (g_cuda.fatal) g_cuda.fatal(msg); /* does not return */
  fprintf(stderr, "dptrain: %s\n", msg);
  exit(1);
}

/* ---- discovery ------------------------------------------------------------------------------- */

static int cuda_device_count(const char **why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cuda_why("no NVIDIA driver or GPU usable (CUDA: %s)", cudaGetErrorString(e));
    cudaGetLastError(); /* clear the error so later calls start clean */
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device present";
  return n;
}

static int cuda_device_info(int index, backend_device_info *info, const char **why) {
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, index);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();
    return -1;
  }
  int nccl = 0, cublas = 0;
  ncclGetVersion(&nccl);
  cublasGetProperty(MAJOR_VERSION, &cublas);
  snprintf(info->name, sizeof info->name, "%.96s (cuBLAS %d, NCCL %d)", p.name, cublas, nccl);
  info->memory_bytes = p.totalGlobalMem;
  info->compute_major = p.major;
  info->compute_minor = p.minor;
  if (cudaDeviceGetPCIBusId(info->pci_bus_id, (int)sizeof info->pci_bus_id, index) != cudaSuccess) {
    info->pci_bus_id[0] = '\0';
    cudaGetLastError();
  }
  return 0;
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* Zeroed device memory; NULL (not fatal) when the device is out of memory, so callers can say
 * what did not fit. */
void *cuda_try_malloc(size_t bytes) {
  void *p = NULL;
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
    cudaGetLastError(); /* clear the error, so that the next call does not report it */
    return NULL;
  }
  return p;
}

static void *cuda_alloc(size_t bytes) {
  void *p = cuda_try_malloc(bytes);
  if (p) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 1, g_cuda.compute));
  return p;
}

static void cuda_free(void *p) {
  if (!p) return;
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute)); /* no queued op may still use it */
  CUDA_CHECK(cudaFree(p));
}

/* Copies are ordered on the compute stream and complete on return (the host buffer may be
 * reused at once; a download's data is there). */
static void cuda_copy(void *dst, const void *src, size_t bytes) { /* upload and download alike */
  if (!bytes) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, g_cuda.compute));
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
}

/* Page-locked host memory (NULL when the driver refuses: the caller falls back to malloc). */
static void *cuda_host_alloc(size_t bytes) {
  void *p = NULL;
  if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
    cudaGetLastError();
    return NULL;
  }
  memset(p, 0, bytes);
  return p;
}

static void cuda_host_free(void *p) {
  if (!p) return;
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute)); /* no queued copy may still read it */
  CUDA_CHECK(cudaFreeHost(p));
}

/* Queued on the compute stream after the ops before it: no host wait. */
void cuda_upload_async(void *dst, const void *src, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_cuda.compute));
  if (g_cuda.debug_sync) CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
}

/* Designated initialisers, one slot per line, in backend.h's order (src/backend/backend.h). */
static const backend_pca_ops k_cuda_pca = {
    .create = cuda_pca_create,
    .apply = cuda_pca_apply,
    .fwd = cuda_pca_fwd,
    .apply_sum = cuda_pca_apply_sum, /* optional slot: the CUDA backend has it (NCCL) */
    .gram = cuda_pca_gram,
    .destroy = cuda_pca_destroy,
};

static const backend_ops k_cuda_ops = {
    .kind = BACKEND_CUDA,
    /* memory and staging */
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_copy,
    .download = cuda_copy,
    .fill = cuda_fill,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .upload_async = cuda_upload_async,
    /* training: products */
    .gemm = cuda_gemm,
    .gemm_bf16 = cuda_gemm_bf16,
    .spmm = cuda_spmm,
    .spmm_t = cuda_spmm_t,
    /* training: elementwise, loss, reductions, update */
    .bias_act = cuda_bias_act,
    .act_backward = cuda_act_backward,
    .bias_grad = cuda_bias_grad,
    .act_bias_backward = cuda_act_bias_backward,
    .softmax_xent = cuda_softmax_xent,
    .dropout = cuda_dropout,
    .mul = cuda_mul,
    .scale = cuda_scale,
    .add = cuda_add,
    .sumsq = cuda_sumsq,
    .add_sumsq = NULL, /* optional: the host strategies' sums only */
    .optim_update = cuda_optim_update,
    .max_norm = cuda_max_norm,
    /* trainer data path */
    .gather_rows = cuda_gather_rows,
    .gather_csr = cuda_gather_csr,
    /* PCA */
    .pca = &k_cuda_pca,
};

/* ---- binding to a device --------------------------------------------------------------------- */

/* A failing set-up call: *why names it, the error is cleared, and set-up unwinds at fail. */
#define INIT_TRY(call)                                                                                \
  do {                                                                                                \
    cudaError_t init_e_ = (call);                                                                     \
    if (init_e_ != cudaSuccess) {                                                                     \
      if (why) *why = cuda_why("CUDA device %d: %s: %s", device, #call, cudaGetErrorString(init_e_)); \
      cudaGetLastError();                                                                             \
      goto fail;                                                                                      \
    }                                                                                                 \
  } while (0)

/* Release whatever a failed cuda_ops_init created (each field NULL when not made), so that a
 * later call starts clean. */
static void cuda_ops_release(void) {
  if (g_cuda.blas) cublasDestroy(g_cuda.blas);
  if (g_cuda.res_host_i) cudaFreeHost(g_cuda.res_host_i);
  if (g_cuda.res_host) cudaFreeHost(g_cuda.res_host);
  if (g_cuda.red_i) cudaFree(g_cuda.red_i);
  if (g_cuda.red_d) cudaFree(g_cuda.red_d);
  if (g_cuda.comm) cudaStreamDestroy(g_cuda.comm);
  if (g_cuda.compute) cudaStreamDestroy(g_cuda.compute);
  cudaGetLastError();
  g_cuda = cuda_ctx{};
}

static const backend_ops *cuda_ops_init(int device, unsigned flags, void (*fatal)(const char *msg), const char **why) {
  if (g_cuda.ready) {
    if (device != g_cuda.device) {
      if (why) *why = cuda_why("the CUDA backend is bound to device %d already (asked for %d)", g_cuda.device, device);
      return NULL;
    }
    if (fatal) g_cuda.fatal = fatal;
    return &k_cuda_ops;
  }
  const int n = cuda_device_count(why);
  if (n == 0) return NULL;
  if (device < 0 || device >= n) {
    if (why) *why = cuda_why("CUDA device %d does not exist (%d present)", device, n);
    return NULL;
  }
  cudaDeviceProp p;
  cublasStatus_t s;
  INIT_TRY(cudaGetDeviceProperties(&p, device));
  if (p.major < 7) {
    if (why)
      *why = cuda_why("CUDA device %d (%s) has compute capability %d.%d; 7.0 or newer is needed", device, p.name,
                      p.major, p.minor);
    goto fail;
  }
  INIT_TRY(cudaSetDevice(device));
  INIT_TRY(cudaStreamCreateWithFlags(&g_cuda.compute, cudaStreamNonBlocking));
  INIT_TRY(cudaStreamCreateWithFlags(&g_cuda.comm, cudaStreamNonBlocking));
  INIT_TRY(cudaMalloc(&g_cuda.red_d, sizeof(double) * (RED_BLOCKS + 1)));
  INIT_TRY(cudaMalloc(&g_cuda.red_i, sizeof(int) * (RED_BLOCKS + 1)));
  INIT_TRY(cudaMallocHost(&g_cuda.res_host, sizeof(double)));
  INIT_TRY(cudaMallocHost(&g_cuda.res_host_i, sizeof(int)));
  s = cublasCreate(&g_cuda.blas);
  if (s != CUBLAS_STATUS_SUCCESS) {
    g_cuda.blas = NULL;
    if (why) *why = cuda_why("CUDA device %d: cublasCreate: %s", device, cublasGetStatusString(s));
    goto fail;
  }
  s = cublasSetStream(g_cuda.blas, g_cuda.compute);
  if (s != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = cuda_why("CUDA device %d: cublasSetStream: %s", device, cublasGetStatusString(s));
    goto fail;
  }
  s = cublasSetMathMode(g_cuda.blas, (flags & BACKEND_CUDA_TF32) ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  if (s != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = cuda_why("CUDA device %d: cublasSetMathMode: %s", device, cublasGetStatusString(s));
    goto fail;
  }
  {
    const char *sync = getenv("DPT_CUDA_SYNC");
    g_cuda.debug_sync = sync && *sync && strcmp(sync, "0") != 0;
  }
  g_cuda.tf32 = (flags & BACKEND_CUDA_TF32) != 0;
  g_cuda.fatal = fatal;
  g_cuda.device = device;
  g_cuda.ready = 1;
  return &k_cuda_ops;
fail:
  cuda_ops_release();
  return NULL;
}

/* ---- streams and events ---------------------------------------------------------------------- */

static int need_ready(const char **why) {
  if (g_cuda.ready) return 0;
  if (why) *why = "the CUDA backend is not set up on a device yet (call ops() first)";
  return -1;
}

static cudaStream_t stream_of(int stream) { return stream == BACKEND_CUDA_STREAM_COMM ? g_cuda.comm : g_cuda.compute; }

static int bad_stream(int stream, const char **why) {
  if (stream == BACKEND_CUDA_STREAM_COMPUTE || stream == BACKEND_CUDA_STREAM_COMM) return 0;
  if (why) *why = cuda_why("unknown stream %d", stream);
  return -1;
}

static int cuda_result(cudaError_t e, const char *what, const char **why) {
  if (e == cudaSuccess) return 0;
  if (why) *why = cuda_why("%s: CUDA error: %s", what, cudaGetErrorString(e));
  return -1;
}

static int cuda_sync(int stream, const char **why) {
  if (need_ready(why) || bad_stream(stream, why)) return -1;
  return cuda_result(cudaStreamSynchronize(stream_of(stream)), "cudaStreamSynchronize", why);
}

static void *cuda_event_create(const char **why) {
  if (need_ready(why)) return NULL;
  cudaEvent_t ev = NULL;
  if (cuda_result(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate", why)) return NULL;
  return (void *)ev;
}

static void cuda_event_destroy(void *ev) {
  if (ev) cudaEventDestroy((cudaEvent_t)ev);
}

static int cuda_event_record(void *ev, int stream, const char **why) {
  if (need_ready(why) || bad_stream(stream, why)) return -1;
  return cuda_result(cudaEventRecord((cudaEvent_t)ev, stream_of(stream)), "cudaEventRecord", why);
}

static int cuda_stream_wait(int stream, void *ev, const char **why) {
  if (need_ready(why) || bad_stream(stream, why)) return -1;
  return cuda_result(cudaStreamWaitEvent(stream_of(stream), (cudaEvent_t)ev, 0), "cudaStreamWaitEvent", why);
}

static int cuda_event_query(void *ev, const char **why) {
  if (need_ready(why)) return -1;
  cudaError_t e = cudaEventQuery((cudaEvent_t)ev);
  if (e == cudaSuccess) return 1;
  if (e == cudaErrorNotReady) {
    cudaGetLastError(); /* "not ready" is no error: keep it out of the next launch check */
    return 0;
  }
  return cuda_result(e, "cudaEventQuery", why);
}

/* ---- the exported table ---------------------------------------------------------------------- */

static const backend_cuda_api k_api = {
    .abi = BACKEND_CUDA_ABI,
    .device_count = cuda_device_count,
    .device_info = cuda_device_info,
    .ops = cuda_ops_init,
    .sync = cuda_sync,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait = cuda_stream_wait,
    .event_query = cuda_event_query,
    .nccl_get_id = cuda_nccl_get_id,
    .nccl_init = cuda_nccl_init,
    .nccl_allreduce_sum = cuda_nccl_allreduce_sum,
    .nccl_reduce_scatter_sum = cuda_nccl_reduce_scatter_sum,
    .nccl_all_gather = cuda_nccl_all_gather,
    .nccl_check = cuda_nccl_check,
    .nccl_destroy = cuda_nccl_destroy,
};

extern "C" __attribute__((visibility("default"))) const backend_cuda_api *dpt_cuda_api(void) { return &k_api; }
