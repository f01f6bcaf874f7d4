/* fuzz_email.c — libFuzzer target: the e-mail/MIME decoder (email.h) and the tokenizer (text.h).
 *
 * The input is a raw message: email_to_text (headers, RFC 2047 words, multipart, QP, base64,
 * charsets, HTML), whose text then goes through text_normalize and text_next_token; the same bytes
 * also go to each decoder alone. Checked: the normalised text is valid UTF-8; tokens lie inside it,
 * are at least 2 bytes and come in order; QP and base64 never produce more than they were given
 * (base64: 3 bytes per 4 characters). */
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "prep/email.h"
#include "prep/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  buf text = {0}, norm = {0}, part = {0};
  FUZZ_CHECK(email_to_text(s, size, &text) == 0);
  text_normalize(text.data ? text.data : "", text.len, &norm);
  FUZZ_CHECK(fuzz_valid_utf8((const unsigned char *)(norm.data ? norm.data : ""), norm.len));
  size_t pos = 0, start = 0, len = 0, last_end = 0;
  while (text_next_token(norm.data, norm.len, &pos, &start, &len)) {
    FUZZ_CHECK(len >= 2 && start >= last_end && start + len <= norm.len && pos == start + len);
    last_end = pos;
  }

  email_decode_header(s, size, &part);
  buf_clear(&part);
  email_decode_qp(s, size, &part);
  FUZZ_CHECK(part.len <= size);
  buf_clear(&part);
  email_decode_base64(s, size, &part);
  FUZZ_CHECK(part.len <= size / 4 * 3 + 2);
  buf_clear(&part);
  email_html_to_text(s, size, &part);
  buf_free(&part);
  buf_free(&norm);
  buf_free(&text);
  return 0;
}
