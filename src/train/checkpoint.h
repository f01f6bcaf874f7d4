/* checkpoint.h — the full training state in one HDF5 file (docs/design.md), written atomically.
 *
 *   /params            float32 [P]   the flat parameter buffer (layer by layer, W then b)
 *   /optim/<name>      float32 [P]   each optimizer state buffer, named as torch.optim's state
 *   /sampler           int64 [5]     epoch, step within epoch, training rows, global batch,
 *                                    virtual shards (4 values: a checkpoint from before issue 19,
 *                                    whose sampler had min(60, rows) shards; read as such)
 *   attributes         step, epoch, seed, world_size, optimizer, dims (the layer widths),
 *                      config (the resolved INI text)
 *   /model             what applying the model needs without the dataset file (checkpoint_model):
 *                      attributes input, activation, precision, class_names, scale, image_shape,
 *                      text_version, idf_docs, data_path, data_source; text models also /model/vocab,
 *                      /model/idf
 * Everything the run derives from the seed (shuffles, dropout masks, initial weights) is recomputed
 * from (seed, epoch, step), so no generator state needs storing: a resume continues bit-identically
 * on the same rank count, and on another rank count as the sampler is rank-count independent. */
#ifndef DPT_CHECKPOINT_H
#define DPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#define CHECKPOINT_MAX_STATE 3

/* What kind of rows the first layer reads. */
typedef enum checkpoint_input {
  CHECKPOINT_INPUT_DENSE = 0, /* dense features of some dataset file (a projection, synth data) */
  CHECKPOINT_INPUT_IMAGE = 1, /* uint8 pixels × scale, image_shape [rows, cols] (MNIST, Fashion-MNIST) */
  CHECKPOINT_INPUT_TEXT = 2   /* TF-IDF rows over vocab (prep spam) */
} checkpoint_input;

/* The model card: everything needed to apply the model to new inputs, copied from the dataset
 * file at set-up (read once) and written into every checkpoint as /model. */
typedef struct checkpoint_model {
  checkpoint_input input;
  char *activation;       /* "relu" | "tanh" | "sigmoid" */
  int64_t n_classes;      /* = dims[L] */
  char **class_names;     /* [n_classes]: the dataset's class_names attribute, else "0", "1", ... */
  double scale;           /* stored feature value × scale = model input (1 without the attribute) */
  int64_t image_shape[2]; /* image: [rows, cols], rows × cols = dims[0]; else 0 */
  char *text_version;     /* text: TEXT_VERSION of the prep that made the data ("" when unknown) */
  int64_t vocab_n;        /* text: D = dims[0] */
  char **vocab;           /* text: [D] sorted terms */
  float *idf;             /* text: [D] as in the dataset's /idf */
  int64_t idf_docs;       /* text: training documents the idf was fitted on (/train rows) */
  char *data_path;        /* the dataset file trained on, and its source attribute ("" when none) */
  char *data_source;
  int bf16;   /* attribute precision = "bf16": the GEMMs of eval and predict take bf16 inputs */
  int n_dims; /* load only: the checkpoint's dims attribute, d[0..L] */
  int64_t dims[32];
} checkpoint_model;

typedef struct checkpoint {
  size_t n_params;
  float *params; /* host [n_params] */
  int n_state;
  float *state[CHECKPOINT_MAX_STATE]; /* host [n_params] each */
  char *state_name[CHECKPOINT_MAX_STATE];
  char *optimizer; /* e.g. "nesterov" */
  int n_dims;
  int64_t dims[32]; /* layer widths d[0..L] */
  int64_t step, epoch, step_in_epoch, seed, world_size, n_train, batch;
  int64_t shards;                /* the sampler's virtual shards (sampler.h) */
  int sampler_v1;                /* read from a 4-value /sampler (before issue 19): shards = min(60, n_train) */
  char *config;                  /* resolved INI text */
  const checkpoint_model *model; /* save: written as /model when not NULL (not owned) */
} checkpoint;

/* Write c to path atomically (temporary + fsync + rename). Serial: call on one rank. Refuses a
 * state with a non-finite value ("PATH: not written: /params[12] is nan; the last good checkpoint
 * is kept"): such a file could only be resumed into NaN. Returns 0, or -1 with
 * log_fail("PATH: why"). Does not take ownership of c's buffers. */
int checkpoint_save(const char *path, const checkpoint *c);

/* The run directory's files (the trainer's): each checkpoint is DIR/checkpoint-SSSSSSSS.h5 (S:
 * steps done, zero-padded), and DIR/checkpoint.h5 is a symbolic link to the newest.
 * checkpoint_point makes `link` a symbolic link to `target` (a name relative to link's directory)
 * atomically: a temporary link renamed over it, so a reader (or a resume after kill -9) sees the
 * old target or the new, never neither. Returns 0, or -1 with log_fail. */
int checkpoint_point(const char *link, const char *target);

/* Remove all but the newest `keep` DIR/checkpoint-*.h5 files, and the temporaries of writes
 * that were interrupted (another process's). Returns 0, or -1 with log_fail. */
int checkpoint_prune(const char *dir, int64_t keep);

/* Read path into c (allocating every buffer; free with checkpoint_free). Returns 0, or -1 with
 * log_fail("PATH: why") for a missing, non-HDF5 or malformed file. */
int checkpoint_load(const char *path, checkpoint *c);

/* Read only /params of any HDF5 file (a checkpoint, or weights written elsewhere, e.g. exported
 * from PyTorch in the layout above): a new host buffer of exactly n_params floats (free it), or
 * NULL with log_fail("PATH: /params has N values, expected n_params") and the like. */
float *checkpoint_load_params(const char *path, size_t n_params);

void checkpoint_free(checkpoint *c);

/* Fill m from dataset file `file` (open, read on the calling rank only; path names it in errors):
 * the root attributes class_names, source, text_version, the /train/X attributes scale and
 * image_shape, and for CSR data (csr != 0) with a /vocab: /vocab and /idf of cols entries each
 * (text; CSR without /vocab, such as synth data, is plain dense input to a model). classes
 * and activation are the run's. Image: a dense split whose image_shape multiplies to cols. Returns
 * 0, or -1 with log_fail("PATH: why"); free m with checkpoint_model_free either way. */
int checkpoint_model_from_data(hid_t file, const char *path, int64_t classes, int64_t cols, int csr,
                               const char *activation, checkpoint_model *m);

/* Read /model and the dims attribute of checkpoint `path` into m (no optimizer state is read).
 * Returns 0, or -1 with log_fail: "PATH: a dataset file (it has /train), not a model checkpoint",
 * "PATH: a PCA result ...", "PATH: no /model (a checkpoint of an older dptrain ...)" and the like.
 * Free m with checkpoint_model_free. */
int checkpoint_model_load(const char *path, checkpoint_model *m);

/* The input kind's name ("dense", "image", "text"). */
const char *checkpoint_input_name(checkpoint_input k);

void checkpoint_model_free(checkpoint_model *m);

#endif
