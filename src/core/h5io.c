/* h5io.c — HDF5 write helpers, attributes and atomic output files (see h5io.h). */
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

void h5io_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* The innermost message; the POSIX driver's write/read failures carry the system's reason inside a
 * long record ("... errno = 28, error message = 'No space left on device', buf = ..."): keep that. */
static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *out) {
  if (n != 0 || !e->desc || !e->desc[0]) return 0;
  const char *m = strstr(e->desc, "error message = '"), *end = m ? strchr(m + 17, '\'') : NULL;
  const char *colon = strchr(e->desc, ':');
  if (m && end && colon)
    snprintf(out, 256, "%.*s: %.*s", (int)(colon - e->desc), e->desc, (int)(end - m - 17), m + 17);
  else
    snprintf(out, 256, "%s", e->desc);
  return 0;
}

const char *h5io_why(void) {
  static char why[256];
  snprintf(why, sizeof why, "unknown HDF5 error");
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, why); /* upward: innermost first */
  return why;
}

int h5io_mkdir_p(const char *dir) {
  char *p = xstrdup(dir);
  int rc = 0;
  for (char *c = p + 1; *c && !rc; c++)
    if (*c == '/') {
      *c = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = -1;
      *c = '/';
    }
  if (!rc && mkdir(p, 0777) != 0 && errno != EEXIST) rc = -1;
  if (rc) log_fail("%s: cannot create directory: %s", dir, strerror(errno));
  free(p);
  return rc;
}

int h5io_create(h5io_out *o, const char *path) {
  o->file = H5I_INVALID_HID;
  o->path = xstrdup(path);
  o->tmp = NULL;
  char *parent = xstrdup(path);
  int rc = h5io_mkdir_p(dirname(parent));
  free(parent);
  if (rc != 0) {
    h5io_discard(o); /* a failed create leaves nothing to clean up for the caller */
    return log_prefix(path);
  }
  char *copy = xstrdup(path), *copy2 = xstrdup(path);
  buf t = {0};
  buf_printf(&t, "%s/.%s.tmp.%ld", dirname(copy), basename(copy2), (long)getpid());
  free(copy);
  free(copy2);
  o->tmp = t.data;
  h5io_quiet();
  o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (o->file < 0) {
    log_fail("%s: cannot create: %s", path, h5io_why());
    h5io_discard(o);
    return -1;
  }
  return 0;
}

static int fsync_path(const char *p, int flags) {
  int fd = open(p, flags);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int h5io_commit(h5io_out *o) {
  if (o->file < 0) return log_fail("%s: nothing to commit", o->path);
  int bad = H5Fflush(o->file, H5F_SCOPE_GLOBAL) < 0;
  bad |= H5Fclose(o->file) < 0;
  o->file = H5I_INVALID_HID;
  if (bad) {
    log_fail("%s: cannot flush: %s", o->path, h5io_why());
    h5io_discard(o);
    return -1;
  }
  if (fsync_path(o->tmp, O_RDONLY) != 0 || rename(o->tmp, o->path) != 0) {
    log_fail("%s: cannot move into place: %s", o->path, strerror(errno));
    h5io_discard(o);
    return -1;
  }
  char *copy = xstrdup(o->path);
  fsync_path(dirname(copy), O_RDONLY | O_DIRECTORY); /* make the rename durable; best effort */
  free(copy);
  free(o->tmp);
  o->tmp = NULL;
  free(o->path);
  o->path = NULL;
  return 0;
}

void h5io_discard(h5io_out *o) {
  if (o->file >= 0) H5Fclose(o->file);
  o->file = H5I_INVALID_HID;
  if (o->tmp) unlink(o->tmp);
  free(o->tmp);
  free(o->path);
  o->tmp = o->path = NULL;
}

hid_t h5io_group(hid_t loc, const char *path) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(loc, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (g < 0) log_fail("HDF5: cannot create group %s: %s", path, h5io_why());
  return g;
}

int h5io_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data, int gzip) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t total = 1;
  for (int i = 0; i < rank; i++) total *= dims[i];
  if (gzip > 0 && total > 0) {
    hsize_t chunk[H5S_MAX_RANK];
    hsize_t row = H5Tget_size(type);
    for (int i = 1; i < rank; i++) row *= dims[i], chunk[i] = dims[i];
    hsize_t rows = (1u << 20) / (row ? row : 1);
    chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, (unsigned)gzip);
  }
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(loc, name, type, space, lcpl, dcpl, H5P_DEFAULT);
  int rc = 0;
  if (ds < 0 || (total > 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
    rc = log_fail("HDF5: cannot write %s: %s", name, h5io_why());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  return rc;
}

hid_t h5io_rows_create(hid_t loc, const char *name, hid_t type, int64_t rows, int64_t cols) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t space = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(loc, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  H5Sclose(space);
  if (ds < 0) log_fail("HDF5: cannot create %s: %s", name, h5io_why());
  return ds;
}

hid_t h5io_raw_create(hid_t file, const char *name, int64_t rows, int64_t cols, int64_t *offset) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  haddr_t at = ds >= 0 ? H5Dget_offset(ds) : HADDR_UNDEF;
  if (ds < 0 || at == HADDR_UNDEF || H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
    log_fail("HDF5: cannot create %s: %s", name, h5io_why());
    if (ds >= 0) H5Dclose(ds);
    return -1;
  }
  *offset = (int64_t)at;
  return ds;
}

int h5io_rows_write(hid_t ds, hid_t type, int64_t begin, int64_t n, const void *data) {
  if (n <= 0) return 0;
  hid_t fs = H5Dget_space(ds);
  int rank = H5Sget_simple_extent_ndims(fs);
  hsize_t dims[2] = {0, 0}, start[2] = {(hsize_t)begin, 0}, count[2] = {(hsize_t)n, 0};
  H5Sget_simple_extent_dims(fs, dims, NULL);
  count[1] = dims[1];
  hid_t ms = H5Screate_simple(rank, count, NULL);
  int rc = 0;
  if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
      H5Dwrite(ds, type, ms, fs, H5P_DEFAULT, data) < 0)
    rc = log_fail("HDF5: cannot write rows %lld..%lld: %s", (long long)begin, (long long)(begin + n), h5io_why());
  H5Sclose(ms);
  H5Sclose(fs);
  return rc;
}

int h5io_write_strings(hid_t loc, const char *name, char *const *strs, size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t dims[1] = {n};
  int rc = h5io_write(loc, name, t, 1, dims, strs, 0);
  H5Tclose(t);
  return rc;
}

int h5io_write_csr(hid_t loc, const char *name, int64_t rows, int64_t cols, const int64_t *indptr,
                   const int32_t *indices, const float *data) {
  hid_t g = h5io_group(loc, name);
  if (g < 0) return -1;
  hsize_t nnz[1] = {(hsize_t)indptr[rows]}, np[1] = {(hsize_t)rows + 1};
  int64_t shape[2] = {rows, cols};
  int rc = h5io_write(g, "data", H5T_NATIVE_FLOAT, 1, nnz, data, 0);
  if (!rc) rc = h5io_write(g, "indices", H5T_NATIVE_INT32, 1, nnz, indices, 0);
  if (!rc) rc = h5io_write(g, "indptr", H5T_NATIVE_INT64, 1, np, indptr, 0);
  if (!rc) rc = h5io_attr_int64s(g, "shape", shape, 2);
  if (!rc) rc = h5io_attr_string(g, "encoding-type", "csr_matrix");
  if (!rc) rc = h5io_attr_string(g, "encoding-version", "0.1.0");
  H5Gclose(g);
  return rc;
}

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *v) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = (a < 0 || H5Awrite(a, type, v) < 0) ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  if (rc) log_fail("HDF5: cannot write attribute %s: %s", name, h5io_why());
  return rc;
}

int h5io_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  int rc = attr_write(obj, name, t, H5Screate(H5S_SCALAR), &value);
  H5Tclose(t);
  return rc;
}

int h5io_attr_double(hid_t obj, const char *name, double value) {
  return attr_write(obj, name, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &value);
}

int h5io_attr_int64(hid_t obj, const char *name, int64_t value) {
  return attr_write(obj, name, H5T_NATIVE_INT64, H5Screate(H5S_SCALAR), &value);
}

int h5io_attr_int64s(hid_t obj, const char *name, const int64_t *values, size_t n) {
  hsize_t d[1] = {n};
  return attr_write(obj, name, H5T_NATIVE_INT64, H5Screate_simple(1, d, NULL), values);
}

int h5io_attr_strings(hid_t obj, const char *name, char *const *strs, size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t d[1] = {n};
  int rc = attr_write(obj, name, t, H5Screate_simple(1, d, NULL), strs);
  H5Tclose(t);
  return rc;
}

/* Open attribute `name` holding exactly n elements, or -1. */
static hid_t attr_open_n(hid_t obj, const char *name, hssize_t n) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t s = H5Aget_space(a);
  hssize_t got = H5Sget_simple_extent_npoints(s);
  H5Sclose(s);
  if (got != n) {
    H5Aclose(a);
    return -1;
  }
  return a;
}

int h5io_attr_get_double(hid_t obj, const char *name, double *out) {
  hid_t a = attr_open_n(obj, name, 1);
  if (a < 0) return -1;
  int rc = H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0 ? -1 : 0;
  H5Aclose(a);
  return rc;
}

int h5io_attr_get_int64s(hid_t obj, const char *name, int64_t *out, size_t n) {
  hid_t a = attr_open_n(obj, name, (hssize_t)n);
  if (a < 0) return -1;
  int rc = H5Aread(a, H5T_NATIVE_INT64, out) < 0 ? -1 : 0;
  H5Aclose(a);
  return rc;
}

int h5io_attr_get_string(hid_t obj, const char *name, char **out) {
  *out = NULL;
  hid_t a = attr_open_n(obj, name, 1);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  int rc = -1;
  if (H5Tget_class(ft) == H5T_STRING) {
    if (H5Tis_variable_str(ft) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(ft));
      char *s = NULL;
      if (H5Aread(a, mt, &s) >= 0 && s) {
        *out = xstrdup(s);
        H5free_memory(s);
        rc = 0;
      }
      H5Tclose(mt);
    } else {
      size_t n = H5Tget_size(ft);
      char *s = xcalloc(n + 1, 1);
      hid_t mt = H5Tcopy(ft);
      if (H5Aread(a, mt, s) >= 0)
        *out = s, rc = 0;
      else
        free(s);
      H5Tclose(mt);
    }
  }
  H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

hid_t h5io_open_read(const char *path) {
  h5io_quiet();
  if (access(path, R_OK) != 0) {
    log_fail("%s: %s", path, strerror(errno));
    return H5I_INVALID_HID;
  }
  if (H5Fis_hdf5(path) <= 0) {
    log_fail("%s: not an HDF5 file", path);
    return H5I_INVALID_HID;
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) log_fail("%s: cannot open: %s", path, h5io_why());
  return f;
}

/* Read the strings of attribute (is_attr) or dataset obj, whose file type is ft and space sp. */
static char **strings_read(hid_t obj, int is_attr, hid_t ft, hid_t sp, size_t *n) {
  hssize_t cnt = H5Sget_simple_extent_npoints(sp);
  if (H5Tget_class(ft) != H5T_STRING || cnt < 0) return NULL;
  size_t m = (size_t)cnt;
  char **out = xcalloc(m + 1, sizeof *out);
  int ok = 0;
  hid_t mt = H5Tcopy(H5T_C_S1);
  if (H5Tis_variable_str(ft) > 0) {
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft));
    char **raw = xcalloc(m + 1, sizeof *raw);
    ok = (is_attr ? H5Aread(obj, mt, raw) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw)) >= 0;
    for (size_t i = 0; i < m; i++) out[i] = xstrdup(ok && raw[i] ? raw[i] : "");
    if (ok) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
    free(raw);
  } else {
    size_t w = H5Tget_size(ft);
    H5Tset_size(mt, w);
    H5Tset_strpad(mt, H5T_STR_NULLPAD);
    char *raw = xcalloc(m * w + 1, 1);
    ok = (is_attr ? H5Aread(obj, mt, raw) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw)) >= 0;
    for (size_t i = 0; i < m; i++) {
      out[i] = xcalloc(w + 1, 1);
      if (ok) memcpy(out[i], raw + i * w, w);
    }
    free(raw);
  }
  H5Tclose(mt);
  if (!ok) {
    h5io_free_strings(out, m);
    return NULL;
  }
  *n = m;
  return out;
}

char **h5io_attr_get_strings(hid_t obj, const char *name, size_t *n) {
  if (H5Aexists(obj, name) <= 0) return NULL;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return NULL;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  char **out = strings_read(a, 1, ft, sp, n);
  H5Sclose(sp);
  H5Tclose(ft);
  H5Aclose(a);
  return out;
}

char **h5io_read_strings(hid_t loc, const char *name, size_t *n) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return NULL;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
  char **out = strings_read(d, 0, ft, sp, n);
  H5Sclose(sp);
  H5Tclose(ft);
  H5Dclose(d);
  return out;
}

void h5io_free_strings(char **s, size_t n) {
  if (!s) return;
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}
