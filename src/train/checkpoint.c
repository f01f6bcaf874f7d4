/* checkpoint.c — save/load the training state (see checkpoint.h). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "h5io.h"
#include "log.h"

/* Index of the first non-finite value of x[n], or n. */
static size_t first_nonfinite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return i;
  return n;
}

int checkpoint_save(const char *path, const checkpoint *c) {
  for (int i = -1; i < c->n_state; i++) { /* never a non-finite checkpoint: it could only be resumed into NaN */
    const float *x = i < 0 ? c->params : c->state[i];
    const size_t at = first_nonfinite(x, c->n_params);
    if (at < c->n_params)
      return log_fail("%s: not written: %s%s[%zu] is %g; the last good checkpoint is kept", path,
                      i < 0 ? "/params" : "/optim/", i < 0 ? "" : c->state_name[i], at, (double)x[at]);
  }
  h5io_out o;
  if (h5io_create(&o, path)) return -1;
  hsize_t np[1] = {c->n_params}, ns[1] = {4};
  int64_t smp[4] = {c->epoch, c->step_in_epoch, c->n_train, c->batch};
  int rc = h5io_write(o.file, "params", H5T_NATIVE_FLOAT, 1, np, c->params, 0);
  for (int i = 0; !rc && i < c->n_state; i++) {
    char name[96];
    snprintf(name, sizeof name, "optim/%s", c->state_name[i]);
    rc = h5io_write(o.file, name, H5T_NATIVE_FLOAT, 1, np, c->state[i], 0);
  }
  if (!rc) rc = h5io_write(o.file, "sampler", H5T_NATIVE_INT64, 1, ns, smp, 0);
  if (!rc) rc = h5io_attr_int64(o.file, "step", c->step);
  if (!rc) rc = h5io_attr_int64(o.file, "epoch", c->epoch);
  if (!rc) rc = h5io_attr_int64(o.file, "seed", c->seed);
  if (!rc) rc = h5io_attr_int64(o.file, "world_size", c->world_size);
  if (!rc) rc = h5io_attr_int64s(o.file, "dims", c->dims, (size_t)c->n_dims);
  if (!rc) rc = h5io_attr_string(o.file, "optimizer", c->optimizer ? c->optimizer : "");
  if (!rc) rc = h5io_attr_string(o.file, "config", c->config ? c->config : "");
  if (rc) {
    log_prefix(path);
    h5io_discard(&o);
    return -1;
  }
  return h5io_commit(&o);
}

/* Read a 1-D float dataset of exactly n values into a new buffer. */
static float *read_vec(hid_t f, const char *name, size_t n, const char *path) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) {
    log_fail("%s: no /%s", path, name);
    return NULL;
  }
  hid_t sp = H5Dget_space(ds);
  hssize_t got = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  float *v = NULL;
  if (got != (hssize_t)n)
    log_fail("%s: /%s has %lld values, expected %zu", path, name, (long long)got, n);
  else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v = xmalloc(n * sizeof(float) + 1)) < 0) {
    log_fail("%s: cannot read /%s: %s", path, name, h5io_why());
    free(v);
    v = NULL;
  }
  H5Dclose(ds);
  return v;
}

static herr_t collect_state(hid_t g, const char *name, const H5L_info_t *info, void *arg) {
  (void)g, (void)info;
  checkpoint *c = arg;
  if (c->n_state < CHECKPOINT_MAX_STATE) c->state_name[c->n_state++] = xstrdup(name);
  return 0;
}

int checkpoint_load(const char *path, checkpoint *c) {
  memset(c, 0, sizeof *c);
  hid_t f = h5io_open_read(path);
  if (f < 0) return -1;
  int rc = -1;
  int64_t smp[4];
  hid_t ds = -1;
  if (H5Lexists(f, "params", H5P_DEFAULT) <= 0 || H5Lexists(f, "sampler", H5P_DEFAULT) <= 0) {
    log_fail("%s: not a dptrain checkpoint (no /params or /sampler)", path);
    goto done;
  }
  ds = H5Dopen2(f, "params", H5P_DEFAULT);
  hid_t sp = H5Dget_space(ds);
  c->n_params = (size_t)H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  H5Dclose(ds);
  if (!(c->params = read_vec(f, "params", c->n_params, path))) goto done;
  ds = H5Dopen2(f, "sampler", H5P_DEFAULT);
  sp = H5Dget_space(ds);
  hssize_t n_smp = H5Sget_simple_extent_npoints(sp); /* H5S_ALL reads them all: exactly 4 fit */
  H5Sclose(sp);
  herr_t e = n_smp == 4 ? H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, smp) : -1;
  H5Dclose(ds);
  if (e < 0) {
    log_fail("%s: cannot read /sampler (4 integers)", path);
    goto done;
  }
  c->epoch = smp[0], c->step_in_epoch = smp[1], c->n_train = smp[2], c->batch = smp[3];
  if (h5io_attr_get_int64s(f, "step", &c->step, 1) || h5io_attr_get_int64s(f, "seed", &c->seed, 1) ||
      h5io_attr_get_int64s(f, "world_size", &c->world_size, 1) || h5io_attr_get_string(f, "optimizer", &c->optimizer) ||
      h5io_attr_get_string(f, "config", &c->config)) {
    log_fail("%s: missing checkpoint attributes", path);
    goto done;
  }
  hid_t a = H5Aopen(f, "dims", H5P_DEFAULT);
  if (a >= 0) {
    hid_t as = H5Aget_space(a);
    c->n_dims = (int)H5Sget_simple_extent_npoints(as);
    H5Sclose(as);
    H5Aclose(a);
  }
  if (c->n_dims < 2 || c->n_dims > 32 || h5io_attr_get_int64s(f, "dims", c->dims, (size_t)c->n_dims)) {
    log_fail("%s: missing or bad dims attribute", path);
    goto done;
  }
  if (H5Lexists(f, "optim", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(f, "optim", H5P_DEFAULT);
    hsize_t idx = 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_state, c);
    H5Gclose(g);
    for (int i = 0; i < c->n_state; i++) {
      char name[96];
      snprintf(name, sizeof name, "optim/%s", c->state_name[i]);
      if (!(c->state[i] = read_vec(f, name, c->n_params, path))) goto done;
    }
  }
  rc = 0;
done:
  H5Fclose(f);
  if (rc) checkpoint_free(c);
  return rc;
}

float *checkpoint_load_params(const char *path, size_t n_params) {
  hid_t f = h5io_open_read(path);
  if (f < 0) return NULL;
  float *p = NULL;
  if (H5Lexists(f, "params", H5P_DEFAULT) <= 0)
    log_fail("%s: no /params (train.init wants a float32 /params of the model's %zu parameters)", path, n_params);
  else
    p = read_vec(f, "params", n_params, path);
  H5Fclose(f);
  return p;
}

void checkpoint_free(checkpoint *c) {
  free(c->params);
  for (int i = 0; i < c->n_state; i++) free(c->state[i]), free(c->state_name[i]);
  free(c->optimizer);
  free(c->config);
  memset(c, 0, sizeof *c);
}

int checkpoint_point(const char *link, const char *target) {
  buf tmp = {0};
  buf_printf(&tmp, "%s.tmp.%ld", link, (long)getpid());
  unlink(tmp.data);
  int rc = 0;
  if (symlink(target, tmp.data) != 0 || rename(tmp.data, link) != 0) {
    rc = log_fail("%s: cannot point it to %s: %s", link, target, strerror(errno));
    unlink(tmp.data);
  }
  buf_free(&tmp);
  return rc;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* name is "checkpoint-<digits>.h5" (a step file), or ".checkpoint-....tmp.<pid>" / "checkpoint.h5.tmp.<pid>"
 * (a write that was interrupted: 2, the pid is not ours), else 0. */
static int step_file_kind(const char *name) {
  const char *p = name + strlen("checkpoint-");
  if (strncmp(name, "checkpoint-", strlen("checkpoint-")) == 0 && strspn(p, "0123456789") > 0 &&
      strcmp(p + strspn(p, "0123456789"), ".h5") == 0)
    return 1;
  const char *t = strstr(name, ".tmp.");
  if (t && (strncmp(name, ".checkpoint-", 12) == 0 || strncmp(name, "checkpoint.h5.tmp.", 18) == 0) &&
      strtol(t + 5, NULL, 10) != (long)getpid())
    return 2;
  return 0;
}

int checkpoint_prune(const char *dir, int64_t keep) {
  DIR *d = opendir(dir);
  if (!d) return log_fail("%s: %s", dir, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  buf p = {0};
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    const int kind = step_file_kind(e->d_name);
    if (kind == 2) { /* a temporary left by a killed writer */
      buf_clear(&p);
      buf_printf(&p, "%s/%s", dir, e->d_name);
      unlink(p.data);
    } else if (kind == 1) {
      if (n == cap) names = xrealloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
      names[n++] = xstrdup(e->d_name);
    }
  }
  closedir(d);
  qsort(names, n, sizeof *names, name_cmp); /* zero-padded steps: by name is by step */
  int rc = 0;
  for (size_t i = 0; i + (size_t)keep < n; i++) {
    buf_clear(&p);
    buf_printf(&p, "%s/%s", dir, names[i]);
    if (unlink(p.data) != 0 && errno != ENOENT) rc = log_fail("%s: cannot remove: %s", p.data, strerror(errno));
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  buf_free(&p);
  return rc;
}
