/* info.h — `dptrain info FILE.h5`: what a dataset, checkpoint or PCA file holds. */
#ifndef DPT_INFO_H
#define DPT_INFO_H

/* Entry point; argv[0] is "info". Prints a tree of groups and datasets (type, shape, storage,
 * compression, attributes; CSR groups as one matrix with nnz and density). Returns LOG_EXIT_*. */
int info_main(int argc, char **argv);

#endif
