/* backend_cuda.cu — the CUDA backend module libdpt_cuda.so (cuBLAS, cuSPARSE, NCCL).
 * Device discovery for now; grows into one file per op family (gemm, act, loss, optim, sparse,
 * pca) behind the table of src/backend_cuda_api.h. Loaded by src/backend.c with dlopen. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend_cuda_api.h"
}

static int cuda_device_count(const char **why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    static char msg[256];
    snprintf(msg, sizeof msg, "no NVIDIA driver or GPU usable (CUDA: %s)", cudaGetErrorString(e));
    if (why) *why = msg;
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
    return -1;
  }
  int nccl = 0, cublas = 0;
  ncclGetVersion(&nccl);
  cublasGetProperty(MAJOR_VERSION, &cublas);
  snprintf(info->name, sizeof info->name, "%s (cuBLAS %d, NCCL %d)", p.name, cublas, nccl);
  info->memory_bytes = p.totalGlobalMem;
  info->compute_major = p.major;
  info->compute_minor = p.minor;
  return 0;
}

static const backend_cuda_api k_api = {BACKEND_CUDA_ABI, cuda_device_count, cuda_device_info};

extern "C" __attribute__((visibility("default"))) const backend_cuda_api *dpt_cuda_api(void) {
  return &k_api;
}
