/* backend.c — backend discovery: the CPU backend is linked in, the CUDA backend module
 * (libdpt_cuda.so) is found and dlopen'ed on first use (see backend_cuda_api.h for why).
 *
 * Where the module is looked for, first hit wins: $DPT_CUDA_LIB; beside the running executable;
 * ../lib/dptrain/ relative to it (an installed layout); the dynamic loader's search path.
 * backend_get(BACKEND_CUDA) binds the process to device (local rank % devices) and gives the
 * module a fatal hook that names the rank and aborts the MPI job when an op fails on the GPU. */
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "backend_cuda_api.h"
#include "backend_nccl.h"
#include "buf.h"
#include "config.h"
#include "dist.h"
#include "log.h"

static const backend_cuda_api *g_cuda;
static int g_cuda_tried;
static char g_cuda_why[512];
static int g_cuda_device = -1;

#ifdef DPT_HAVE_CUDA
static void *try_open(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h && g_cuda_why[0] == '\0') snprintf(g_cuda_why, sizeof g_cuda_why, "%s", dlerror());
  return h;
}
#endif

/* Load the CUDA module once; NULL (g_cuda_why set) when it cannot be had. */
static const backend_cuda_api *cuda_api(void) {
  if (g_cuda_tried) return g_cuda;
  g_cuda_tried = 1;
#ifndef DPT_HAVE_CUDA
  snprintf(g_cuda_why, sizeof g_cuda_why, "dptrain was built without CUDA (DPT_CUDA=OFF or no nvcc at configure time)");
  return NULL;
#else
  void *h = NULL;
  const char *env = getenv("DPT_CUDA_LIB");
  if (env && *env) h = try_open(env);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (!h && n > 0) {
    exe[n] = '\0';
    const char *dir = dirname(exe);
    char path[4200];
    snprintf(path, sizeof path, "%s/libdpt_cuda.so", dir);
    if (access(path, F_OK) == 0) h = try_open(path);
    snprintf(path, sizeof path, "%s/../lib/dptrain/libdpt_cuda.so", dir);
    if (!h && access(path, F_OK) == 0) h = try_open(path);
  }
  if (!h) h = try_open("libdpt_cuda.so");
  if (!h) return NULL;
  const backend_cuda_api *(*get)(void) = NULL;
  *(void **)&get = dlsym(h, "dpt_cuda_api"); /* POSIX's idiom for a function from dlsym */
  const backend_cuda_api *api = get ? get() : NULL;
  if (!api || api->abi != BACKEND_CUDA_ABI) {
    snprintf(g_cuda_why, sizeof g_cuda_why, "libdpt_cuda.so is from another dptrain (ABI %d, want %d)",
             api ? api->abi : -1, BACKEND_CUDA_ABI);
    dlclose(h);
    return NULL;
  }
  g_cuda_why[0] = '\0';
  return g_cuda = api;
#endif
}

/* Do two ranks of comm drive the same GPU? NCCL refuses a communicator with two ranks on one
 * device, so say which up front. Collective; every rank gets the same answer, and when it is yes
 * the same log_fail line. */
static int gpu_shared(MPI_Comm comm, const backend_cuda_api *api) {
  enum { KEY = 320 };
  char mine[KEY] = {0}, host[MPI_MAX_PROCESSOR_NAME] = {0};
  int len = 0, size = 1;
  backend_device_info info = {0};
  const char *why = NULL;
  MPI_CHECK(MPI_Get_processor_name(host, &len));
  if (api->device_info(g_cuda_device, &info, &why) != 0 || !info.pci_bus_id[0])
    snprintf(info.pci_bus_id, sizeof info.pci_bus_id, "device %d", g_cuda_device);
  snprintf(mine, sizeof mine, "%.255s|%s", host, info.pci_bus_id);
  MPI_CHECK(MPI_Comm_size(comm, &size));
  char *all = xmalloc((size_t)size * KEY);
  dist_allgather(mine, KEY, MPI_CHAR, all, KEY, MPI_CHAR, comm, "device placement");
  int shared = 0;
  for (int i = 0; i < size && !shared; i++)
    for (int j = i + 1; j < size && !shared; j++)
      if (strcmp(all + (size_t)i * KEY, all + (size_t)j * KEY) == 0) {
        char *bus = strchr(all + (size_t)i * KEY, '|');
        *bus = '\0';
        log_fail("NCCL: ranks %d and %d share GPU %s on %s (NCCL needs one GPU per rank)", i, j, bus + 1,
                 all + (size_t)i * KEY);
        shared = 1;
      }
  free(all);
  return shared;
}

const backend_cuda_api *backend_nccl_join(MPI_Comm comm) {
  const char *why = NULL;
  int rank = 0, size = 1, ok = 1;
  MPI_CHECK(MPI_Comm_rank(comm, &rank));
  MPI_CHECK(MPI_Comm_size(comm, &size));
  const backend_cuda_api *api = backend_cuda_module(&why);
  unsigned char id[BACKEND_CUDA_NCCL_ID_BYTES] = {0};
  if (!api) {
    log_fail("NCCL: %s", why ? why : "no CUDA module");
    ok = 0;
  } else if (rank == 0 && api->nccl_get_id(id, &why) != 0) {
    log_fail("NCCL: %s", why);
    ok = 0;
  }
  if (!dist_agree(comm, ok)) return NULL;
  if (gpu_shared(comm, api)) return NULL;
  dist_bcast(id, (int)sizeof id, MPI_BYTE, 0, comm, "NCCL id");
  if (api->nccl_init(id, size, rank, dist_timeout(), &why) != 0) {
    log_fail("NCCL: %s", why);
    ok = 0;
  }
  if (dist_agree(comm, ok)) return api;
  if (ok) api->nccl_destroy(1, &why); /* the others failed: do not keep a half-made one */
  return NULL;
}

const backend_cuda_api *backend_cuda_module(const char **why) {
  const backend_cuda_api *api = cuda_api();
  if (!api && why) *why = g_cuda_why;
  return api;
}

int backend_cuda_device(void) { return g_cuda_device; }

int backend_device_index(const backend_ops *be) { return be->kind == BACKEND_CUDA ? g_cuda_device : 0; }

int backend_cuda_built(void) {
#ifdef DPT_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

/* Is the NVIDIA driver's library there? Without it no GPU is usable, and loading the module
 * (mapping cuBLAS and NCCL is a noticeable start-up cost) would be wasted on every CPU-only `device = auto` run. */
static int driver_present(const char **why) {
#ifdef DPT_HAVE_CUDA
  static int present = -1;
  static char msg[400];
  if (present < 0) {
    void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL); /* kept: cudart opens it again */
    present = h != NULL;
    if (!h) snprintf(msg, sizeof msg, "no NVIDIA driver (%s)", dlerror());
  }
  if (!present && why) *why = msg;
  return present;
#else
  (void)why;
  return 1;
#endif
}

int backend_cuda_device_count(const char **why) {
  if (!driver_present(why)) return 0;
  const backend_cuda_api *api = cuda_api();
  if (!api) {
    if (why) *why = g_cuda_why;
    return 0;
  }
  return api->device_count(why);
}

int backend_device_info_get(backend_kind kind, int index, backend_device_info *info) {
  memset(info, 0, sizeof *info);
  if (kind == BACKEND_CPU) return backend_cpu_info(info);
  const backend_cuda_api *api = cuda_api();
  if (!api) return log_fail("CUDA backend unavailable: %s", g_cuda_why);
  const char *why = NULL;
  if (api->device_info(index, info, &why) != 0)
    return log_fail("CUDA device %d: %s", index, why ? why : "unknown error");
  return 0;
}

/* The module's fatal hook: an op failed on the GPU (the message is "FILE:LINE: CALL: error").
 * One line naming this rank, then the whole job stops: a rank that exits alone would leave the
 * others waiting in a collective. */
static _Noreturn void cuda_fatal(const char *msg) {
  log_error("CUDA device %d: %s", g_cuda_device, msg);
  fflush(NULL);
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Finalized(&fin);
  if (inited && !fin && dist_size() > 1) MPI_Abort(MPI_COMM_WORLD, LOG_EXIT_RUNTIME);
  exit(LOG_EXIT_RUNTIME);
}

const backend_ops *backend_get(backend_kind kind) {
  if (kind == BACKEND_CPU) return backend_cpu();
  const char *why = NULL;
  int n = backend_cuda_device_count(&why);
  if (n == 0) {
    log_fail("no CUDA device: %s", why ? why : "unknown reason");
    return NULL;
  }
  /* one device per rank of a node: local rank modulo the devices this process sees; more ranks
   * than devices on a node only when asked for (DPT_SHARE_GPUS=1: ranks then share devices) */
  const char *share = getenv("DPT_SHARE_GPUS");
  if (dist_local_size() > n && !(share && strcmp(share, "1") == 0)) {
    log_fail(
        "%d ranks on this node but %d GPU%s: start at most one rank per GPU (or set DPT_SHARE_GPUS=1 to share "
        "them; the gradient sums then go through host memory)",
        dist_local_size(), n, n == 1 ? "" : "s");
    return NULL;
  }
  int device = dist_local_rank() % n;
  const char *tf32 = getenv("DPT_CUDA_TF32");
  unsigned flags = tf32 && *tf32 && strcmp(tf32, "0") != 0 ? BACKEND_CUDA_TF32 : 0;
  why = NULL;
  const backend_ops *ops = g_cuda->ops(device, flags, cuda_fatal, &why);
  if (!ops) {
    log_fail("CUDA device %d: %s", device, why ? why : "set-up failed");
    return NULL;
  }
  g_cuda_device = device;
  return ops;
}

const backend_ops *backend_choose(backend_device device, const char *key) {
  const char *why = NULL;
  if (device == BACKEND_DEVICE_CPU) return backend_cpu();
  if (device == BACKEND_DEVICE_CUDA) {
    const backend_ops *be = backend_get(BACKEND_CUDA);
    if (!be) {
      char p[96];
      snprintf(p, sizeof p, "%s = cuda", key);
      log_prefix(p);
    }
    return be;
  }
  /* auto: CUDA only when every rank has a usable GPU (a node without one, or more ranks than
   * GPUs somewhere, would otherwise mix backends and the collectives would not match). The
   * agreement is collective over the world: every rank calls backend_choose. */
  const backend_ops *be = NULL;
  if (backend_cuda_device_count(&why) > 0) {
    be = backend_get(BACKEND_CUDA);
    if (!be) why = log_last_error();
  }
  int mine = be != NULL, all = mine;
  if (dist_size() > 1) dist_allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, dist_comm(), "backend choice");
  if (be && all) return be;
  if (be) why = "not every rank has a usable GPU, so every rank computes on the CPU";
  log_info("%s = auto: cpu (%s)\n", key, why ? why : "no GPU");
  return backend_cpu();
}

backend_device backend_device_of_config(int config_device) {
  switch ((enum config_device)config_device) {
    case CONFIG_DEVICE_AUTO:
      return BACKEND_DEVICE_AUTO;
    case CONFIG_DEVICE_CPU:
      return BACKEND_DEVICE_CPU;
    case CONFIG_DEVICE_CUDA:
      return BACKEND_DEVICE_CUDA;
  }
  config_bad_enum("device", config_device);
}
