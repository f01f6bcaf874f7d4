/* hd.h — one marker for the arithmetic both backends share (the headers in kernels/common).
 *
 * Everything per element that the CPU loops (kernels/cpu) and the CUDA kernels (kernels/cuda)
 * compute — activations and their derivatives, the dropout counter hash, the softmax
 * cross-entropy terms, each optimizer's update of one parameter, the bf16 rounding of
 * gemm_bf16's operands — is written once, as a `static inline KERN_HD` function in these headers,
 * and called from both sides: the CPU side compiles it as plain C (inlined into its -O3 loops,
 * which still vectorise), nvcc as a __host__ __device__ function. The headers are C11 and C++17 at once: no designated
 * initialisers, no compound literals, no C-only keywords (restrict) in them. */
#ifndef DPT_KERN_HD_H
#define DPT_KERN_HD_H

#if defined(__CUDACC__)
#define KERN_HD __host__ __device__
#else
#define KERN_HD
#endif

#endif
