/* main.c — the dptrain command: subcommand dispatch, MPI start-up where a command needs it, and
 * the one place that turns a recorded error into a message and an exit status (docs/design.md: 0 ok,
 * 2 usage or config error, 1 runtime error). */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "dist.h"
#include "info.h"
#include "log.h"
#include "lsa.h"
#include "pca.h"
#include "pca_pictures.h"
#include "predict.h"
#include "prep/prep.h"
#include "train.h"

static const char *const k_usage =
    "dptrain — data-parallel neural-network training and distributed PCA (MPI, HDF5, BLAS, CUDA)\n"
    "\n"
    "usage:\n"
    "  dptrain prep mnist   --src DIR --out data/mnist.h5\n"
    "  dptrain prep fashion --src DIR --out data/fashion.h5\n"
    "  dptrain prep spam    --src DIR --out data/spam.h5 [--min-df N] [--test-fraction F] [--seed S]\n"
    "  dptrain prep synth   --rows N --cols D --density P --rank R [--seed S] --out FILE.h5\n"
    "  dptrain train CONFIG.ini [section.key=value ...]   (under mpirun -np N, or alone)\n"
    "  dptrain eval  CONFIG.ini train.resume=CHECKPOINT.h5\n"
    "  dptrain pca   CONFIG.ini [section.key=value ...]\n"
    "  dptrain lsa   PCA.h5 [--data DATA.h5] [--near N] [--topics T] (--text WORDS | FILE...)\n"
    "  dptrain predict CHECKPOINT.h5 INPUT... [--format tsv|jsonl] [--top K] [--split test|train]\n"
    "  dptrain info  FILE.h5\n"
    "  dptrain version\n";

static int cmd_version(void) {
  backend_device_info cpu;
  backend_device_info_get(BACKEND_CPU, 0, &cpu);
  printf("dptrain %s\n  cpu: %s\n", DPT_VERSION, cpu.name);
  const char *why = NULL;
  int n = backend_cuda_device_count(&why);
  if (!backend_cuda_built())
    printf("  cuda: not built\n");
  else if (n == 0)
    printf("  cuda: built; no usable device (%s)\n", why ? why : "unknown");
  for (int i = 0; i < n; i++) {
    backend_device_info g;
    if (backend_device_info_get(BACKEND_CUDA, i, &g) == 0)
      printf("  cuda:%d: %s, %.1f GiB, sm_%d%d\n", i, g.name, (double)g.memory_bytes / (1 << 30), g.compute_major,
             g.compute_minor);
  }
  return LOG_EXIT_OK;
}

/* The subcommands that run under MPI (dist_init before, dist_finalize after). */
static int cmd_train(int argc, char **argv) { return train_main(argc, argv, 0); }
static int cmd_eval(int argc, char **argv) { return train_main(argc, argv, 1); }

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    fputs(k_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? LOG_EXIT_USAGE : LOG_EXIT_OK;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "prep") == 0) return prep_main(argc - 1, argv + 1);
  if (strcmp(cmd, "info") == 0) return info_main(argc - 1, argv + 1);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
  static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int alone; /* started without a launcher, it runs without MPI (dist_init_alone) */
  } mpi_cmds[] = {{"train", cmd_train, 0},
                  {"eval", cmd_eval, 0},
                  {"lsa", lsa_main, 1},
                  {"predict", predict_main, 1},
                  {"pca", pca_main, 0}};
  for (size_t i = 0; i < sizeof mpi_cmds / sizeof *mpi_cmds; i++) {
    if (strcmp(cmd, mpi_cmds[i].name) != 0) continue;
    if (mpi_cmds[i].alone && !dist_launched())
      dist_init_alone();
    else if (dist_init(&argc, &argv)) {
      log_report();
      return LOG_EXIT_RUNTIME;
    }
    int rc = mpi_cmds[i].run(argc - 1, argv + 1);
    dist_finalize();
    if (mpi_cmds[i].run == pca_main)
      pca_pictures_wait(1); /* gnuplot ran on through MPI_Finalize: its lines come last */
    return rc;
  }
  log_error("unknown command '%s' (try dptrain --help)", cmd);
  return LOG_EXIT_USAGE;
}
