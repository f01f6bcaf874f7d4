/* checkpoint.c — save/load the training state (see checkpoint.h). */
#include "checkpoint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "h5io.h"
#include "log.h"

int checkpoint_save(const char *path, const checkpoint *c) {
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
