/* backend_cuda_api.h — the table of entry points that the CUDA backend module exports.
 *
 * The CUDA backend is built as its own shared module (libdpt_cuda.so, kernels/cuda) and loaded
 * with dlopen on first use (src/backend.c), as ggml loads its backends: a dptrain that never touches
 * a GPU does not pay the ~0.6 s it takes to map cuBLAS/NCCL, and the same binary runs on CPU nodes
 * where no CUDA library is installed. Plain C types only: no CUDA header crosses this seam. */
#ifndef DPT_BACKEND_CUDA_API_H
#define DPT_BACKEND_CUDA_API_H

#include "backend.h"

/* Bumped whenever the table changes; the loader refuses a module with another value. */
#define BACKEND_CUDA_ABI 1

typedef struct backend_cuda_api {
  int abi; /* BACKEND_CUDA_ABI of the module */
  /* Number of usable devices (0 with *why set when none). */
  int (*device_count)(const char **why);
  /* Describe device `index`: 0, or -1 with *why set. */
  int (*device_info)(int index, backend_device_info *info, const char **why);
} backend_cuda_api;

/* The one symbol libdpt_cuda.so exports. */
const backend_cuda_api *dpt_cuda_api(void);

#endif
