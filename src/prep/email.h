/* email.h — an RFC 822 / MIME message reduced to the plain text a tokenizer should see.
 *
 * What is kept: the Subject header (RFC 2047 encoded-words decoded), and the text/plain and
 * text/html parts of the body after their Content-Transfer-Encoding is undone (quoted-printable,
 * base64; 7bit/8bit/binary as-is). HTML loses its tags (each becomes a space), comments and
 * <script>/<style> contents, and has its common entities decoded. multipart bodies are split on
 * their boundary and every part is handled the same way, recursively (nested multiparts and
 * message/rfc822 parts too); other parts (images, application/...) are dropped.
 * Charsets are not converted: decoded bytes pass through as they are.
 *
 * Every function here reads exactly the bytes it is given (NULs included), never fails and never
 * reads out of bounds: malformed input (no blank line after the headers, a missing closing
 * boundary, truncated base64, an unterminated tag or comment) degrades to a best-effort result. */
#ifndef DPT_EMAIL_H
#define DPT_EMAIL_H

#include <stddef.h>

#include "buf.h"

/* Append the text of message msg[0..len) to out: the decoded Subject (when there is one) and a
 * newline, then the text of each kept body part followed by a newline (an embedded message/rfc822
 * part contributes its own Subject the same way). Headers end at the first empty line (or at the
 * first line that is neither a header field nor a continuation; a leading mbox "From " line counts
 * as a header). Always returns 0. */
int email_to_text(const char *msg, size_t len, buf *out);

/* Append the value of an (already unfolded) header with RFC 2047 encoded-words
 * `=?charset?B?...?=` / `=?charset?Q?...?=` decoded; whitespace between two adjacent
 * encoded-words is dropped, anything that is not a well-formed encoded-word is copied as-is. */
void email_decode_header(const char *s, size_t len, buf *out);

/* Append the quoted-printable decoding of s[0..len): `=XX` (hex, either case) becomes a byte,
 * `=` followed by optional spaces/tabs and a line break is a soft break (removed), any other
 * `=` is kept literally. */
void email_decode_qp(const char *s, size_t len, buf *out);

/* Append the base64 decoding of s[0..len), skipping whitespace, padding and any byte outside the
 * alphabet; a truncated final group yields the whole bytes it holds. */
void email_decode_base64(const char *s, size_t len, buf *out);

/* Append the text of HTML s[0..len): comments and <script>/<style> elements removed, every tag
 * replaced by a space, character references decoded to UTF-8: numeric &#NN; / &#xHH;, the XML
 * five (&amp; &lt; &gt; &quot; &apos;), the HTML 4 Latin-1 names (&eacute; ...) and common
 * typographic ones (&mdash; &rsquo; ...). The ';' may be missing. No-break and wide spaces
 * (&nbsp;, &#160; ...) become ' ' and the soft hyphen vanishes, so words split as a reader sees
 * them. An unterminated tag runs to the end; an unterminated comment is read as a tag. */
void email_html_to_text(const char *s, size_t len, buf *out);

#endif
