/* pca_cpu.h — CPU implementations of the PCA ops of src/backend/backend.h (backend_pca_ops: create,
 * apply, fwd, gram, destroy; contracts there). The CPU backend's k_cpu_pca table (kernels/cpu/backend_cpu.c) points at
 * these; the CUDA backend is tested against them. */
#ifndef DPT_PCA_CPU_H
#define DPT_PCA_CPU_H

#include "backend.h"

/* Points at rows and shift (they must outlive the object); scratch for blocks of <= lmax
 * vectors. NULL when out of memory. */
backend_pca *backend_cpu_pca_create(const backend_pca_rows *rows, const double *shift, int lmax);

/* w [d, l] = Xcᵀ (Xc v) (overwritten); l > lmax leaves w zero. */
void backend_cpu_pca_apply(backend_pca *p, const double *v, int l, double *w);

/* y [m, l] = Xc v (overwritten); l > lmax leaves y zero. */
void backend_cpu_pca_fwd(backend_pca *p, const double *v, int l, double *y);

/* g [d, d] = Xcᵀ Xc (overwritten). 0, or -1 when out of memory. */
int backend_cpu_pca_gram(backend_pca *p, double *g);

/* Free p (NULL: nothing). */
void backend_cpu_pca_destroy(backend_pca *p);

#endif
