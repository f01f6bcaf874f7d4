/* idx.c — idx parser and the MNIST / Fashion-MNIST prep (idx files -> the HDF5 layout of docs/design.md). */
#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "h5io.h"
#include "hash.h"
#include "log.h"
#include "prep.h"

int idx_parse(const uint8_t *b, size_t n, const char *name, idx_array *out) {
  memset(out, 0, sizeof *out);
  if (n < 4) return log_fail("%s: truncated idx file (%zu bytes, no header)", name, n);
  if (b[0] != 0 || b[1] != 0) return log_fail("%s: not an idx file (bad magic %02x %02x)", name, b[0], b[1]);
  if (b[2] != 0x08) return log_fail("%s: idx element type 0x%02x is not unsigned byte (0x08)", name, b[2]);
  int nd = b[3];
  if (nd < 1 || nd > IDX_MAX_DIMS) return log_fail("%s: idx with %d dimensions", name, nd);
  size_t head = 4 + 4 * (size_t)nd;
  if (n < head) return log_fail("%s: truncated idx header", name);
  size_t count = 1;
  for (int i = 0; i < nd; i++) {
    const uint8_t *p = b + 4 + 4 * i;
    uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (d == 0) return log_fail("%s: idx dimension %d is zero", name, i);
    if (count > SIZE_MAX / d) return log_fail("%s: idx dimensions overflow", name);
    out->dims[i] = d;
    count *= d;
  }
  if (n - head < count)
    return log_fail("%s: truncated idx file: header promises %zu bytes of data, file has %zu", name, count, n - head);
  if (n - head > count) return log_fail("%s: %zu unexpected bytes after the idx data", name, n - head - count);
  out->ndim = nd;
  out->data = b + head;
  out->count = count;
  return 0;
}

int idx_load(const char *path, buf *raw, idx_array *out, char sha256[65]) {
  gzFile gz = gzopen(path, "rb");
  if (!gz) return log_fail("%s: %s", path, errno ? strerror(errno) : "cannot open");
  gzbuffer(gz, 1 << 18);
  buf_clear(raw);
  int n;
  do {
    buf_reserve(raw, 1 << 20);
    n = gzread(gz, raw->data + raw->len, 1 << 20);
    if (n > 0) raw->len += (size_t)n;
  } while (n > 0);
  int zerr = 0;
  const char *zmsg = gzerror(gz, &zerr);
  int bad = n < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR);
  /* zlib reports a gzip stream cut short as Z_BUF_ERROR at close (and via gzerror). */
  if (!bad && gzclose_r(gz) != Z_OK) return log_fail("%s: truncated or corrupt gzip data", path);
  if (bad) { /* zmsg lives in gz's state: record it before gzclose_r frees it */
    log_fail("%s: corrupt gzip data (%s)", path, zmsg);
    gzclose_r(gz);
    return -1;
  }
  if (zerr == Z_BUF_ERROR) return log_fail("%s: truncated gzip data", path);
  hash_sha256_buf(raw->data, raw->len, sha256);
  return idx_parse((const uint8_t *)raw->data, raw->len, path, out);
}

char *idx_find(const char *dir, const char *base) {
  char dotted[128];
  snprintf(dotted, sizeof dotted, "%s", base);
  char *dash = strstr(dotted, "-idx");
  if (dash) *dash = '.';
  const char *names[2] = {base, dotted};
  buf p = {0};
  struct stat st;
  for (int i = 0; i < 2; i++)
    for (int gz = 0; gz < 2; gz++) {
      buf_clear(&p);
      buf_printf(&p, "%s/%s%s", dir, names[i], gz ? ".gz" : "");
      if (stat(p.data, &st) == 0 && S_ISREG(st.st_mode)) return p.data;
    }
  buf_free(&p);
  if (stat(dir, &st) != 0)
    log_fail("%s: %s", dir, strerror(errno));
  else
    log_fail("%s: %s (or .gz) not found", dir, base);
  return NULL;
}

/* ---- prep mnist / fashion --------------------------------------------------------------------- */

enum { IDX_TRAIN_X, IDX_TRAIN_Y, IDX_TEST_X, IDX_TEST_Y, IDX_NFILES };
static const char *const k_idx_names[IDX_NFILES] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* Check one images/labels pair and write /SPLIT/X (uint8 [N, H*W], scale 1/255) and /SPLIT/y. */
static int write_split(hid_t file, const char *out, const char *split, const idx_array *x, const idx_array *y,
                       const char *xpath, const char *ypath) {
  if (x->ndim != 3) return log_fail("%s: expected 3-D images, got %d-D", xpath, x->ndim);
  if (y->ndim != 1) return log_fail("%s: expected 1-D labels, got %d-D", ypath, y->ndim);
  if (x->dims[0] != y->dims[0])
    return log_fail("%s: %u labels for %u images in %s", ypath, y->dims[0], x->dims[0], xpath);
  for (size_t i = 0; i < y->count; i++)
    if (y->data[i] > 9) return log_fail("%s: label %u at row %zu is not a digit class 0..9", ypath, y->data[i], i);
  char name[32];
  hsize_t dx[2] = {x->dims[0], (hsize_t)x->dims[1] * x->dims[2]}, dy[1] = {y->dims[0]};
  snprintf(name, sizeof name, "/%s/X", split);
  if (h5io_write(file, name, H5T_NATIVE_UINT8, 2, dx, x->data, 0)) return log_prefix(out);
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  int64_t shape[2] = {x->dims[1], x->dims[2]};
  int rc = h5io_attr_double(ds, "scale", 1.0 / 255.0);
  if (!rc) rc = h5io_attr_int64s(ds, "image_shape", shape, 2);
  H5Dclose(ds);
  snprintf(name, sizeof name, "/%s/y", split);
  if (!rc) rc = h5io_write(file, name, H5T_NATIVE_UINT8, 1, dy, y->data, 0);
  return rc ? log_prefix(out) : 0;
}

int prep_idx(const prep_opts *o, const char *name) {
  buf raw[IDX_NFILES] = {{0}};
  idx_array a[IDX_NFILES];
  char *path[IDX_NFILES] = {0}, sha[IDX_NFILES][65];
  buf manifest = {0};
  h5io_out out = {.file = H5I_INVALID_HID};
  int rc = -1;
  for (int i = 0; i < IDX_NFILES; i++) {
    if (!(path[i] = idx_find(o->src, k_idx_names[i]))) goto done;
    if (idx_load(path[i], &raw[i], &a[i], sha[i])) goto done;
    buf_printf(&manifest, "%s  %s\n", sha[i], k_idx_names[i]);
  }
  if (a[IDX_TRAIN_X].dims[1] != a[IDX_TEST_X].dims[1] || a[IDX_TRAIN_X].dims[2] != a[IDX_TEST_X].dims[2]) {
    log_fail("%s: test images are %ux%u but training images are %ux%u", path[IDX_TEST_X], a[IDX_TEST_X].dims[1],
             a[IDX_TEST_X].dims[2], a[IDX_TRAIN_X].dims[1], a[IDX_TRAIN_X].dims[2]);
    goto done;
  }
  if (h5io_create(&out, o->out)) goto done;
  if (write_split(out.file, o->out, "train", &a[IDX_TRAIN_X], &a[IDX_TRAIN_Y], path[IDX_TRAIN_X], path[IDX_TRAIN_Y]) ||
      write_split(out.file, o->out, "test", &a[IDX_TEST_X], &a[IDX_TEST_Y], path[IDX_TEST_X], path[IDX_TEST_Y]))
    goto done;
  char source[160];
  snprintf(source, sizeof source, "%s idx files (SHA-256 of the decompressed bytes in source_sha256)",
           strcmp(name, "fashion") == 0 ? "Fashion-MNIST" : "MNIST");
  static char *const k_digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  static char *const k_fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  if (h5io_attr_int64(out.file, "num_classes", 10) || h5io_attr_string(out.file, "source", source) ||
      h5io_attr_string(out.file, "source_sha256", manifest.data) ||
      h5io_attr_strings(out.file, "class_names", strcmp(name, "fashion") == 0 ? k_fashion : k_digits, 10)) {
    log_prefix(o->out);
    goto done;
  }
  if (h5io_commit(&out)) goto done;
  printf("%s: train %u x %u, test %u x %u -> %s\n", name, a[IDX_TRAIN_X].dims[0],
         a[IDX_TRAIN_X].dims[1] * a[IDX_TRAIN_X].dims[2], a[IDX_TEST_X].dims[0],
         a[IDX_TEST_X].dims[1] * a[IDX_TEST_X].dims[2], o->out);
  rc = 0;
done:
  if (rc) h5io_discard(&out);
  for (int i = 0; i < IDX_NFILES; i++) buf_free(&raw[i]), free(path[i]);
  buf_free(&manifest);
  return rc;
}
