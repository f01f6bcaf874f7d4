/* backend_nccl.h — host side (src/backend/backend.c): joining the CUDA module's NCCL communicator over an
 * MPI communicator. Separate from backend_cuda_api.h, which the module itself compiles without MPI. */
#ifndef DPT_BACKEND_NCCL_H
#define DPT_BACKEND_NCCL_H

#include <mpi.h>

#include "backend_cuda_api.h"

/* Collective over comm: rank 0 of comm makes the unique id, MPI_Bcast carries it, every rank calls
 * nccl_init (with the watchdog limit dist_nccl_timeout(), which the caller has checked). Returns the module, or NULL on every rank with one log_fail line ("NCCL: why") on
 * the rank that failed (the others log_silent). Leave with api->nccl_destroy. */
const backend_cuda_api *backend_nccl_join(MPI_Comm comm);

#endif
