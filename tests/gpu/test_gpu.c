/* test_gpu.c — GPU backend smoke test: device discovery through src/backend.h.
 * Exit 77 (ctest SKIP) with a clear message when the build has no CUDA or no GPU is present;
 * with a GPU, every device must describe itself (name, memory, compute capability >= 7.0). */
#include <stdio.h>

#include "backend.h"
#include "log.h"

int main(void) {
  if (!backend_cuda_built()) {
    printf("SKIP: dptrain was built without the CUDA backend (DPT_CUDA=OFF or no nvcc)\n");
    return 77;
  }
  const char *why = NULL;
  int n = backend_cuda_device_count(&why);
  if (n == 0) {
    printf("SKIP: no usable GPU: %s\n", why ? why : "unknown reason");
    return 77;
  }
  int bad = 0;
  for (int i = 0; i < n; i++) {
    backend_device_info d;
    if (backend_device_info_get(BACKEND_CUDA, i, &d) != 0) {
      fprintf(stderr, "device %d: %s\n", i, log_last_error());
      bad++;
      continue;
    }
    printf("cuda:%d %s %.1f GiB sm_%d%d\n", i, d.name, (double)d.memory_bytes / (1 << 30),
           d.compute_major, d.compute_minor);
    if (d.memory_bytes == 0 || d.compute_major < 7) bad++;
  }
  return bad ? 1 : 0;
}
