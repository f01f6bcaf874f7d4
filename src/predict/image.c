/* image.c — PNG decoding and the MNIST normalisation (see image.h). */
#include "image.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

int image_png_decode(const void *bytes, size_t n, uint8_t **pixels, int *width, int *height) {
  *pixels = NULL;
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (n < 8 || png_sig_cmp((png_const_bytep)bytes, 0, 8) != 0) return log_fail("not a PNG file (no PNG signature)");
  static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  if (n < 8 + 25 + 12 || memcmp((const char *)bytes + n - 12, iend, 12) != 0) /* libpng reads on without it */
    return log_fail("truncated PNG: the file does not end with the IEND chunk");
  if (!png_image_begin_read_from_memory(&img, bytes, n))
    return log_fail("damaged PNG: %s", img.message[0] ? img.message : "unreadable header");
  img.format = PNG_FORMAT_GRAY;
  if (img.width == 0 || img.height == 0 || img.width > 1u << 14 || img.height > 1u << 14) {
    png_image_free(&img);
    return log_fail("PNG of %ux%u pixels: at most 16384 each way", img.width, img.height);
  }
  uint8_t *px = xmalloc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, NULL, px, 0, NULL)) {
    free(px);
    int rc = log_fail("damaged PNG: %s", img.message[0] ? img.message : "unreadable pixels");
    png_image_free(&img);
    return rc;
  }
  *pixels = px;
  *width = (int)img.width;
  *height = (int)img.height;
  png_image_free(&img);
  return 0;
}

/* Resample src [h, w] rows [y0, y0+bh) cols [x0, x0+bw) to [nh, nw] by area averaging. */
static void resample(const double *src, int w, int x0, int y0, int bw, int bh, double *dst, int nw, int nh) {
  const double sx = (double)bw / nw, sy = (double)bh / nh;
  for (int oy = 0; oy < nh; oy++)
    for (int ox = 0; ox < nw; ox++) {
      const double ya = oy * sy, yb = ya + sy, xa = ox * sx, xb = xa + sx;
      double sum = 0;
      for (int y = (int)ya; y < bh && y < yb; y++) {
        double fy = fmin(yb, y + 1.0) - fmax(ya, (double)y);
        for (int x = (int)xa; x < bw && x < xb; x++) {
          double fx = fmin(xb, x + 1.0) - fmax(xa, (double)x);
          if (fx > 0 && fy > 0) sum += fx * fy * src[(size_t)(y0 + y) * (size_t)w + (size_t)(x0 + x)];
        }
      }
      dst[oy * nw + ox] = sum / (sx * sy);
    }
}

int image_fit(const uint8_t *src, int w, int h, int rows, int cols, uint8_t *out) {
  double border = 0;
  int nb = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      if (y == 0 || x == 0 || y == h - 1 || x == w - 1) border += src[y * w + x], nb++;
  border /= nb;
  const int invert = border > 127.5;
  if (!invert && w == cols && h == rows) { /* already the model's picture */
    memcpy(out, src, (size_t)rows * (size_t)cols);
    return 0;
  }
  const double bg = invert ? 255.0 - border : border;
  double *ink = xmalloc(sizeof(double) * (size_t)w * (size_t)h);
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double v = (invert ? 255.0 - src[y * w + x] : src[y * w + x]) - bg;
      ink[y * w + x] = v > 0 ? v : 0;
      if (v > 0) x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
    }
  if (x1 < 0) {
    free(ink);
    return log_fail("blank image: nothing but background");
  }
  const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const double box = 20.0 / 28.0 * (rows < cols ? rows : cols), s = box / (bw > bh ? bw : bh);
  int nw = (int)lround(bw * s), nh = (int)lround(bh * s);
  nw = nw < 1 ? 1 : nw;
  nh = nh < 1 ? 1 : nh;
  double *patch = xmalloc(sizeof(double) * (size_t)nw * (size_t)nh);
  resample(ink, w, x0, y0, bw, bh, patch, nw, nh);
  double mx = 0, m = 0, cx = 0, cy = 0;
  for (int y = 0; y < nh; y++)
    for (int x = 0; x < nw; x++) {
      double v = patch[y * nw + x];
      mx = v > mx ? v : mx, m += v, cx += v * (x + 0.5), cy += v * (y + 0.5);
    }
  const double gain = mx > 0 ? 255.0 / mx : 0; /* full contrast, as the NIST strokes were */
  const int ox = (int)lround(cols / 2.0 - cx / m), oy = (int)lround(rows / 2.0 - cy / m);
  memset(out, 0, (size_t)rows * (size_t)cols);
  for (int y = 0; y < nh; y++)
    for (int x = 0; x < nw; x++) {
      int X = x + ox, Y = y + oy;
      if (X < 0 || Y < 0 || X >= cols || Y >= rows) continue;
      double v = patch[y * nw + x] * gain;
      out[Y * cols + X] = (uint8_t)lround(v > 255 ? 255 : v);
    }
  free(patch);
  free(ink);
  return 0;
}
