/* hash.c — SHA-256 through OpenSSL's EVP interface (see hash.h). */
#include "hash.h"

#include <openssl/evp.h>
#include <stdio.h>

#include "log.h"

int hash_sha256_init(hash_sha256 *h) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    h->ctx = NULL;
    return log_fail("OpenSSL: cannot start a SHA-256 digest");
  }
  h->ctx = c;
  return 0;
}

void hash_sha256_update(hash_sha256 *h, const void *p, size_t n) {
  if (h->ctx && n) EVP_DigestUpdate(h->ctx, p, n);
}

void hash_sha256_hex(hash_sha256 *h, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  out[0] = '\0';
  if (!h->ctx) return;
  EVP_DigestFinal_ex(h->ctx, md, &len);
  for (unsigned i = 0; i < len && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}

void hash_sha256_buf(const void *p, size_t n, char out[65]) {
  hash_sha256 h;
  if (hash_sha256_init(&h) != 0) {
    out[0] = '\0';
    return;
  }
  hash_sha256_update(&h, p, n);
  hash_sha256_hex(&h, out);
}
