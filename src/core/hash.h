/* hash.h — SHA-256 (OpenSSL EVP) for source-file provenance: incremental, hex output. */
#ifndef DPT_HASH_H
#define DPT_HASH_H

#include <stddef.h>

typedef struct hash_sha256 {
  void *ctx; /* EVP_MD_CTX * */
} hash_sha256;

/* Start a digest. Returns 0, or -1 with log_fail set. */
int hash_sha256_init(hash_sha256 *h);
/* Feed n bytes. */
void hash_sha256_update(hash_sha256 *h, const void *p, size_t n);
/* Finish into 64 lowercase hex digits + NUL and release the context. */
void hash_sha256_hex(hash_sha256 *h, char out[65]);
/* One-shot digest of a buffer. */
void hash_sha256_buf(const void *p, size_t n, char out[65]);

#endif
