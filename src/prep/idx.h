/* idx.h — the idx file format of MNIST and Fashion-MNIST (LeCun's "magic 0x0000 08 NDIM").
 *
 * Layout: 2 zero bytes, type byte (0x08 = unsigned byte, the only type these datasets use), number
 * of dimensions, then NDIM big-endian uint32 sizes, then the data, nothing after it. */
#ifndef DPT_IDX_H
#define DPT_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IDX_MAX_DIMS 4

typedef struct idx_array {
  int ndim;                    /* 1 (labels) or 3 (images) for MNIST */
  uint32_t dims[IDX_MAX_DIMS]; /* sizes, outermost first */
  const uint8_t *data;         /* points into the parsed bytes (not owned) */
  size_t count;                /* product of dims */
} idx_array;

/* Parse and validate idx bytes: magic, type 0x08, 1 <= ndim <= 4, nonzero dims and a payload of
 * exactly prod(dims) bytes. `name` is used in the error. Returns 0, or -1 with log_fail("NAME: …"). */
int idx_parse(const uint8_t *bytes, size_t n, const char *name, idx_array *out);

/* Read a whole file, gzip-compressed or not (zlib reads both), into raw and parse it; sha256 gets
 * the SHA-256 of the decompressed bytes. Returns 0, or -1 with log_fail("PATH: …"). */
int idx_load(const char *path, buf *raw, idx_array *out, char sha256[65]);

/* Find DIR/BASE, DIR/BASE.gz or the dotted variant (train-images.idx3-ubyte[.gz]) of an idx file.
 * Returns a malloc'd path, or NULL with log_fail("DIR: BASE[.gz] not found"). */
char *idx_find(const char *dir, const char *base);

#endif
