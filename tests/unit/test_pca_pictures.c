/* test_pca_pictures.c — the gnuplot pictures of `dptrain pca` (src/pca/pca_pictures.c), with a
 * stand-in gnuplot (a shell script first on PATH) so that the test needs no gnuplot and sees what
 * the real one would be asked to do.
 * Checks: pca_pictures_prepare says why pictures are skipped (gnuplot not on PATH, a quote, a
 * directory that cannot be made) and creates the directory of pca.out (gnuplot starts before
 * rank 0 writes pca.h5, so the directory must be there first); pca_pictures_start writes one
 * script that draws the eigendigits (image data only), the scatter (k >= 2 and rows) and the scree
 * plot beside pca.out; pca_pictures_wait prints "wrote ... beside OUT" when gnuplot succeeds and
 * "pictures: gnuplot failed drawing ... (exit status N)" when it fails, and removes the temporary
 * directory either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pca_pictures.h"

static char g_base[64];   /* a fresh directory for each test */
static char g_path[4096]; /* PATH as the test found it */

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Put an executable `gnuplot` with the shell body `body` in BASE/bin, first on PATH. */
static void stand_in(const char *body) {
  char dir[128], file[160];
  snprintf(dir, sizeof dir, "%s/bin", g_base);
  mkdir(dir, 0777);
  snprintf(file, sizeof file, "%s/gnuplot", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\n%s\n", body);
  fclose(f);
  chmod(file, 0755);
  char path[sizeof g_path + 160];
  snprintf(path, sizeof path, "%s:%s", dir, g_path);
  setenv("PATH", path, 1);
}

static int setup(void **state) {
  (void)state;
  const char *p = getenv("PATH");
  snprintf(g_path, sizeof g_path, "%s", p ? p : "/usr/bin:/bin");
  snprintf(g_base, sizeof g_base, "/tmp/test_pca_pictures.XXXXXX");
  assert_non_null(mkdtemp(g_base));
  char tmp[96];
  snprintf(tmp, sizeof tmp, "%s/tmp", g_base);
  mkdir(tmp, 0777);
  setenv("TMPDIR", tmp, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  setenv("PATH", g_path, 1);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_base);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_prepare(void **state) {
  (void)state;
  char why[512], out[160];
  stand_in("exit 0");
  snprintf(out, sizeof out, "%s/a/b/pca.h5", g_base);
  assert_int_equal(pca_pictures_prepare(out, "data.h5", why, sizeof why), 1);
  snprintf(out, sizeof out, "%s/a/b", g_base);
  assert_true(is_dir(out));                                                        /* made before gnuplot starts */
  assert_int_equal(pca_pictures_prepare("pca.h5", "data.h5", why, sizeof why), 1); /* no directory part */
  snprintf(out, sizeof out, "%s/it's/pca.h5", g_base);
  assert_int_equal(pca_pictures_prepare(out, "data.h5", why, sizeof why), 0);
  assert_string_equal(why, "pictures skipped: a quote in the path");
  assert_int_equal(pca_pictures_prepare("/proc/nope/pca.h5", "data.h5", why, sizeof why), 0);
  assert_non_null(strstr(why, "pictures skipped: /proc/nope: cannot create directory"));
  snprintf(out, sizeof out, "%s/empty", g_base);
  mkdir(out, 0777);
  setenv("PATH", out, 1);
  assert_int_equal(pca_pictures_prepare("pca.h5", "data.h5", why, sizeof why), 0);
  assert_string_equal(why, "pictures skipped: gnuplot is not on PATH");
}

/* Run start + wait on a 2-component result of 4 features (2×2 images) with 3 rows; the stand-in
 * copies its script to BASE/script.gp. Returns what pca_pictures_wait printed (static). */
static const char *draw(const char *exit_code, const int64_t img[2], int64_t m) {
  char body[256], out[160], log[160];
  snprintf(body, sizeof body, "cp \"$1\" '%s/script.gp'\nexit %s", g_base, exit_code);
  stand_in(body);
  double comp[8] = {0.5, -0.5, 0.5, 0.5, 0.1, 0.9, -0.3, 0.3}, ev[2] = {2, 1}, ratio[2] = {0.5, 0.25};
  pca_result r = {.k = 2, .d = 4, .components = comp, .explained_variance = ev, .explained_variance_ratio = ratio};
  float xy[6] = {1, 2, 3, 4, 5, 6};
  int32_t y[3] = {0, 1, 1};
  snprintf(out, sizeof out, "%s/run/pca.h5", g_base);
  char why[512];
  assert_int_equal(pca_pictures_prepare(out, "data.h5", why, sizeof why), 1);
  assert_int_equal(pca_pictures_start(&r, out, "data.h5", xy, y, m, img), 0);
  snprintf(log, sizeof log, "%s/stdout.txt", g_base);
  fflush(stdout);
  int keep = dup(1);
  assert_non_null(freopen(log, "w", stdout));
  pca_pictures_wait(1);
  pca_pictures_wait(1); /* again: nothing more */
  fflush(stdout);
  dup2(keep, 1);
  close(keep);
  static char said[1024];
  FILE *f = fopen(log, "r");
  size_t n = f ? fread(said, 1, sizeof said - 1, f) : 0;
  said[n] = '\0';
  if (f) fclose(f);
  char tmp[96];
  snprintf(tmp, sizeof tmp, "%s/tmp", g_base);
  assert_int_equal(rmdir(tmp), 0); /* empty: the temporary directory was removed */
  mkdir(tmp, 0777);
  return said;
}

/* The script the stand-in received contains `what`. */
static int script_has(const char *what) {
  char file[160], text[8192];
  snprintf(file, sizeof file, "%s/script.gp", g_base);
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return strstr(text, what) != NULL;
}

static void test_start_and_wait(void **state) {
  (void)state;
  char want[512];
  const int64_t img[2] = {2, 2}, none[2] = {0, 0};
  snprintf(want, sizeof want, "wrote eigendigits.png, scatter.png, scree.png beside %s/run/pca.h5\n", g_base);
  assert_string_equal(draw("0", img, 3), want);
  snprintf(want, sizeof want, "set output '%s/run/eigendigits.png'", g_base);
  assert_true(script_has(want));
  assert_true(script_has("first two principal components of 3 training rows of data.h5"));
  snprintf(want, sizeof want, "set output '%s/run/scree.png'", g_base);
  assert_true(script_has(want));
  /* not images, no rows: the scree plot alone */
  snprintf(want, sizeof want, "wrote scree.png beside %s/run/pca.h5\n", g_base);
  assert_string_equal(draw("0", none, 0), want);
  assert_false(script_has("eigendigits.png"));
  assert_false(script_has("scatter.png"));
  /* a gnuplot that fails: one line, and the temporary files are gone all the same */
  assert_string_equal(draw("3", none, 3), "pictures: gnuplot failed drawing scatter.png, scree.png (exit status 3)\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_and_wait, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
