/* data.c — dataset files: collective open with validation, sharded row reads (see data.h). */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"

void data_shard(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
  int64_t base = n / size, extra = n % size;
  *begin = rank * base + (rank < extra ? rank : extra);
  *end = *begin + base + (rank < extra ? 1 : 0);
}

/* 1-D or 2-D extent of a dataset; returns its rank or -1. */
static int extent(hid_t ds, hsize_t dims[2]) {
  hid_t sp = H5Dget_space(ds);
  int nd = H5Sget_simple_extent_ndims(sp);
  if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  return nd;
}

/* Dataset class: 1 integer, 2 float, 0 anything else. */
static int numeric_class(hid_t ds) {
  hid_t t = H5Dget_type(ds);
  H5T_class_t c = H5Tget_class(t);
  H5Tclose(t);
  return c == H5T_INTEGER ? 1 : c == H5T_FLOAT ? 2 : 0;
}

/* Open dataset loc/name expected 1-D of `len` entries (len < 0: any) of a numeric class
 * (want_int: integers only). Returns the dataset or -1 with log_fail. */
static hid_t open_vector(const data_file *f, hid_t loc, const char *where, const char *name, int64_t len, int want_int,
                         int64_t *got) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return log_fail("%s: %s/%s is missing", f->path, where, name);
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  hsize_t d[2] = {0, 0};
  int cls = ds < 0 ? 0 : numeric_class(ds);
  if (ds < 0 || extent(ds, d) != 1) {
    if (ds >= 0) H5Dclose(ds);
    return log_fail("%s: %s/%s is not a 1-D dataset", f->path, where, name);
  }
  if (!cls || (want_int && cls != 1)) {
    H5Dclose(ds);
    return log_fail("%s: %s/%s must hold %s", f->path, where, name, want_int ? "integers" : "numbers");
  }
  if (len >= 0 && (int64_t)d[0] != len) {
    H5Dclose(ds);
    return log_fail("%s: %s/%s has %lld entries, expected %lld", f->path, where, name, (long long)d[0], (long long)len);
  }
  if (got) *got = (int64_t)d[0];
  return ds;
}

static int open_csr(const data_file *f, hid_t g, const char *where, data_split *s) {
  char *enc = NULL;
  if (h5io_attr_get_string(g, "encoding-type", &enc) == 0 && strcmp(enc, "csr_matrix") != 0) {
    log_fail("%s: %s has encoding-type '%s'; only csr_matrix is supported", f->path, where, enc);
    free(enc);
    return -1;
  }
  free(enc);
  int64_t shape[2];
  if (h5io_attr_get_int64s(g, "shape", shape, 2) != 0 || shape[0] < 0 || shape[0] == INT64_MAX || shape[1] < 1)
    return log_fail("%s: %s is a group without a valid shape = [N, D] attribute", f->path, where);
  if (shape[1] > INT32_MAX)
    return log_fail("%s: %s has %lld columns (max 2^31-1)", f->path, where, (long long)shape[1]);
  s->kind = DATA_CSR;
  s->rows = shape[0];
  s->cols = shape[1];
  int64_t nnz_i;
  if ((s->indptr = open_vector(f, g, where, "indptr", s->rows + 1, 1, NULL)) < 0) return -1;
  if ((s->data = open_vector(f, g, where, "data", -1, 0, &s->nnz)) < 0) return -1;
  if ((s->indices = open_vector(f, g, where, "indices", -1, 1, &nnz_i)) < 0) return -1;
  if (nnz_i != s->nnz)
    return log_fail("%s: %s/indices has %lld entries but data has %lld", f->path, where, (long long)nnz_i,
                    (long long)s->nnz);
  return 0;
}

static int open_split(data_file *f, data_split *s, const char *name, int required) {
  s->name = name;
  s->x = s->y = s->data = s->indices = s->indptr = H5I_INVALID_HID;
  s->scale = 1.0;
  char where[32], xw[40];
  snprintf(where, sizeof where, "/%s", name);
  snprintf(xw, sizeof xw, "/%s/X", name);
  if (H5Lexists(f->file, where, H5P_DEFAULT) <= 0) {
    if (required) return log_fail("%s: no %s group: not a dptrain dataset file", f->path, where);
    return 0;
  }
  if (H5Lexists(f->file, xw, H5P_DEFAULT) <= 0) return log_fail("%s: %s is missing", f->path, xw);
  s->present = 1;
  s->x = H5Oopen(f->file, xw, H5P_DEFAULT);
  H5I_type_t t = s->x < 0 ? H5I_BADID : H5Iget_type(s->x);
  if (t == H5I_GROUP) {
    if (open_csr(f, s->x, xw, s)) return -1;
  } else if (t == H5I_DATASET) {
    hsize_t d[2];
    if (extent(s->x, d) != 2) return log_fail("%s: %s must be 2-D [N, D]", f->path, xw);
    if (!numeric_class(s->x)) return log_fail("%s: %s must hold numbers", f->path, xw);
    if (d[0] > INT64_MAX || d[1] > INT64_MAX || (d[1] && d[0] > INT64_MAX / d[1]))
      return log_fail("%s: %s has %llu x %llu entries, more than 2^63", f->path, xw, (unsigned long long)d[0],
                      (unsigned long long)d[1]);
    s->kind = DATA_DENSE;
    s->rows = (int64_t)d[0];
    s->cols = (int64_t)d[1];
    s->nnz = s->rows * s->cols;
    if (H5Aexists(s->x, "scale") > 0 && (h5io_attr_get_double(s->x, "scale", &s->scale) != 0 || !isfinite(s->scale)))
      return log_fail("%s: %s has an unreadable scale attribute", f->path, xw);
  } else {
    return log_fail("%s: %s is neither a dataset nor a CSR group", f->path, xw);
  }
  hid_t g = H5Gopen2(f->file, where, H5P_DEFAULT);
  s->y = open_vector(f, g, where, "y", s->rows, 0, NULL);
  H5Gclose(g);
  return s->y < 0 ? -1 : 0;
}

int data_open(data_file *f, const char *path, MPI_Comm comm) {
  memset(f, 0, sizeof *f);
  f->file = f->train.x = f->test.x = H5I_INVALID_HID;
  f->path = xstrdup(path);
  f->num_classes = -1;
  h5io_quiet();
  int ok = 1;
  if (access(path, R_OK) != 0) {
    log_fail("%s: %s", path, strerror(errno));
    ok = 0;
  } else if (H5Fis_hdf5(path) <= 0) {
    log_fail("%s: not an HDF5 file", path);
    ok = 0;
  }
  if (!dist_agree(comm, ok)) return -1;

  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f->file < 0) return log_fail("%s: cannot open: %s", path, h5io_why());
  int64_t nc;
  if (H5Aexists(f->file, "num_classes") > 0) {
    if (h5io_attr_get_int64s(f->file, "num_classes", &nc, 1) != 0 || nc < 1)
      return log_fail("%s: attribute num_classes must be a positive integer", path);
    f->num_classes = nc;
  }
  if (open_split(f, &f->train, "train", 1) || open_split(f, &f->test, "test", 0)) return -1;
  if (f->test.present && f->test.cols != f->train.cols)
    return log_fail("%s: /test/X has %lld columns but /train/X has %lld", path, (long long)f->test.cols,
                    (long long)f->train.cols);
  return 0;
}

static void close_split(data_split *s) {
  hid_t ds[] = {s->data, s->indices, s->indptr, s->y};
  for (size_t i = 0; i < sizeof ds / sizeof *ds; i++)
    if (ds[i] > 0) H5Dclose(ds[i]);
  if (s->x > 0) H5Oclose(s->x);
  s->x = s->y = s->data = s->indices = s->indptr = H5I_INVALID_HID;
}

void data_close(data_file *f) {
  close_split(&f->train);
  close_split(&f->test);
  if (f->file > 0) H5Fclose(f->file);
  f->file = H5I_INVALID_HID;
  free(f->path);
  f->path = NULL;
}

/* One H5Dread moves at most this many bytes: MPI-IO counts bytes in an int, and a read of 2 GiB
 * or more fails inside ROMIO/OMPIO ("unknown HDF5 error"), so larger shards are read in pieces of
 * 1 GiB (DPT_READ_PIECE_BYTES sets a smaller piece: the tests read small files in many pieces). */
static int64_t read_piece(void) {
  static int64_t piece = 0;
  if (!piece) {
    const char *v = getenv("DPT_READ_PIECE_BYTES");
    long long x = v ? atoll(v) : 0;
    piece = x > 0 && x < ((int64_t)1 << 30) ? (int64_t)x : (int64_t)1 << 30;
  }
  return piece;
}

/* Read elements [off, off + n) of a 1-D dataset as memory type mt into out, in pieces of at most
 * read_piece() bytes. */
static int read_range(hid_t ds, hid_t mt, int64_t off, int64_t n, void *out) {
  const int64_t size = (int64_t)H5Tget_size(mt), piece = read_piece() / (size > 0 ? size : 1);
  hid_t fs = H5Dget_space(ds);
  herr_t rc = 0;
  for (int64_t done = 0; rc >= 0 && done < n; done += piece) {
    hsize_t o[1] = {(hsize_t)(off + done)}, c[1] = {(hsize_t)(n - done < piece ? n - done : piece)};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, o, NULL, c, NULL);
    hid_t ms = H5Screate_simple(1, c, NULL);
    rc = H5Dread(ds, mt, ms, fs, H5P_DEFAULT, (char *)out + done * size);
    H5Sclose(ms);
  }
  H5Sclose(fs);
  return rc < 0 ? -1 : 0;
}

static int read_dense(const data_file *f, const data_split *s, data_block *b, int64_t n) {
  b->x = xmalloc((size_t)(n * s->cols) * sizeof(float));
  if (n == 0) return 0;
  hid_t fs = H5Dget_space(s->x);
  const int64_t row_bytes = (int64_t)sizeof(float) * (s->cols > 0 ? s->cols : 1);
  const int64_t piece = read_piece() / row_bytes > 0 ? read_piece() / row_bytes : 1; /* rows per read */
  herr_t rc = 0;
  for (int64_t done = 0; rc >= 0 && done < n; done += piece) {
    hsize_t o[2] = {(hsize_t)(b->begin + done), 0},
            c[2] = {(hsize_t)(n - done < piece ? n - done : piece), (hsize_t)s->cols};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, o, NULL, c, NULL);
    hid_t ms = H5Screate_simple(2, c, NULL);
    rc = H5Dread(s->x, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, b->x + done * s->cols);
    H5Sclose(ms);
  }
  H5Sclose(fs);
  if (rc < 0) return log_fail("%s: /%s/X: read failed: %s", f->path, s->name, h5io_why());
  size_t total = (size_t)(n * s->cols);
  for (size_t i = 0; i < total; i++) { /* checked after the scale: a finite value times it may not be */
    if (s->scale != 1.0) b->x[i] = (float)(b->x[i] * s->scale);
    if (!isfinite(b->x[i]))
      return log_fail("%s: /%s/X: row %lld: non-finite value", f->path, s->name,
                      (long long)(b->begin + (int64_t)(i / (size_t)s->cols)));
  }
  return 0;
}

static int read_csr(const data_file *f, const data_split *s, data_block *b, int64_t n) {
  b->indptr = xmalloc((size_t)(n + 1) * sizeof(int64_t));
  if (read_range(s->indptr, H5T_NATIVE_INT64, b->begin, n + 1, b->indptr))
    return log_fail("%s: /%s/X/indptr: read failed: %s", f->path, s->name, h5io_why());
  int64_t p0 = b->indptr[0];
  for (int64_t i = 0; i < n; i++)
    if (b->indptr[i + 1] < b->indptr[i])
      return log_fail("%s: /%s/X/indptr: decreasing at row %lld", f->path, s->name, (long long)(b->begin + i));
  if (p0 < 0 || b->indptr[n] > s->nnz)
    return log_fail("%s: /%s/X/indptr: entries outside [0, nnz=%lld]", f->path, s->name, (long long)s->nnz);
  b->nnz = b->indptr[n] - p0;
  b->indices = xmalloc((size_t)b->nnz * sizeof(int32_t) + 1);
  b->values = xmalloc((size_t)b->nnz * sizeof(float) + 1);
  if (read_range(s->indices, H5T_NATIVE_INT32, p0, b->nnz, b->indices) ||
      read_range(s->data, H5T_NATIVE_FLOAT, p0, b->nnz, b->values))
    return log_fail("%s: /%s/X: read failed: %s", f->path, s->name, h5io_why());
  for (int64_t i = 0; i <= n; i++) b->indptr[i] -= p0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t k = b->indptr[r]; k < b->indptr[r + 1]; k++) {
      if (b->indices[k] < 0 || b->indices[k] >= s->cols)
        return log_fail("%s: /%s/X/indices: row %lld: column %d outside [0, %lld)", f->path, s->name,
                        (long long)(b->begin + r), b->indices[k], (long long)s->cols);
      if (s->scale != 1.0) b->values[k] = (float)(b->values[k] * s->scale); /* then checked, as above */
      if (!isfinite(b->values[k]))
        return log_fail("%s: /%s/X: row %lld: non-finite value", f->path, s->name, (long long)(b->begin + r));
    }
  return 0;
}

static int read_labels(const data_file *f, const data_split *s, data_block *b, int64_t n) {
  double *tmp = xmalloc((size_t)n * sizeof(double));
  b->y = xmalloc((size_t)n * sizeof(int32_t));
  int rc = 0;
  if (read_range(s->y, H5T_NATIVE_DOUBLE, b->begin, n, tmp))
    rc = log_fail("%s: /%s/y: read failed: %s", f->path, s->name, h5io_why());
  for (int64_t i = 0; !rc && i < n; i++) {
    double v = tmp[i];
    if (!(v >= 0 && v == floor(v) && v < INT32_MAX) || (f->num_classes > 0 && v >= (double)f->num_classes))
      rc = log_fail("%s: /%s/y: row %lld: label %g is not a class in [0, %lld)", f->path, s->name,
                    (long long)(b->begin + i), v, (long long)(f->num_classes > 0 ? f->num_classes : INT32_MAX));
    else
      b->y[i] = (int32_t)v;
  }
  free(tmp);
  return rc;
}

int data_read_block(const data_file *f, const data_split *s, int64_t begin, int64_t end, data_block *b) {
  memset(b, 0, sizeof *b);
  if (!s->present) return log_fail("%s: the file has no /%s split", f->path, s->name);
  if (begin < 0 || begin > end || end > s->rows)
    return log_fail("%s: /%s: rows [%lld, %lld) outside [0, %lld)", f->path, s->name, (long long)begin, (long long)end,
                    (long long)s->rows);
  b->kind = s->kind;
  b->begin = begin;
  b->end = end;
  b->cols = s->cols;
  int64_t n = end - begin;
  int rc = s->kind == DATA_DENSE ? read_dense(f, s, b, n) : read_csr(f, s, b, n);
  if (!rc) rc = read_labels(f, s, b, n);
  if (rc) data_block_free(b);
  return rc;
}

/* The size of one stored element of dataset ds (0 when it cannot be told). */
static double stored_size(hid_t ds) {
  hid_t t = ds >= 0 ? H5Dget_type(ds) : H5I_INVALID_HID;
  double n = t >= 0 ? (double)H5Tget_size(t) : 0;
  if (t >= 0) H5Tclose(t);
  return n;
}

double data_block_file_bytes(const data_split *s, const data_block *b) {
  double rows = (double)(b->end - b->begin), bytes = rows * stored_size(s->y);
  if (s->kind == DATA_CSR)
    return bytes + (double)b->nnz * (stored_size(s->data) + stored_size(s->indices)) +
           (rows + 1) * stored_size(s->indptr);
  return bytes + rows * (double)s->cols * stored_size(s->x);
}

void data_block_free(data_block *b) {
  free(b->x);
  free(b->indptr);
  free(b->indices);
  free(b->values);
  free(b->y);
  memset(b, 0, sizeof *b);
}
