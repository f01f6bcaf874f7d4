/* image.h — pictures for an image model: PNG decoding (libpng) and the MNIST normalisation.
 *
 * MNIST's digits were made from NIST's by fitting each into a 20×20 box (aspect kept,
 * anti-aliased) and centring the box by its centre of mass in a 28×28 field, white ink on black.
 * image_fit does the same to any grey picture: a light background (the mean of the outermost
 * pixel ring above 127) is inverted first; the border mean is taken as the background level and
 * subtracted (clamped at 0); the bounding box of what remains is resampled by area averaging to fit
 * a box of 20/28 of the model's shape; that patch is placed so that its centre of mass falls on the
 * centre of the field (rounded to whole pixels, clipped at the edges). A picture already of the
 * model's shape with a dark background is taken as it is, so MNIST images written as PNG (or read
 * from idx files) give exactly their dataset rows. */
#ifndef DPT_IMAGE_H
#define DPT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Decode PNG bytes (any bit depth, grey, RGB, palette, with or without alpha) to 8-bit grey
 * (libpng's simplified API: sRGB luminance, alpha composited on black). *pixels is a new
 * [*height, *width] buffer (free it). Returns 0, or -1 with log_fail("why") for a truncated file
 * (one that does not end with the IEND chunk: libpng's simplified reader would accept it when the
 * pixels happen to be complete), a damaged one, or one that is not a PNG. */
int image_png_decode(const void *bytes, size_t n, uint8_t **pixels, int *width, int *height);

/* The model's input image [rows, cols] made from grey src [h, w] as described above, into out
 * [rows * cols]. Returns 0, or -1 with log_fail("blank image: nothing but background") when
 * nothing stands out from the background. */
int image_fit(const uint8_t *src, int w, int h, int rows, int cols, uint8_t *out);

#endif
