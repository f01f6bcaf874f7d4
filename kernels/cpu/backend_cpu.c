/* backend_cpu.c — CPU backend on OpenBLAS (see src/backend.h): device description for now; the
 * trainer's GEMM, sparse and elementwise kernels land here beside their CUDA twins. */
#include <cblas.h>
#include <stdio.h>

#include "backend.h"

int backend_cpu_info(backend_device_info *info) {
  snprintf(info->name, sizeof info->name, "%s (%d threads)", openblas_get_config(),
           openblas_get_num_threads());
  info->memory_bytes = 0;
  return 0;
}
