/* info.c — `dptrain info`: walk an HDF5 file and print what it holds (see info.h). */
#include "info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "h5io.h"
#include "log.h"

/* "uint8", "float32", "int64", "string", ... for an HDF5 type. */
static void type_name(hid_t t, char *out, size_t n) {
  size_t bits = 8 * H5Tget_size(t);
  switch (H5Tget_class(t)) {
    case H5T_INTEGER:
      snprintf(out, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
      break;
    case H5T_FLOAT:
      snprintf(out, n, "float%zu", bits);
      break;
    case H5T_STRING:
      snprintf(out, n, "%sstring%s", H5Tget_cset(t) == H5T_CSET_UTF8 ? "utf8 " : "",
               H5Tis_variable_str(t) > 0 ? "" : "(fixed)");
      break;
    default:
      snprintf(out, n, "other");
      break;
  }
}

static void shape_text(hid_t space, char *out, size_t n) {
  hsize_t d[H5S_MAX_RANK];
  int nd = H5Sget_simple_extent_ndims(space);
  H5Sget_simple_extent_dims(space, d, NULL);
  size_t k = (size_t)snprintf(out, n, "[");
  for (int i = 0; i < nd && k < n; i++)
    k += (size_t)snprintf(out + k, n - k, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
  if (k < n) snprintf(out + k, n - k, "]");
}

/* Print one attribute's value compactly (strings: first line, clipped). */
static herr_t print_attr(hid_t obj, const char *name, const H5A_info_t *ainfo, void *indent) {
  (void)ainfo;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  printf("%s@%s = ", (const char *)indent, name);
  if (H5Tget_class(t) == H5T_STRING && n == 1) {
    char *s = NULL;
    h5io_attr_get_string(obj, name, &s);
    const char *v = s ? s : "";
    size_t len = strcspn(v, "\n");
    int lines = 0;
    for (const char *p = v; *p; p++) lines += *p == '\n';
    printf("\"%.*s%s\"", (int)(len > 100 ? 100 : len), v, len > 100 ? "…" : "");
    if (lines > 1) printf(" (+%d more lines)", lines - 1);
    free(s);
  } else if ((H5Tget_class(t) == H5T_INTEGER || H5Tget_class(t) == H5T_FLOAT) && n >= 1 && n <= 16) {
    double v[16];
    H5Aread(a, H5T_NATIVE_DOUBLE, v);
    for (hssize_t i = 0; i < n; i++) printf("%s%.9g", i ? ", " : (n > 1 ? "[" : ""), v[i]);
    if (n > 1) printf("]");
  } else {
    char tn[32];
    type_name(t, tn, sizeof tn);
    printf("<%s, %lld values>", tn, (long long)n);
  }
  printf("\n");
  H5Sclose(sp);
  H5Tclose(t);
  H5Aclose(a);
  return 0;
}

static void print_attrs(hid_t obj, const char *indent) {
  hsize_t idx = 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, (void *)indent);
}

static void print_dataset(hid_t ds, const char *path) {
  hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
  char tn[32], sh[96], store[96] = "contiguous";
  type_name(t, tn, sizeof tn);
  shape_text(sp, sh, sizeof sh);
  if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t c[H5S_MAX_RANK];
    int nd = H5Pget_chunk(dcpl, H5S_MAX_RANK, c);
    size_t k = (size_t)snprintf(store, sizeof store, "chunked [");
    for (int i = 0; i < nd; i++)
      k += (size_t)snprintf(store + k, sizeof store - k, "%s%llu", i ? ", " : "", (unsigned long long)c[i]);
    snprintf(store + k, sizeof store - k, "]");
    for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
      unsigned flags, cd[8];
      size_t ncd = 8;
      char fname[32];
      H5Z_filter_t fid = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
      k = strlen(store);
      if (fid == H5Z_FILTER_DEFLATE)
        snprintf(store + k, sizeof store - k, " gzip %u", ncd ? cd[0] : 0);
      else
        snprintf(store + k, sizeof store - k, " %s", fid == H5Z_FILTER_SHUFFLE ? "shuffle" : fname);
    }
  }
  printf("%-28s %-8s %-18s %s\n", path, tn, sh, store);
  print_attrs(ds, "    ");
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Tclose(t);
}

/* A scipy/anndata CSR group: print it as one matrix. Returns 1 when it was one. */
static int print_csr(hid_t g, const char *path) {
  char *enc = NULL;
  int64_t shape[2];
  if (h5io_attr_get_string(g, "encoding-type", &enc) != 0 || strcmp(enc, "csr_matrix") != 0 ||
      h5io_attr_get_int64s(g, "shape", shape, 2) != 0 || H5Lexists(g, "data", H5P_DEFAULT) <= 0) {
    free(enc);
    return 0;
  }
  free(enc);
  hid_t d = H5Dopen2(g, "data", H5P_DEFAULT), t = H5Dget_type(d), sp = H5Dget_space(d);
  char tn[32];
  type_name(t, tn, sizeof tn);
  long long nnz = (long long)H5Sget_simple_extent_npoints(sp);
  double cells = (double)shape[0] * (double)shape[1];
  printf("%-28s csr_matrix %s [%lld, %lld]  nnz %lld  density %.4g%%  (%.1f per row)\n", path, tn, (long long)shape[0],
         (long long)shape[1], nnz, cells > 0 ? 100.0 * (double)nnz / cells : 0.0,
         shape[0] > 0 ? (double)nnz / (double)shape[0] : 0.0);
  H5Sclose(sp);
  H5Tclose(t);
  H5Dclose(d);
  return 1;
}

static void walk(hid_t g, const char *prefix) {
  H5G_info_t gi;
  H5Gget_info(g, &gi);
  for (hsize_t i = 0; i < gi.nlinks; i++) {
    char name[256], path[512];
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    snprintf(path, sizeof path, "%s/%s", prefix, name);
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
      printf("%-28s (dangling link)\n", path);
      continue;
    }
    if (H5Iget_type(o) == H5I_DATASET)
      print_dataset(o, path);
    else if (H5Iget_type(o) == H5I_GROUP && !print_csr(o, path)) {
      printf("%-28s group\n", path);
      print_attrs(o, "    ");
      walk(o, path);
    } else if (H5Iget_type(o) == H5I_GROUP) {
      print_attrs(o, "    ");
    }
    H5Oclose(o);
  }
}

int info_main(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fputs("usage: dptrain info FILE.h5\n", argc == 2 ? stdout : stderr);
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? LOG_EXIT_OK : LOG_EXIT_USAGE;
  }
  const char *path = argv[1];
  struct stat st;
  if (stat(path, &st) != 0) {
    log_error("%s: %s", path, strerror(errno));
    return LOG_EXIT_RUNTIME;
  }
  h5io_quiet();
  if (H5Fis_hdf5(path) <= 0) {
    log_error("%s: not an HDF5 file", path);
    return LOG_EXIT_RUNTIME;
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    log_error("%s: cannot open: %s", path, h5io_why());
    return LOG_EXIT_RUNTIME;
  }
  printf("%s  (HDF5, %.1f MB)\n", path, (double)st.st_size / 1e6);
  print_attrs(f, "  ");
  walk(f, "");
  H5Fclose(f);
  return LOG_EXIT_OK;
}
