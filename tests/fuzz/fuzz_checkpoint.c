/* fuzz_checkpoint.c — libFuzzer target: checkpoint validation (checkpoint.h) on hostile HDF5 files.
 *
 * h5build.h turns the input into a file; checkpoint_load must accept it or refuse it with one line.
 * An accepted checkpoint must be whole: params and every optimizer buffer allocated, 2..32 layer
 * widths, at most CHECKPOINT_MAX_STATE buffers, optimizer and config strings present. Then
 * checkpoint_load_params is asked for the file's own size and for a size the input picks. No HDF5
 * id may be left open. Datasets are capped at 2^20 elements: a checkpoint's /params is as big as
 * its model, which the caller must be able to hold anyway. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_util.h"
#include "h5build.h"
#include "h5io.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  h5io_quiet();
  h5build_check_no_open_objects("start"); /* the baseline */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_scratch("checkpoint", ".h5");
  if (h5build_file(data, size, path, (uint64_t)1 << 20) != 0) return 0;
  checkpoint c;
  size_t want = size ? data[size - 1] % 16 : 0;
  if (checkpoint_load(path, &c) == 0) {
    FUZZ_CHECK(c.params != NULL && c.optimizer != NULL && c.config != NULL);
    FUZZ_CHECK(c.n_dims >= 2 && c.n_dims <= 32);
    FUZZ_CHECK(c.n_state >= 0 && c.n_state <= CHECKPOINT_MAX_STATE);
    for (int i = 0; i < c.n_state; i++) FUZZ_CHECK(c.state[i] != NULL && c.state_name[i] != NULL);
    want = c.n_params;
    checkpoint_free(&c);
  } else {
    FUZZ_CHECK(log_last_error()[0] != '\0' && c.params == NULL);
  }
  h5build_check_no_open_objects("checkpoint_load");
  float *p = checkpoint_load_params(path, want);
  free(p);
  h5build_check_no_open_objects("checkpoint_load_params");
  return 0;
}
