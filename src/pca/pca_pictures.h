/* pca_pictures.h — the PNG pictures of a PCA fit beside pca.h5: eigendigits.png (the top 16
 * components as images, for image data), scatter.png (PC 1 vs PC 2 of the gathered rows, coloured
 * by label) and scree.png (explained variance ratio per component, and cumulative).
 *
 * They are drawn by one gnuplot child process that runs on while the ranks write the results and
 * finalise MPI; the process that started it waits for it at its very end. pca_pictures_start
 * writes the data and the script to a fresh temporary directory under $TMPDIR (else /tmp) and
 * starts gnuplot on them without waiting (stdin /dev/null). pca_pictures_wait, called after
 * MPI_Finalize, waits for it, prints one line ("wrote eigendigits.png, scatter.png, scree.png
 * beside OUT", or "pictures: gnuplot failed drawing ... (exit status N)": a failed picture is a
 * line, not a failed run) and removes the temporary files. One gnuplot per process at most. */
#ifndef DPT_PCA_PICTURES_H
#define DPT_PCA_PICTURES_H

#include <stddef.h>
#include <stdint.h>

#include "pca.h"

/* The most components eigendigits.png draws (a 4 × 4 grid): the rows the pictures need whole. */
#define PCA_PICTURES_MAX_IMAGES 16

/* 1 when pictures can be drawn for `out` (gnuplot on PATH, no quote in out or data_path, the
 * directory of out there: it is created here, as gnuplot may write before pca.h5 is), else 0 with
 * the line to print in why[n] ("pictures skipped: ..."). */
int pca_pictures_prepare(const char *out, const char *data_path, char *why, size_t n);

/* Start gnuplot on the pictures of r beside out: the eigendigits when img = {rows, cols} with
 * rows·cols = r->d, the scatter of the m rows xy [m, 2] with labels y when r->k >= 2 and m > 0,
 * and the scree plot. Returns 0 when it runs, -1 when it could not start (the reason is the line
 * pca_pictures_wait prints). */
int pca_pictures_start(const pca_result *r, const char *out, const char *data_path, const float *xy, const int32_t *y,
                       int64_t m, const int64_t img[2]);

/* Wait for the gnuplot this process started (if any), print its line when print is non-zero
 * (stdout, flushed), remove its temporary files. Safe to call again, and with nothing started. */
void pca_pictures_wait(int print);

#endif
