/* h5build.h — turn fuzzer bytes into a small, hostile HDF5 file (for fuzz_dataset, fuzz_checkpoint).
 *
 * Mutating HDF5's on-disk bytes would fuzz libhdf5's own parser, which is not ours to fix; what
 * dptrain must survive is a well-formed file with the wrong structure. So the bytes are a program:
 * each op creates a group, a dataset or an attribute, or a link, at one of the paths and names the
 * readers look for (data.h and checkpoint.h layouts), with a dtype from integers of every width and
 * byte order, floats, strings (fixed, variable), compound, enum, array, opaque and bitfield types;
 * a rank of 0 (scalar) to 3 or a null dataspace; dims from 0 to 2^62; values counting up (a valid
 * indptr), from a table of edge cases (0, -1, 2^31, INT64_MAX, NaN, inf, ...) or raw bytes; and
 * contiguous, chunked, gzip or compact storage. Ops that HDF5 refuses are skipped. A dataset of
 * more than H5BUILD_MAX_WRITE elements is created chunked and left unwritten (it reads as its fill
 * value), so a 2^40-row file stays a few KB.
 *
 * Usage: h5build_file(data, size, "/dev/shm/x.h5", max_elems) writes the file (truncating it) and
 * returns 0, or -1 when HDF5 cannot create it at all. max_elems caps every dataset's declared
 * element count (0: no cap beyond what HDF5 allows). */
#ifndef DPT_FUZZ_H5BUILD_H
#define DPT_FUZZ_H5BUILD_H

#include <stddef.h>
#include <stdint.h>

#define H5BUILD_MAX_WRITE (1 << 14)

int h5build_file(const uint8_t *data, size_t size, const char *path, uint64_t max_elems);

/* Abort when HDF5 still has an object (file, group, dataset, attribute, type) open: a reader that
 * leaks a handle on some path keeps the file open, and the next open of it fails. */
void h5build_check_no_open_objects(const char *after);

#endif
