/* test_data_mpi.c — the sharded reader under mpirun, on files written by us or by h5py.
 *
 * Formula files (tests/interop/formula.py holds the same definitions for h5py):
 *   N_train = 103, N_test = 29, D = 37, num_classes = 7, y[i] = i % 7
 *   dense X[i][j] = ((7 i + 13 j) % 251) / 8            (ours: uint8 with scale = 0.125)
 *   CSR   X[i][j] = 1 + ((7 i + 13 j) % 251) / 8  where (3 i + 5 j) % 7 == 0, else absent
 * Test split rows use i + 1000 in the formulas, so train and test differ.
 *
 * Modes (every rank runs the same):
 *   --write PREFIX            rank 0 writes PREFIX.dense.h5 and PREFIX.csr.h5
 *   --check FILE dense|csr    every rank reads its shard of both splits and checks every value;
 *                             shards must tile [0, N) exactly (gathered and checked on rank 0)
 *   --write-and-check PREFIX  both of the above, on both files
 *   --sum FILE                print row counts and checksums of the union of the shards
 *                             (rank-count independent: used to compare 1, 2, 3 ranks on real data)
 * Exit 0 when everything matched; on a reader error the one-line error and exit 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "data.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"

enum { N_TRAIN = 103, N_TEST = 29, D = 37, NC = 7, TEST_OFFSET = 1000 };

static int raw_value(int64_t i, int64_t j) { return (int)((7 * i + 13 * j) % 251); }
static int csr_has(int64_t i, int64_t j) { return (3 * i + 5 * j) % 7 == 0; }

static int write_files(const char *prefix) {
  char path[512];
  int rc = 0;
  for (int csr = 0; csr < 2 && !rc; csr++) {
    snprintf(path, sizeof path, "%s.%s.h5", prefix, csr ? "csr" : "dense");
    h5io_out o;
    if (h5io_create(&o, path)) return -1;
    for (int s = 0; s < 2 && !rc; s++) {
      int64_t n = s ? N_TEST : N_TRAIN, off = s ? TEST_OFFSET : 0;
      const char *split = s ? "test" : "train";
      char name[32];
      uint8_t *x = xmalloc((size_t)(n * D)), *y = xmalloc((size_t)n);
      int64_t *indptr = xcalloc((size_t)n + 1, sizeof(int64_t));
      int32_t *ind = xmalloc((size_t)(n * D) * sizeof(int32_t));
      float *val = xmalloc((size_t)(n * D) * sizeof(float));
      for (int64_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(i % NC);
        indptr[i + 1] = indptr[i];
        for (int64_t j = 0; j < D; j++) {
          x[i * D + j] = (uint8_t)raw_value(i + off, j);
          if (csr_has(i + off, j)) {
            ind[indptr[i + 1]] = (int32_t)j;
            val[indptr[i + 1]++] = 1.0f + (float)raw_value(i + off, j) / 8.0f;
          }
        }
      }
      hsize_t dx[2] = {(hsize_t)n, D}, dy[1] = {(hsize_t)n};
      snprintf(name, sizeof name, "/%s/X", split);
      if (csr) {
        hid_t g = h5io_group(o.file, split);
        rc = g < 0 || h5io_write_csr(g, "X", n, D, indptr, ind, val);
        if (g >= 0) H5Gclose(g);
      } else {
        rc = h5io_write(o.file, name, H5T_NATIVE_UINT8, 2, dx, x, s ? 0 : 4); /* train gzip */
        hid_t ds = rc ? -1 : H5Dopen2(o.file, name, H5P_DEFAULT);
        if (!rc) rc = h5io_attr_double(ds, "scale", 0.125), H5Dclose(ds);
      }
      snprintf(name, sizeof name, "/%s/y", split);
      if (!rc) rc = h5io_write(o.file, name, H5T_NATIVE_UINT8, 1, dy, y, 0);
      free(x), free(y), free(indptr), free(ind), free(val);
    }
    if (!rc) rc = h5io_attr_int64(o.file, "num_classes", NC);
    if (rc || h5io_commit(&o)) {
      h5io_discard(&o);
      return log_prefix(path);
    }
  }
  return 0;
}

/* Check one shard against the formulas; returns the number of mismatches (printed, first 5). */
static long check_block(const data_block *b, int64_t off, int csr) {
  long bad = 0;
  for (int64_t r = 0; r < b->end - b->begin; r++) {
    int64_t i = b->begin + r;
    if (b->y[r] != (int32_t)(i % NC) && bad++ < 5) fprintf(stderr, "row %lld: label %d\n", (long long)i, b->y[r]);
    if (!csr) {
      for (int64_t j = 0; j < D; j++) {
        float want = (float)raw_value(i + off, j) / 8.0f;
        if (b->x[r * D + j] != want && bad++ < 5)
          fprintf(stderr, "row %lld col %lld: %g != %g\n", (long long)i, (long long)j, b->x[r * D + j], want);
      }
      continue;
    }
    int64_t k = b->indptr[r];
    for (int64_t j = 0; j < D; j++) {
      if (!csr_has(i + off, j)) continue;
      float want = 1.0f + (float)raw_value(i + off, j) / 8.0f;
      if ((k >= b->indptr[r + 1] || b->indices[k] != j || b->values[k] != want) && bad++ < 5)
        fprintf(stderr, "row %lld: entry for col %lld wrong or missing\n", (long long)i, (long long)j);
      k++;
    }
    if (k != b->indptr[r + 1] && bad++ < 5) fprintf(stderr, "row %lld: extra entries\n", (long long)i);
  }
  return bad;
}

static int check_file(const char *path, int csr) {
  data_file f;
  data_block blk = {0};
  int ok = data_open(&f, path, dist_comm()) == 0;
  if (!dist_all_ok(ok)) goto fail;
  int rank = dist_rank(), size = dist_size();
  long bad = 0;
  data_split *splits[2] = {&f.train, &f.test};
  if (f.train.rows != N_TRAIN || f.test.rows != N_TEST || f.train.cols != D || f.num_classes != NC ||
      f.train.kind != (csr ? DATA_CSR : DATA_DENSE)) {
    fprintf(stderr, "%s: unexpected shape/kind/num_classes\n", path);
    bad++;
  }
  for (int s = 0; s < 2 && !bad; s++) {
    int64_t b, e, n = splits[s]->rows;
    data_shard(n, rank, size, &b, &e);
    ok = data_read_block(&f, splits[s], b, e, &blk) == 0;
    if (!dist_all_ok(ok)) goto fail;
    bad += check_block(&blk, s ? TEST_OFFSET : 0, csr);
    /* the shards must tile [0, n) exactly: gather every rank's range on rank 0 */
    int64_t mine[2] = {blk.begin, blk.end}, *all = xmalloc(sizeof(int64_t) * 2 * (size_t)size);
    MPI_CHECK(MPI_Gather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, 0, dist_comm()));
    if (rank == 0) {
      int64_t at = 0;
      for (int r = 0; r < size; r++) {
        if (all[2 * r] != at)
          bad++, fprintf(stderr, "rank %d starts at %lld, expected %lld\n", r, (long long)all[2 * r], (long long)at);
        at = all[2 * r + 1];
      }
      if (at != n) bad++, fprintf(stderr, "union ends at %lld, expected %lld\n", (long long)at, (long long)n);
      printf("%s /%s: %d ranks, rows per rank:", path, splits[s]->name, size);
      for (int r = 0; r < size; r++) printf(" %lld", (long long)(all[2 * r + 1] - all[2 * r]));
      printf("\n");
    }
    free(all);
    data_block_free(&blk);
  }
  data_close(&f);
  long total = 0;
  MPI_CHECK(MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, dist_comm()));
  if (total) log_info("%s: %ld mismatches\n", path, total);
  return total ? 1 : 0;
fail: /* every rank gets here: data_open and data_read_block agree on failure */
  data_block_free(&blk);
  data_close(&f);
  return 1;
}

/* Rank-count independent checksums of the union of all shards of both splits. */
static int sum_file(const char *path) {
  data_file f;
  data_block blk = {0};
  if (!dist_all_ok(data_open(&f, path, dist_comm()) == 0)) goto fail;
  data_split *splits[2] = {&f.train, &f.test};
  for (int s = 0; s < 2; s++) {
    if (!splits[s]->present) continue;
    int64_t b, e;
    data_shard(splits[s]->rows, dist_rank(), dist_size(), &b, &e);
    if (!dist_all_ok(data_read_block(&f, splits[s], b, e, &blk) == 0)) goto fail;
    /* per-row weighted sums make the checksum sensitive to which row went where */
    double acc[4] = {(double)(e - b), 0, 0, 0}, tot[4];
    for (int64_t r = 0; r < e - b; r++) {
      double row = 0;
      if (blk.kind == DATA_DENSE)
        for (int64_t j = 0; j < blk.cols; j++) row += (double)blk.x[r * blk.cols + j] * (double)(j % 17 + 1);
      else
        for (int64_t k = blk.indptr[r]; k < blk.indptr[r + 1]; k++)
          row += (double)blk.values[k] * (double)(blk.indices[k] % 17 + 1), acc[3] += 1;
      acc[1] += row * (double)((b + r) % 101 + 1);
      acc[2] += (double)blk.y[r] * (double)(b + r + 1);
    }
    MPI_CHECK(MPI_Allreduce(acc, tot, 4, MPI_DOUBLE, MPI_SUM, dist_comm()));
    log_info("/%s rows %.0f nnz %.0f label-sum %.0f checksum %.6e\n", splits[s]->name, tot[0],
             blk.kind == DATA_CSR ? tot[3] : tot[0] * (double)blk.cols, tot[2], tot[1]);
    data_block_free(&blk);
  }
  data_close(&f);
  return 0;
fail: /* every rank gets here */
  data_block_free(&blk);
  data_close(&f);
  return 1;
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv)) {
    log_report();
    return 1;
  }
  int rc = 2;
  if (argc == 3 && (!strcmp(argv[1], "--write") || !strcmp(argv[1], "--write-and-check"))) {
    int ok = dist_rank() == 0 ? write_files(argv[2]) == 0 : 1;
    rc = dist_all_ok(ok) ? 0 : 1;
    if (!rc && !strcmp(argv[1], "--write-and-check")) {
      char path[512];
      for (int csr = 0; csr < 2 && !rc; csr++) {
        snprintf(path, sizeof path, "%s.%s.h5", argv[2], csr ? "csr" : "dense");
        rc = check_file(path, csr);
      }
    }
  } else if (argc == 4 && !strcmp(argv[1], "--check")) {
    rc = check_file(argv[2], !strcmp(argv[3], "csr"));
  } else if (argc == 3 && !strcmp(argv[1], "--sum")) {
    rc = sum_file(argv[2]);
  } else if (dist_rank() == 0) {
    fprintf(stderr, "usage: test_data_mpi --write|--write-and-check PREFIX | --check FILE dense|csr | --sum FILE\n");
  }
  if (rc == 0) log_info("OK\n");
  dist_finalize();
  return rc;
}
