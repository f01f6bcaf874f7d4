/* fuzz_dataset.c — libFuzzer target: dataset validation and row reads (data.h) on hostile HDF5 files.
 *
 * h5build.h turns the input into a file (wrong dtypes, shapes, attributes, CSR arrays, links);
 * data_open must accept it or refuse it with one line, never crash. For an accepted file every
 * split is read in blocks (the whole of it when small, else its first and last blocks: a declared
 * 2^40 rows reads as fill values), and each block must honour data.h: labels in [0, num_classes),
 * finite features, CSR indptr rebased to 0 and non-decreasing, columns in [0, D). Rows outside the
 * split must be refused. Afterwards no HDF5 id may be left open. */
#include <math.h>
#include <string.h>

#include "data.h"
#include "fuzz_util.h"
#include "h5build.h"
#include "h5io.h"
#include "log.h"

enum { BLOCK_ELEMS = 1 << 14, MAX_CSR_NNZ = 1 << 20 };

static void check_block(const data_file *f, const data_split *s, const data_block *b) {
  int64_t n = b->end - b->begin;
  for (int64_t i = 0; i < n; i++) FUZZ_CHECK(b->y[i] >= 0 && (f->num_classes < 1 || b->y[i] < f->num_classes));
  if (s->kind == DATA_DENSE) {
    for (int64_t i = 0; i < n * s->cols; i++) FUZZ_CHECK(isfinite(b->x[i]));
    return;
  }
  FUZZ_CHECK(b->indptr[0] == 0 && b->indptr[n] == b->nnz);
  for (int64_t r = 0; r < n; r++) {
    FUZZ_CHECK(b->indptr[r + 1] >= b->indptr[r]);
    for (int64_t k = b->indptr[r]; k < b->indptr[r + 1]; k++)
      FUZZ_CHECK(b->indices[k] >= 0 && b->indices[k] < s->cols && isfinite(b->values[k]));
  }
}

static void read_rows(const data_file *f, const data_split *s, int64_t begin, int64_t end) {
  data_block b;
  if (data_read_block(f, s, begin, end, &b) == 0) check_block(f, s, &b);
  data_block_free(&b);
}

static void read_split(const data_file *f, const data_split *s) {
  if (!s->present) return;
  FUZZ_CHECK(s->rows >= 0 && s->cols >= 0);
  if (s->kind == DATA_DENSE && s->cols > BLOCK_ELEMS) return; /* a row would not fit a block */
  if (s->kind == DATA_CSR && s->nnz > MAX_CSR_NNZ) return;
  int64_t per = s->kind == DATA_DENSE ? BLOCK_ELEMS / (s->cols ? s->cols : 1) : BLOCK_ELEMS;
  if (s->rows <= 4 * per) {
    for (int64_t r = 0; r < s->rows; r += per) read_rows(f, s, r, r + per < s->rows ? r + per : s->rows);
  } else {
    read_rows(f, s, 0, per);
    read_rows(f, s, s->rows - per, s->rows);
  }
  read_rows(f, s, 0, 0);
  data_block b;
  if (s->rows < INT64_MAX) FUZZ_CHECK(data_read_block(f, s, s->rows, s->rows + 1, &b) == -1);
  FUZZ_CHECK(data_read_block(f, s, -1, 0, &b) == -1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  h5io_quiet();
  h5build_check_no_open_objects("start"); /* the baseline */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_scratch("dataset", ".h5");
  if (h5build_file(data, size, path, 0) != 0) return 0;
  data_file f;
  if (data_open(&f, path, MPI_COMM_NULL) == 0) {
    FUZZ_CHECK(f.train.present);
    read_split(&f, &f.train);
    read_split(&f, &f.test);
  } else {
    FUZZ_CHECK(log_last_error()[0] != '\0');
  }
  data_close(&f);
  h5build_check_no_open_objects("data_close");
  return 0;
}
