/* h5io.h — HDF5 helpers shared by prep, data, info (and checkpoint/pca later).
 *
 * - h5io_quiet() stops HDF5 from printing its error stack; h5io_why() returns the library's own
 *   innermost message instead, for one-line errors.
 * - Output files are atomic: h5io_create() writes to a hidden temporary beside the target,
 *   h5io_commit() flushes, fsyncs and renames it into place, h5io_discard() removes it. A crash or
 *   error never leaves a half-written file under the final name.
 * - Writers return 0, or -1 with log_fail("HDF5: ...") naming the object; callers prefix the path. */
#ifndef DPT_H5IO_H
#define DPT_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Turn off HDF5's automatic error printing for this process (idempotent). */
void h5io_quiet(void);

/* The innermost message on HDF5's current error stack (e.g. "file signature not found"), or
 * "unknown HDF5 error". The string is static; valid until the next call. */
const char *h5io_why(void);

/* Open an existing HDF5 file read-only (serial): the file, or H5I_INVALID_HID with one log_fail
 * line "PATH: No such file or directory" / "PATH: not an HDF5 file" / "PATH: cannot open: why". */
hid_t h5io_open_read(const char *path);

typedef struct h5io_out {
  hid_t file; /* open file to write into; H5I_INVALID_HID after commit/discard */
  char *path; /* final name */
  char *tmp;  /* temporary name in the same directory */
} h5io_out;

/* mkdir -p: create dir and its missing parents. Returns 0, or -1 with log_fail("DIR: why"). */
int h5io_mkdir_p(const char *dir);

/* Create an empty temporary HDF5 file that h5io_commit() will rename to `path` (its directory is
 * created if missing). Returns 0, or -1 with log_fail("PATH: why") and nothing left to discard
 * (calling h5io_discard after a failed create is harmless). */
int h5io_create(h5io_out *o, const char *path);
/* Flush, close, fsync and rename into place. Returns 0, or -1 (log_fail set; temp removed). */
int h5io_commit(h5io_out *o);
/* Close and remove the temporary (no-op after commit). */
void h5io_discard(h5io_out *o);

/* Create group `path` (intermediate groups too). Returns the open group, or -1 with log_fail. */
hid_t h5io_group(hid_t loc, const char *path);

/* Write dataset `name` under loc: `type` is a native HDF5 type used for memory and file alike,
 * dims has `rank` entries. gzip > 0 stores it chunked (row blocks) and deflated at that level.
 * Returns 0 or -1 with log_fail. */
int h5io_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data, int gzip);

/* A dataset written a block of rows at a time, so memory stays bounded by one block: `name`
 * under loc, contiguous storage (the layout MPI-IO reads fastest), [rows, cols] when cols > 0,
 * [rows] when cols == 0. h5io_rows_create returns the open dataset (close with H5Dclose) or -1
 * with log_fail; h5io_rows_write writes rows [begin, begin + n) from data (row-major, `type` in
 * memory and file alike) and returns 0 or -1 with log_fail. */
hid_t h5io_rows_create(hid_t loc, const char *name, hid_t type, int64_t rows, int64_t cols);
int h5io_rows_write(hid_t ds, hid_t type, int64_t begin, int64_t n, const void *data);

/* A float64 [rows, cols] dataset whose bytes other processes write with plain pwrite: contiguous,
 * its file space allocated now and never filled by HDF5, *offset = where its first byte lies in
 * the file (H5Dget_offset; little-endian IEEE doubles, row-major). Flushes the file, so the
 * dataset's place is on disk before anyone writes into it. Returns the open dataset or -1 with
 * log_fail. */
hid_t h5io_raw_create(hid_t file, const char *name, int64_t rows, int64_t cols, int64_t *offset);

/* Write a 1-D dataset of n variable-length UTF-8 strings. Returns 0 or -1 with log_fail. */
int h5io_write_strings(hid_t loc, const char *name, char *const *strs, size_t n);

/* Write a CSR matrix as the scipy/anndata group `name`: data float32 [nnz], indices int32 [nnz],
 * indptr int64 [rows+1], attributes shape = [rows, cols], encoding-type = "csr_matrix",
 * encoding-version = "0.1.0". Returns 0 or -1 with log_fail. */
int h5io_write_csr(hid_t loc, const char *name, int64_t rows, int64_t cols, const int64_t *indptr,
                   const int32_t *indices, const float *data);

/* Scalar/array attributes on an object. Each returns 0 or -1 with log_fail. */
int h5io_attr_string(hid_t obj, const char *name, const char *value);
int h5io_attr_double(hid_t obj, const char *name, double value);
int h5io_attr_int64(hid_t obj, const char *name, int64_t value);
int h5io_attr_int64s(hid_t obj, const char *name, const int64_t *values, size_t n);
/* A 1-D attribute of n variable-length UTF-8 strings (class names). */
int h5io_attr_strings(hid_t obj, const char *name, char *const *strs, size_t n);

/* Read attributes; return 0, or -1 (no log_fail) when absent or of an unconvertible type.
 * h5io_attr_get_string allocates *out (free with free()). */
int h5io_attr_get_double(hid_t obj, const char *name, double *out);
int h5io_attr_get_int64s(hid_t obj, const char *name, int64_t *out, size_t n);
int h5io_attr_get_string(hid_t obj, const char *name, char **out);
/* The strings of a 1-D string attribute (h5io_attr_get_strings) or dataset (h5io_read_strings),
 * variable- or fixed-length: a new array of *n new strings (free with h5io_free_strings), or NULL
 * when absent or not strings (no log_fail; the caller names what is missing). */
char **h5io_attr_get_strings(hid_t obj, const char *name, size_t *n);
char **h5io_read_strings(hid_t loc, const char *name, size_t *n);
void h5io_free_strings(char **s, size_t n);

#endif
