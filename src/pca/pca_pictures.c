/* pca_pictures.c — the gnuplot pictures of a PCA fit (see pca_pictures.h): scripts and data files
 * in a temporary directory, gnuplot started with posix_spawnp, waited for at the process's end.
 * gnuplot's scatter and scree plot (pngcairo, zlib and its page faults) take about as long as
 * everything after the fit together, so it runs beside the rest of the
 * command, MPI_Finalize included. */
#include "pca_pictures.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "h5io.h"
#include "log.h"

extern char **environ; /* POSIX: the environment gnuplot inherits */

/* One gnuplot process and its temporary directory. */
typedef struct picture {
  pid_t pid;                 /* gnuplot, 0 when none is running */
  char *tmp;                 /* its temporary directory (malloc'd), NULL when none */
  char what[64];             /* the PNG files it draws, for the lines */
  char out[PATH_MAX];        /* pca.h5's path, for the lines */
  char line[PATH_MAX + 192]; /* the line to print, "" for none */
} picture;

static picture g_pic; /* the one gnuplot of this process */

static int on_path(const char *prog) {
  const char *p = getenv("PATH");
  if (!p) return 0;
  char *copy = xstrdup(p), *save = NULL;
  int found = 0;
  for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
    char *full = xmalloc(strlen(dir) + strlen(prog) + 2);
    sprintf(full, "%s/%s", *dir ? dir : ".", prog);
    found = access(full, X_OK) == 0;
    free(full);
  }
  free(copy);
  return found;
}

int pca_pictures_prepare(const char *out, const char *data_path, char *why, size_t n) {
  if (!on_path("gnuplot")) return snprintf(why, n, "pictures skipped: gnuplot is not on PATH"), 0;
  if (strchr(out, '\'') || strchr(data_path, '\'')) return snprintf(why, n, "pictures skipped: a quote in the path"), 0;
  const char *slash = strrchr(out, '/');
  if (slash && slash != out) { /* gnuplot may write before pca.h5 (and its directory) is */
    char *dir = xstrdup(out);
    dir[slash - out] = '\0';
    struct stat st;
    int ok = (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) || h5io_mkdir_p(dir) == 0;
    free(dir);
    if (!ok) return snprintf(why, n, "pictures skipped: %s", log_last_error()), 0;
  }
  return 1;
}

/* "DIR/NAME" where DIR is the directory of `path` (malloc'd). */
static char *beside(const char *path, const char *name) {
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path) : 1;
  char *s = xmalloc(dl + strlen(name) + 2);
  if (slash)
    sprintf(s, "%.*s/%s", (int)dl, path, name);
  else
    sprintf(s, "./%s", name);
  return s;
}

/* A growing script text. */
typedef struct text {
  char *s;
  size_t len, cap;
} text;
static void text_add(text *t, const char *fmt, ...) LOG_PRINTF(2, 3);
static void text_add(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = (t->len + (size_t)n + 1) * 2;
    char *ns = xmalloc(t->cap);
    if (t->s) memcpy(ns, t->s, t->len + 1);
    free(t->s);
    t->s = ns;
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

/* Set p up for drawing `what` beside out: a fresh temporary directory. Returns the path buffer
 * for its files (malloc'd, room for "/NAME" of up to 31 characters), or NULL with p->line set. */
static char *picture_open(picture *p, const char *out, const char *what) {
  memset(p, 0, sizeof *p);
  snprintf(p->what, sizeof p->what, "%s", what);
  snprintf(p->out, sizeof p->out, "%s", out);
  const char *tdir = getenv("TMPDIR");
  if (!tdir || !*tdir) tdir = "/tmp";
  char *tmp = xmalloc(strlen(tdir) + 32);
  sprintf(tmp, "%s/dptrain_pca.XXXXXX", tdir);
  if (!mkdtemp(tmp)) {
    snprintf(p->line, sizeof p->line, "pictures skipped: cannot create a temporary directory in %s", tdir);
    free(tmp);
    return NULL;
  }
  p->tmp = tmp;
  return xmalloc(strlen(tmp) + 32);
}

/* Write script to FILE = TMP/plot.gp and start gnuplot on it (stdin /dev/null: a rank's stdin
 * may be mpirun's). Frees script and file. Returns 0 when it runs, else -1 with p->line set. */
static int picture_spawn(picture *p, text *script, char *file) {
  sprintf(file, "%s/plot.gp", p->tmp);
  FILE *g = fopen(file, "w");
  int wrote = g && fputs(script->s, g) >= 0;
  if (g && fclose(g) != 0) wrote = 0;
  char *argv[] = {"gnuplot", file, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int err = wrote ? posix_spawnp(&p->pid, "gnuplot", &fa, NULL, argv, environ) : EIO;
  posix_spawn_file_actions_destroy(&fa);
  if (err) {
    p->pid = 0;
    snprintf(p->line, sizeof p->line, "pictures skipped: cannot start gnuplot on %s: %s", file, strerror(err));
  }
  free(script->s);
  free(file);
  return err ? -1 : 0;
}

/* The scree plot: the ratio per component as bars, the cumulative ratio as a line. */
static void script_scree(text *sc, const pca_result *r, const char *out, const char *data_path, const char *tmp,
                         char *file) {
  int k = r->k;
  double cum = 0;
  sprintf(file, "%s/scree.dat", tmp);
  FILE *f = fopen(file, "w");
  if (!f) return;
  for (int i = 0; i < k; i++) {
    cum += r->explained_variance_ratio[i];
    fprintf(f, "%d %.8g %.8g\n", i + 1, r->explained_variance_ratio[i], cum);
  }
  fclose(f);
  char *png = beside(out, "scree.png");
  text_add(sc, "set terminal pngcairo size 900,520 font ',10' noenhanced\nset output '%s'\n", png);
  text_add(sc, "set title 'explained variance ratio, %d components of %s (%.1f%% in all)'\n", k, data_path, 100 * cum);
  text_add(sc,
           "set xlabel 'component'\nset ylabel 'ratio per component (bars)'\nset y2label 'cumulative ratio (line)'\n"
           "set xrange [0.3:%d.7]\nset yrange [0:*]\nset y2range [0:1]\nset ytics nomirror\nset y2tics 0.1\n"
           "set grid y2tics\nset style fill solid 0.7 border -1\nset boxwidth 0.75 relative\nset key top center\n"
           "plot '%s' using 1:2 with boxes lc rgb '#4c72b0' title 'per component', "
           "'' using 1:3 axes x1y2 with linespoints pt 7 ps 0.7 lw 2 lc rgb '#dd5500' title 'cumulative'\n",
           k, file);
  free(png);
}

/* The eigendigits: a 4×4 multiplot of the top components as img[0]×img[1] images. */
static void script_eigendigits(text *sc, const pca_result *r, const char *out, const char *data_path,
                               const int64_t img[2], const char *tmp, char *file) {
  int nimg = r->k < PCA_PICTURES_MAX_IMAGES ? r->k : PCA_PICTURES_MAX_IMAGES;
  int64_t d = r->d;
  char *png = beside(out, "eigendigits.png");
  text_add(sc, "set terminal pngcairo size 1000,1060 font ',10' noenhanced\nset output '%s'\n", png);
  text_add(sc,
           "set multiplot layout 4,4 title 'top %d principal components of %s (red +, blue -, white 0)' font ',12'\n",
           nimg, data_path);
  text_add(sc,
           "set palette defined (-1 '#2166ac', 0 '#f7f7f7', 1 '#b2182b')\n"
           "unset colorbox\nunset xtics\nunset ytics\nset size ratio -1\nset lmargin 1\nset rmargin 1\n"
           "set xrange [-0.5:%lld.5]\nset yrange [%lld.5:-0.5]\n",
           (long long)img[1] - 1, (long long)img[0] - 1);
  for (int i = 0; i < nimg; i++) {
    const double *v = r->components + i * d;
    double mx = 0;
    for (int64_t j = 0; j < d; j++) mx = fmax(mx, fabs(v[j]));
    sprintf(file, "%s/c%d.dat", tmp, i);
    FILE *f = fopen(file, "w");
    if (!f) continue;
    for (int64_t a = 0; a < img[0]; a++) {
      for (int64_t b = 0; b < img[1]; b++) fprintf(f, "%s%.6g", b ? " " : "", v[a * img[1] + b]);
      fputc('\n', f);
    }
    fclose(f);
    text_add(sc, "set title 'PC %d  (%.1f%%)'\nset cbrange [%g:%g]\nplot '%s' matrix with image notitle\n", i + 1,
             100 * r->explained_variance_ratio[i], -mx, mx, file);
  }
  text_add(sc, "unset multiplot\nreset\n");
  free(png);
}

/* The scatter of the first two coordinates, one colour per label (a data block per label). */
static void script_scatter(text *sc, const pca_result *r, const char *out, const char *data_path, const float *xy,
                           const int32_t *y, int64_t m, const char *tmp, char *file) {
  int32_t ymax = 0;
  for (int64_t t = 0; t < m; t++) ymax = y[t] > ymax ? y[t] : ymax;
  sprintf(file, "%s/scatter.dat", tmp);
  FILE *f = fopen(file, "w");
  if (!f) return;
  static const char *const colours[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  char *png = beside(out, "scatter.png");
  text_add(sc, "set terminal pngcairo size 900,760 font ',10' noenhanced\nset output '%s'\n", png);
  text_add(sc, "set title 'first two principal components of %lld training rows of %s'\n", (long long)m, data_path);
  text_add(sc, "set xlabel 'PC 1 (%.1f%% of the variance)'\nset ylabel 'PC 2 (%.1f%% of the variance)'\n",
           100 * r->explained_variance_ratio[0], 100 * r->explained_variance_ratio[1]);
  text_add(sc, "set grid\nset key outside right top title 'label' box Left reverse spacing 1.2\nplot ");
  int block = 0;
  for (int32_t c = 0; c <= ymax; c++) {
    int64_t cnt = 0;
    for (int64_t t = 0; t < m; t++)
      if (y[t] == c) {
        fprintf(f, "%.6g %.6g\n", xy[t * 2], xy[t * 2 + 1]);
        cnt++;
      }
    if (!cnt) continue;
    fprintf(f, "\n\n");
    if (c < 10)
      text_add(sc, "%s'%s' index %d using 1:2 with points pt 7 ps 0.45 lc rgb '%s' title '%d'", block ? ", " : "", file,
               block, colours[c], (int)c);
    else
      text_add(sc, "%s'%s' index %d using 1:2 with points pt 7 ps 0.45 lc %d title '%d'", block ? ", " : "", file,
               block, (int)c + 1, (int)c);
    block++;
  }
  text_add(sc, "\nreset\n");
  fclose(f);
  free(png);
}

int pca_pictures_start(const pca_result *r, const char *out, const char *data_path, const float *xy, const int32_t *y,
                       int64_t m, const int64_t img[2]) {
  const int digits = img[0] > 0 && img[1] > 0 && img[0] * img[1] == r->d, scatter = r->k >= 2 && m > 0;
  picture *p = &g_pic;
  char what[64];
  snprintf(what, sizeof what, "%s%sscree.png", digits ? "eigendigits.png, " : "", scatter ? "scatter.png, " : "");
  char *file = picture_open(p, out, what);
  if (!file) return -1;
  text sc = {0};
  if (digits) script_eigendigits(&sc, r, out, data_path, img, p->tmp, file);
  if (scatter) script_scatter(&sc, r, out, data_path, xy, y, m, p->tmp, file);
  script_scree(&sc, r, out, data_path, p->tmp, file);
  return picture_spawn(p, &sc, file);
}

/* Wait for p's gnuplot (if one runs), set p->line to what happened, remove its directory. */
static void picture_finish(picture *p) {
  if (p->pid > 0) {
    int st = 0;
    pid_t got;
    while ((got = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR) {
    }
    if (got == p->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
      snprintf(p->line, sizeof p->line, "wrote %s beside %s", p->what, p->out);
    else if (got == p->pid && WIFEXITED(st))
      snprintf(p->line, sizeof p->line, "pictures: gnuplot failed drawing %s (exit status %d)", p->what,
               WEXITSTATUS(st));
    else
      snprintf(p->line, sizeof p->line, "pictures: gnuplot did not finish %s (%s)", p->what,
               got < 0 ? strerror(errno) : "killed by a signal");
    p->pid = 0;
  }
  if (p->tmp) {
    DIR *dir = opendir(p->tmp);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *f = xmalloc(strlen(p->tmp) + strlen(e->d_name) + 2);
      sprintf(f, "%s/%s", p->tmp, e->d_name);
      unlink(f);
      free(f);
    }
    if (dir) closedir(dir);
    rmdir(p->tmp);
    free(p->tmp);
    p->tmp = NULL;
  }
}

void pca_pictures_wait(int print) {
  picture_finish(&g_pic);
  if (print && g_pic.line[0]) printf("%s\n", g_pic.line);
  g_pic.line[0] = '\0';
  fflush(stdout);
}
