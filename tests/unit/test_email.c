/* test_email.c — RFC 822 / MIME message to text (src/prep/email.c): headers, encodings,
 * multipart, HTML, and malformed input that must degrade without crashing (run it under
 * DPT_SANITIZE to have AddressSanitizer check the bounds). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prep/email.h"

/* email_to_text over a string literal (its length, so embedded NULs count). */
#define TO_TEXT(lit, out) email_to_text(lit, sizeof(lit) - 1, out)

/* out must equal the expected bytes exactly (n of them, NULs allowed). */
static void expect_bytes(const buf *out, const char *want, size_t n) {
  if (out->len != n || memcmp(out->data, want, n) != 0)
    fail_msg("got [%.*s] (%zu bytes), want [%.*s] (%zu bytes)", (int)out->len, out->data, out->len, (int)n, want, n);
  assert_int_equal(out->data[out->len], '\0');
}
#define EXPECT(out, lit) expect_bytes(out, lit, sizeof(lit) - 1)

static void test_subject_kept_headers_dropped(void **state) {
  (void)state;
  buf out = {0};
  assert_int_equal(TO_TEXT("From someone@example.com  Thu Aug 22 13:17:22 2002\n"
                           "Return-Path: <a@b.c>\n"
                           "Received: from relay\n\tby mx.example.com\n"
                           "From: Alice <alice@example.com>\n"
                           "To: bob@example.com\n"
                           "Subject: Hello world\n"
                           "X-Mailer: Foo 1.0\n"
                           "\n"
                           "Body line one.\n"
                           "Body line two.\n",
                           &out),
                   0);
  EXPECT(&out, "Hello world\nBody line one.\nBody line two.\n\n");
  buf_free(&out);
}

static void test_folded_subject(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT("SUBJECT: Hello\r\n folded\r\n\tworld\r\nTo: x\r\n\r\nbody\r\n", &out);
  EXPECT(&out, "Hello folded\tworld\nbody\r\n\n");
  buf_free(&out);
}

static void test_encoded_word_subject(void **state) {
  (void)state;
  buf out = {0};
  /* B and Q words; the blank between two encoded-words vanishes, others stay; a word with an
   * unknown encoding "X" is not an encoded-word; bytes are not converted from the charset */
  TO_TEXT(
      "Subject: =?UTF-8?B?SGVsbG8gV29ybGQ=?= =?iso-8859-1?q?caf=E9_au_lait?= and "
      "=?bogus?X?abc?= =?utf-8?Q?=C3=A9t=C3=A9?=\n\nx",
      &out);
  EXPECT(&out, "Hello Worldcaf\xe9 au lait and =?bogus?X?abc?= \xc3\xa9t\xc3\xa9\nx\n");
  buf_clear(&out);
  email_decode_header("=?utf-8?B?SGVsbG8", 17, &out); /* unterminated: copied as-is */
  EXPECT(&out, "=?utf-8?B?SGVsbG8");
  buf_free(&out);
}

static void test_quoted_printable(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT(
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: Quoted-Printable\n"
      "\n"
      "a=3Db soft=\r\nbreak and=\nmore trail=  \nx =C3=A9t=c3=a9 =zz end=",
      &out);
  EXPECT(&out, "a=b softbreak andmore trailx \xc3\xa9t\xc3\xa9 =zz end\n");
  buf_clear(&out);
  email_decode_qp("x=4", 3, &out); /* "=" with one hex digit at the end is literal */
  EXPECT(&out, "x=4");
  buf_free(&out);
}

static void test_charset_to_utf8(void **state) {
  (void)state;
  buf out = {0};
  /* Latin-1 "café ñ" sent as quoted-printable comes out as UTF-8 */
  TO_TEXT(
      "Content-Type: text/plain; charset=\"ISO-8859-1\"\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "caf=E9 =F1",
      &out);
  EXPECT(&out, "caf\xc3\xa9 \xc3\xb1\n");
  buf_clear(&out);
  /* KOI8-R "мир" (cd c9 d2) in base64 ("zcnS") */
  TO_TEXT(
      "Content-Type: text/plain; charset=koi8-r\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "zcnS\n",
      &out);
  EXPECT(&out, "\xd0\xbc\xd0\xb8\xd1\x80\n");
  buf_clear(&out);
  /* an unknown charset leaves the bytes alone */
  TO_TEXT(
      "Content-Type: text/plain; charset=x-unknown\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "=E9",
      &out);
  EXPECT(&out, "\xe9\n");
  buf_free(&out);
}

static void test_base64(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT(
      "Content-Type: text/plain\n"
      "Content-Transfer-Encoding: BASE64\n"
      "\n"
      "SGVs\r\nbG8s IGJh!c2U2\tNCE=\n",
      &out);
  EXPECT(&out, "Hello, base64!\n");
  buf_clear(&out);
  email_decode_base64("SGVsbG8", 7, &out); /* truncated: 4 chars -> 3 bytes, 3 chars -> 2 */
  EXPECT(&out, "Hello");
  buf_clear(&out);
  email_decode_base64("SGVsbG", 6, &out); /* 2 trailing chars -> 1 byte */
  EXPECT(&out, "Hell");
  buf_clear(&out);
  email_decode_base64("S", 1, &out); /* 1 char holds no whole byte */
  assert_int_equal(out.len, 0);
  buf_free(&out);
}

static void test_multipart_alternative(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT(
      "Subject: Alt\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/alternative;\n BOUNDARY=\"==b1==\"\n"
      "\n"
      "This is the preamble.\n"
      "--==b1==\n"
      "Content-Type: text/plain; charset=us-ascii\n"
      "\n"
      "Plain version.\n"
      "--==b1==\n"
      "Content-Type: TEXT/HTML\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "<p>HTML <b>version</b>=21</p>\n"
      "--==b1==--\n"
      "Epilogue text.\n",
      &out);
  EXPECT(&out, "Alt\nPlain version.\n HTML  version ! \n");
  buf_free(&out);
}

static const char nested[] =
    "Subject: Nested\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner plain\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<i>inner html</i>\n"
    "--inner--\n"
    "\n"
    "--outer\n"
    "Content-Type: image/png; name=\"x.png\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"x.png\"\n"
    "\n"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n"
    "YPhfDwAChwGA60e6kgAAAABJRU5E\n"
    "--outer\n"
    "Content-Type: application/pdf\n"
    "\n"
    "%PDF-1.4 secret words\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: Forwarded\n"
    "From: x@y\n"
    "\n"
    "forwarded body\n"
    "--outer--\n";

static void test_nested_multipart(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT(nested, &out);
  EXPECT(&out, "Nested\ninner plain\n inner html \nForwarded\nforwarded body\n");
  buf_free(&out);
}

static void test_attachment_dropped(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT(
      "Content-Type: multipart/mixed; boundary=\"b\"\n"
      "\n"
      "--b\n"
      "\n"
      "see attached\n" /* a part without headers is text/plain */
      "--b\n"
      "Content-Type: application/octet-stream\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "c2VjcmV0IHdvcmRz\n"
      "--b\n"
      "Content-Type: image/jpeg\n"
      "\n"
      "JFIF binary\n"
      "--b--\n",
      &out);
  EXPECT(&out, "see attached\n");
  buf_free(&out);
}

static void test_html_stripping(void **state) {
  (void)state;
  static const char html[] =
      "<html><head><title>T</title><style type=\"text/css\">p{color:red}</style>"
      "<SCRIPT>var x='<b>not</b>';</SCRIPT></head><body><!-- hidden <b>comment</b> -->"
      "<p>Fish&amp;Chips &lt;3 &#65;&#x42;&#X43; caf&#233; &eacute;t&eacute; a&nbsp;b &AMP; "
      "&bogus; &amplifier 5 < 6</p>x<br/>y</body></html>";
  buf out = {0};
  email_html_to_text(html, sizeof html - 1, &out);
  EXPECT(&out,
         "   T       Fish&Chips <3 ABC caf\xc3\xa9 \xc3\xa9t\xc3\xa9 a b & &bogus; "
         "&amplifier 5 < 6 x y  ");
  buf_clear(&out);
  email_html_to_text("&#0;&#xD800;&#99999999;&#x20AC;&#160;&shy;&mdash", 48, &out);
  EXPECT(&out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xe2\x82\xac \xe2\x80\x94");
  buf_free(&out);
}

static void test_malformed_degrades(void **state) {
  (void)state;
  buf out = {0};
  TO_TEXT("Subject: only headers\nFrom: x", &out); /* no blank line: no body */
  EXPECT(&out, "only headers\n\n");
  buf_clear(&out);
  TO_TEXT("Subject: s\nthis is not a header\nmore\n", &out); /* the body starts early */
  EXPECT(&out, "s\nthis is not a header\nmore\n\n");
  buf_clear(&out);
  TO_TEXT(
      "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
      "text without end",
      &out); /* no closing boundary */
  EXPECT(&out, "text without end\n");
  buf_clear(&out);
  TO_TEXT("Content-Type: multipart/mixed; boundary=zzz\n\njust text\n", &out); /* never used */
  EXPECT(&out, "just text\n\n");
  buf_clear(&out);
  TO_TEXT("Content-Type: multipart/mixed\n\nno boundary at all", &out);
  EXPECT(&out, "no boundary at all\n");
  buf_clear(&out);
  TO_TEXT("Content-Type: text/html\n\nhello <a href='x", &out); /* unterminated tag */
  EXPECT(&out, "hello  \n");
  buf_clear(&out);
  TO_TEXT("Content-Type: text/html\n\na <!-- b > c", &out); /* comment with no "-->" */
  EXPECT(&out, "a   c\n");
  buf_clear(&out);
  TO_TEXT("Content-Type: text/html\n\nx<script>var y = 1;", &out); /* unterminated script */
  EXPECT(&out, "x \n");
  buf_clear(&out);
  TO_TEXT("Subject: a\0b\n\nbody\0text", &out); /* NULs are ordinary bytes */
  EXPECT(&out, "a\0b\nbody\0text\n");
  buf_clear(&out);
  assert_int_equal(email_to_text(NULL, 0, &out), 0); /* NULL reads as the empty message */
  EXPECT(&out, "\n");
  buf_clear(&out);
  assert_int_equal(email_to_text("", 0, &out), 0);
  EXPECT(&out, "\n");
  buf_free(&out);
}

/* Deep nesting stops at a fixed depth instead of exhausting the stack. */
static void test_deep_nesting(void **state) {
  (void)state;
  buf msg = {0}, out = {0};
  for (int i = 0; i < 5000; i++) buf_printf(&msg, "Content-Type: message/rfc822\n\n");
  buf_printf(&msg, "deep\n");
  email_to_text(msg.data, msg.len, &out);
  assert_true(out.len < 100);
  buf_clear(&msg);
  for (int i = 0; i < 5000; i++) buf_printf(&msg, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
  email_to_text(msg.data, msg.len, &out);
  buf_free(&msg);
  buf_free(&out);
}

/* Every prefix of a multipart message, and seeded random corruptions of it, must parse without
 * reading out of bounds (checked by AddressSanitizer in DPT_SANITIZE builds). */
static void test_truncations_and_noise(void **state) {
  (void)state;
  size_t n = sizeof nested - 1;
  buf out = {0};
  for (size_t k = 0; k <= n; k++) {
    char *copy = xmalloc(k + 1); /* exact size, so an overrun is caught */
    memcpy(copy, nested, k);
    buf_clear(&out);
    email_to_text(copy, k, &out);
    assert_true(out.len <= k + 2);
    free(copy);
  }
  static const char noise[] = "=?<>&#;-\n\r\"\\ \t:Bq";
  uint64_t x = 88172645463325252ull;
  char *copy = xmalloc(n);
  for (int round = 0; round < 2000; round++) {
    memcpy(copy, nested, n);
    for (int flips = 0; flips < 8; flips++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
      copy[x % n] = noise[(x >> 32) % (sizeof noise - 1)];
    }
    buf_clear(&out);
    email_to_text(copy, n, &out);
    assert_true(out.len <= 2 * n);
  }
  free(copy);
  buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_subject_kept_headers_dropped),
      cmocka_unit_test(test_folded_subject),
      cmocka_unit_test(test_encoded_word_subject),
      cmocka_unit_test(test_quoted_printable),
      cmocka_unit_test(test_charset_to_utf8),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_multipart_alternative),
      cmocka_unit_test(test_nested_multipart),
      cmocka_unit_test(test_attachment_dropped),
      cmocka_unit_test(test_html_stripping),
      cmocka_unit_test(test_malformed_degrades),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_truncations_and_noise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
