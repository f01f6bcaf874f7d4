/* h5build.c — fuzzer bytes to a hostile but well-formed HDF5 file (see h5build.h).
 *
 * Encoding (every read past the end gives 0, so any input is a program):
 *   op      u8: op % 8 = 0 group, 1-3 dataset, 4-6 attribute, 7 link; at most 64 ops
 *   group   path
 *   dataset path, type, space, storage u8 (% 4: contiguous, chunked, chunked + gzip, compact;
 *           bit 7: leave unwritten), values
 *   attr    object path, name, type, space (at most 256 elements), values
 *   link    kind u8 (% 4: soft, hard, external, dangling soft), path, target path
 *   type    u8 % 23 (see make_type); a fixed string then reads its size u8
 *   space   u8 % 6: 0 scalar, 1-3 that rank, 4 null, 5 rank 1; each dim u8 b: b>>6 = 0: b & 63,
 *           1: 64 + u8, 2: u32 (big-endian), 3: 2^min(b & 63, 62)
 *   values  u8 % 5: 0 counting (start s8, step u8), 1 one s8 per element, 2 one table index per
 *           element, 3 one table entry for all, 4 raw bytes (length u8, then that many, cycled);
 *           strings: u8 % 8 picks a dictionary entry or (7) raw bytes */
#include "h5build.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t rd_u8(reader *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}

static uint32_t rd_u32(reader *r) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = v << 8 | rd_u8(r);
  return v;
}

static const char *const paths[] = {
    "/train",
    "/test",
    "/train/X",
    "/train/y",
    "/test/X",
    "/test/y",
    "/train/X/data",
    "/train/X/indices",
    "/train/X/indptr",
    "/test/X/data",
    "/test/X/indices",
    "/test/X/indptr",
    "/params",
    "/sampler",
    "/optim",
    "/optim/exp_avg",
    "/optim/exp_avg_sq",
    "/optim/momentum_buffer",
    "/optim/sum",
    "/optim/g/x",
    "/",
};
enum { N_PATHS = sizeof paths / sizeof *paths };

static const char *const attr_names[] = {
    "shape", "encoding-type", "encoding-version", "scale",  "num_classes", "step",   "epoch",
    "seed",  "world_size",    "optimizer",        "config", "dims",        "n_spam",
};
enum { N_ATTR_NAMES = sizeof attr_names / sizeof *attr_names };

static const int64_t int_table[] = {0,
                                    1,
                                    2,
                                    3,
                                    4,
                                    -1,
                                    -2,
                                    10,
                                    100,
                                    255,
                                    256,
                                    65535,
                                    INT32_MAX,
                                    (int64_t)INT32_MAX + 1,
                                    UINT32_MAX,
                                    (int64_t)1 << 32,
                                    (int64_t)1 << 53,
                                    (int64_t)1 << 62,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT32_MIN,
                                    7,
                                    784,
                                    60000};
static const double float_table[] = {0.0,      -0.0,      1.0,  -1.0,  0.5,    2.0,    10.0,    NAN,
                                     INFINITY, -INFINITY, 1e30, -1e30, 1e300,  5e-324, 255.0,   2147483648.0,
                                     9.3e18,   -9.3e18,   3.5,  1e-3,  3.4e38, 4e38,   65504.0, 1e-45};
static const char *const str_table[] = {
    "csr_matrix", "csc_matrix", "", "adam", "sgd", "[optim]\nname = adam\nlr = 0.1\n", "0.1.0"};

enum { N_TYPES = 23, MAX_OPS = 64, MAX_ATTR_ELEMS = 256 };

/* A new datatype (always a copy: the caller closes it), or -1. */
static hid_t make_type(reader *r) {
  static const hid_t *const simple[] = {
      &H5T_NATIVE_INT8_g,   &H5T_NATIVE_UINT8_g, &H5T_NATIVE_INT16_g,  &H5T_NATIVE_UINT16_g, &H5T_NATIVE_INT32_g,
      &H5T_NATIVE_UINT32_g, &H5T_NATIVE_INT64_g, &H5T_NATIVE_UINT64_g, &H5T_STD_I32BE_g,     &H5T_STD_I64BE_g,
      &H5T_STD_U16BE_g,     &H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g, &H5T_IEEE_F64BE_g,    &H5T_IEEE_F32BE_g};
  int k = rd_u8(r) % N_TYPES;
  if (k < (int)(sizeof simple / sizeof *simple)) return H5Tcopy(*simple[k]);
  hid_t t = -1;
  switch (k) {
    case 15: /* fixed-size string */
      t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 1 + rd_u8(r) % 64);
      break;
    case 16: /* variable-length string */
      t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      break;
    case 17: /* compound {int32 a; float b} */
      t = H5Tcreate(H5T_COMPOUND, 8);
      H5Tinsert(t, "a", 0, H5T_NATIVE_INT32);
      H5Tinsert(t, "b", 4, H5T_NATIVE_FLOAT);
      break;
    case 18: { /* enum on int8 */
      t = H5Tenum_create(H5T_NATIVE_INT8);
      signed char a = 0, b = 1;
      H5Tenum_insert(t, "A", &a);
      H5Tenum_insert(t, "B", &b);
      break;
    }
    case 19: { /* int32[2] */
      hsize_t d[1] = {2};
      t = H5Tarray_create2(H5T_NATIVE_INT32, 1, d);
      break;
    }
    case 20:
      t = H5Tcreate(H5T_OPAQUE, 4);
      H5Tset_tag(t, "fuzz");
      break;
    case 21:
      t = H5Tcopy(H5T_NATIVE_B8);
      break;
    default:
      t = H5Tvlen_create(H5T_NATIVE_INT32);
      break;
  }
  return t;
}

/* A new dataspace, or -1 (also when its element count overflows or exceeds max_elems). *n gets
 * the element count, *rank the rank (-1 null, 0 scalar). */
static hid_t make_space(reader *r, uint64_t max_elems, int chunked_ok, hsize_t *dims, int *rank, uint64_t *n) {
  int k = rd_u8(r) % 6;
  if (k == 0) return *rank = 0, *n = 1, H5Screate(H5S_SCALAR);
  if (k == 4) return *rank = -1, *n = 0, H5Screate(H5S_NULL);
  int nd = k == 5 ? 1 : k;
  uint64_t total = 1;
  for (int i = 0; i < nd; i++) {
    uint8_t b = rd_u8(r);
    uint64_t d;
    switch (b >> 6) {
      case 0:
        d = b & 63;
        break;
      case 1:
        d = 64 + rd_u8(r);
        break;
      case 2:
        d = rd_u32(r);
        break;
      default:
        d = (uint64_t)1 << ((b & 63) > 62 ? 62 : (b & 63));
        break;
    }
    if (d && total > UINT64_MAX / d) return -1;
    dims[i] = d;
    total *= d;
  }
  if (max_elems && total > max_elems) return -1;
  *rank = nd;
  *n = total;
  hsize_t maxd[3] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED};
  return H5Screate_simple(nd, dims, chunked_ok ? maxd : NULL);
}

/* Fill a buffer of n elements of type t from the values program; returns the memory type to write
 * it with (a copy, or t itself copied) and the buffer in *out (malloc'd), or -1 (nothing to free). */
static hid_t make_values(reader *r, hid_t t, size_t n, void **out) {
  static char *const strs[] = {"csr_matrix", "csc_matrix", "", "adam", "[data]\npath = x.h5\n", "0.1.0", "sgd"};
  static int32_t vl_ints[4] = {1, -1, 7, INT32_MAX};
  H5T_class_t cls = H5Tget_class(t);
  *out = NULL;
  if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
    int is_int = cls == H5T_INTEGER;
    int p = rd_u8(r) % 5;
    if (p == 4) goto raw;
    int64_t *vi = calloc(n + 1, sizeof *vi);
    double *vf = (double *)vi; /* same size */
    int64_t start = (int8_t)rd_u8(r), step = 0, cst = 0;
    if (p == 0) step = rd_u8(r);
    if (p == 3) cst = rd_u8(r);
    for (size_t i = 0; i < n; i++) {
      int64_t iv = 0;
      double fv = 0;
      switch (p) {
        case 0:
          iv = start + (int64_t)i * step, fv = (double)iv;
          break;
        case 1:
          iv = (int8_t)rd_u8(r), fv = (double)iv;
          break;
        default: {
          size_t j = p == 2 ? rd_u8(r) : (size_t)cst;
          iv = int_table[j % (sizeof int_table / sizeof *int_table)];
          fv = float_table[j % (sizeof float_table / sizeof *float_table)];
        }
      }
      if (is_int)
        vi[i] = iv;
      else
        vf[i] = fv;
    }
    *out = vi;
    return H5Tcopy(is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
  }
  if (cls == H5T_STRING && H5Tis_variable_str(t) > 0) {
    char **v = calloc(n + 1, sizeof *v);
    int p = rd_u8(r) % 8;
    for (size_t i = 0; i < n; i++) v[i] = strs[p % 7];
    *out = v;
    return H5Tcopy(t);
  }
  if (cls == H5T_STRING) {
    size_t sz = H5Tget_size(t);
    int p = rd_u8(r) % 8;
    if (p == 7) goto raw;
    char *v = calloc(n + 1, sz);
    for (size_t i = 0; i < n; i++) strncpy(v + i * sz, str_table[p % 7], sz);
    *out = v;
    return H5Tcopy(t);
  }
  if (cls == H5T_VLEN) {
    hvl_t *v = calloc(n + 1, sizeof *v);
    uint8_t len = rd_u8(r) % 5;
    for (size_t i = 0; i < n; i++) v[i].len = len, v[i].p = vl_ints;
    *out = v;
    return H5Tcopy(t);
  }
raw : {
  size_t sz = H5Tget_size(t);
  uint8_t len = rd_u8(r), src[256];
  size_t got = 0;
  for (; got < len && r->n; got++) src[got] = rd_u8(r);
  uint8_t *v = calloc(n + 1, sz);
  if (got)
    for (size_t i = 0; i < n * sz; i++) v[i] = src[i % got];
  *out = v;
  return H5Tcopy(t);
}
}

static hid_t lcpl_intermediate(void) {
  hid_t p = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(p, 1);
  return p;
}

static void op_dataset(hid_t file, reader *r, uint64_t max_elems) {
  const char *path = paths[rd_u8(r) % N_PATHS];
  hid_t t = make_type(r);
  hsize_t dims[3] = {0, 0, 0};
  int rank = 0;
  uint64_t n = 0;
  hid_t sp = make_space(r, max_elems, 1, dims, &rank, &n);
  uint8_t st = rd_u8(r);
  int layout = st % 4, write = !(st & 0x80) && n > 0 && n <= H5BUILD_MAX_WRITE;
  if (n > H5BUILD_MAX_WRITE) layout = 1;
  if (rank <= 0) layout = 0;                     /* scalar and null spaces: contiguous only */
  if (layout == 3 && n * 16 > 30000) layout = 0; /* compact data lives in the object header */
  if (layout == 0 && rank > 0) {                 /* a fixed-size space for contiguous data */
    H5Sclose(sp);
    sp = H5Screate_simple(rank, dims, NULL);
  }
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = lcpl_intermediate();
  if (layout == 1 || layout == 2) {
    hsize_t ch[3];
    for (int i = 0; i < rank; i++) ch[i] = dims[i] < 1 ? 1 : dims[i] > 16 ? 16 : dims[i];
    H5Pset_chunk(dcpl, rank, ch);
    if (layout == 2) H5Pset_deflate(dcpl, 1);
  } else if (layout == 3) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  }
  hid_t ds = t < 0 || sp < 0 ? -1 : H5Dcreate2(file, path, t, sp, lcpl, dcpl, H5P_DEFAULT);
  if (ds >= 0) {
    void *v = NULL;
    hid_t mt = make_values(r, t, write ? (size_t)n : 0, &v);
    if (write && mt >= 0) H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (mt >= 0) H5Tclose(mt);
    free(v);
    H5Dclose(ds);
  }
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
}

static void op_attr(hid_t file, reader *r) {
  const char *path = paths[rd_u8(r) % N_PATHS];
  const char *name = attr_names[rd_u8(r) % N_ATTR_NAMES];
  hid_t t = make_type(r);
  hsize_t dims[3];
  int rank = 0;
  uint64_t n = 0;
  hid_t sp = make_space(r, MAX_ATTR_ELEMS, 0, dims, &rank, &n);
  hid_t obj = H5Lexists(file, path, H5P_DEFAULT) > 0 || !strcmp(path, "/") ? H5Oopen(file, path, H5P_DEFAULT) : -1;
  if (obj >= 0 && t >= 0 && sp >= 0) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      void *v = NULL;
      hid_t mt = make_values(r, t, (size_t)n, &v);
      if (mt >= 0 && n > 0) H5Awrite(a, mt, v);
      if (mt >= 0) H5Tclose(mt);
      free(v);
      H5Aclose(a);
    }
  }
  if (obj >= 0) H5Oclose(obj);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
}

static void op_link(hid_t file, reader *r) {
  int kind = rd_u8(r) % 4;
  const char *a = paths[rd_u8(r) % N_PATHS], *b = paths[rd_u8(r) % N_PATHS];
  hid_t lcpl = lcpl_intermediate();
  if (H5Lexists(file, a, H5P_DEFAULT) <= 0 || !strcmp(a, "/")) switch (kind) {
      case 0:
        H5Lcreate_soft(b, file, a, lcpl, H5P_DEFAULT);
        break;
      case 1:
        H5Lcreate_hard(file, b, file, a, lcpl, H5P_DEFAULT);
        break;
      case 2:
        H5Lcreate_external("/nonexistent/dpt-fuzz.h5", b, file, a, lcpl, H5P_DEFAULT);
        break;
      default:
        H5Lcreate_soft("/nowhere/at/all", file, a, lcpl, H5P_DEFAULT);
        break;
    }
  H5Pclose(lcpl);
}

int h5build_file(const uint8_t *data, size_t size, const char *path, uint64_t max_elems) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 1 << 16, 1); /* build in memory, write the image once at close */
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (file < 0) return -1;
  reader r = {data, size};
  for (int i = 0; i < MAX_OPS && r.n; i++) {
    int op = rd_u8(&r) % 8;
    if (op == 0) {
      hid_t lcpl = lcpl_intermediate();
      hid_t g = H5Gcreate2(file, paths[rd_u8(&r) % N_PATHS], lcpl, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) H5Gclose(g);
      H5Pclose(lcpl);
    } else if (op <= 3) {
      op_dataset(file, &r, max_elems);
    } else if (op <= 6) {
      op_attr(file, &r);
    } else {
      op_link(file, &r);
    }
  }
  H5Fclose(file);
  h5build_check_no_open_objects("h5build_file");
  return 0;
}

void h5build_check_no_open_objects(const char *after) {
  static const H5I_type_t types[] = {H5I_FILE, H5I_GROUP, H5I_DATATYPE, H5I_DATASPACE, H5I_DATASET, H5I_ATTR};
  static hsize_t base[sizeof types / sizeof *types];
  static int have_base = 0;
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    hsize_t n = 0;
    H5Inmembers(types[i], &n);
    if (!have_base) base[i] = n;
    if (n != base[i]) {
      fprintf(stderr, "h5build: after %s, %llu open HDF5 ids of type %d (expected %llu): a handle leak\n", after,
              (unsigned long long)n, (int)types[i], (unsigned long long)base[i]);
      abort();
    }
  }
  have_base = 1;
}
