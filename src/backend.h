/* backend.h — THE seam between host logic (src/) and compute (kernels/cpu, kernels/cuda).
 *
 * src/ never includes CUDA headers: everything device-specific is reached through this header.
 * Today it holds device discovery; the trainer adds memory, GEMM, sparse products, elementwise
 * and reduction kernels here, implemented once per backend and checked against the CPU one. */
#ifndef DPT_BACKEND_H
#define DPT_BACKEND_H

#include <stddef.h>

typedef enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

typedef struct backend_device_info {
  char name[128];      /* e.g. "OpenBLAS 0.3.21 (2 threads)" or "NVIDIA H100 80GB HBM3" */
  size_t memory_bytes; /* device memory (0 for the CPU backend) */
  int compute_major, compute_minor;
} backend_device_info;

/* 1 when this build has the CUDA backend module (DPT_CUDA on at configure time). */
int backend_cuda_built(void);

/* Number of usable CUDA devices: 0 when built without CUDA, when the module libdpt_cuda.so or a
 * CUDA library cannot be loaded, when no driver is loaded or when no GPU is present (never an
 * error). When the count is 0 and why != NULL, *why says why. The first call loads the module. */
int backend_cuda_device_count(const char **why);

/* Describe the CPU backend (BLAS build and threads). Returns 0. */
int backend_cpu_info(backend_device_info *info);

/* Describe device `index` of backend kind. Returns 0, or -1 with log_fail. */
int backend_device_info_get(backend_kind kind, int index, backend_device_info *info);

#endif
