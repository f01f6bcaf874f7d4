/* data.h — dataset files (docs/design.md layout) opened by every rank, read by row ranges.
 *
 * A dataset file has /train and optionally /test, each with X (a dense [N, D] dataset of any
 * integer or float type, with an optional `scale` attribute, or a CSR group data/indices/indptr
 * with attribute shape = [N, D]) and y ([N] integer class labels, any numeric type holding whole
 * numbers). Chunked, contiguous and gzip-compressed storage are all accepted (what h5py writes).
 *
 * data_open() is collective over a communicator (MPI-IO file driver) and validates the structure;
 * afterwards every rank reads only the rows it asks for: hyperslabs for dense X, an indptr range
 * and then one data/indices range for CSR. Reads check values: labels must be whole numbers in
 * [0, num_classes), features finite, CSR indices in [0, D) and indptr non-decreasing. */
#ifndef DPT_DATA_H
#define DPT_DATA_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

typedef enum data_kind { DATA_DENSE = 0, DATA_CSR = 1 } data_kind;

typedef struct data_split {
  const char *name; /* "train" or "test" */
  int present;      /* 0 when the file has no such split */
  data_kind kind;
  int64_t rows, cols;          /* N, D */
  int64_t nnz;                 /* CSR: stored entries; dense: rows * cols */
  double scale;                /* dense: stored values are multiplied by this (1 when no attribute) */
  hid_t x;                     /* dense: the X dataset; CSR: the X group */
  hid_t data, indices, indptr; /* CSR members (H5I_INVALID_HID for dense) */
  hid_t y;                     /* labels dataset */
} data_split;

typedef struct data_file {
  hid_t file;
  char *path;
  int64_t num_classes; /* root attribute num_classes; -1 when absent (labels need only be >= 0) */
  data_split train, test;
} data_file;

/* Rows [begin, end) of one split held in memory. */
typedef struct data_block {
  data_kind kind;
  int64_t begin, end, cols;
  float *x;         /* dense: [(end - begin), cols] row-major, scale applied */
  int64_t *indptr;  /* CSR: [(end - begin) + 1], rebased so indptr[0] = 0 */
  int32_t *indices; /* CSR: [nnz] column of each entry */
  float *values;    /* CSR: [nnz] */
  int64_t nnz;      /* CSR: entries held */
  int32_t *y;       /* [(end - begin)] labels */
} data_block;

/* Open PATH on every rank of comm (collective; MPI_COMM_NULL opens serially) and validate the
 * layout. Returns 0, or -1 on every rank of comm; the ranks that found the problem have
 * log_fail("PATH: what is wrong"), the others are silent (log_silent). After a failure too, call
 * data_close(f) on every rank: it releases what was opened. */
int data_open(data_file *f, const char *path, MPI_Comm comm);

/* Close the file (collective when it was opened collectively). Safe on a zeroed struct. */
void data_close(data_file *f);

/* The contiguous block of rows [*begin, *end) that `rank` of `size` owns out of n: the first
 * n % size ranks get one row more. */
void data_shard(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

/* Read rows [begin, end) of split s (0 <= begin <= end <= rows) into b (allocated here; free with
 * data_block_free). Not collective. Returns 0, or -1 with log_fail("PATH: /SPLIT/..: why"). */
int data_read_block(const data_file *f, const data_split *s, int64_t begin, int64_t end, data_block *b);

/* The bytes of the file that data_read_block read for b (from split s): X's rows (dense) or their
 * data, indices and indptr (CSR), and their labels, at the stored types' sizes. */
double data_block_file_bytes(const data_split *s, const data_block *b);

/* Release what data_read_block allocated; the block is zeroed. */
void data_block_free(data_block *b);

#endif
