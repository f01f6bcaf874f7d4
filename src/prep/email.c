/* email.c — RFC 822 / MIME message to plain text (see email.h).
 *
 * The parser works on (pointer, length) spans of the caller's bytes and never copies a message
 * except where a transfer encoding must be undone. Header parsing follows Python's email package
 * where RFC 822 leaves room: a line that is neither a field nor a continuation ends the headers
 * (and starts the body), a boundary line is "--boundary", an optional "--", then only blanks. */
#include "prep/email.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { EMAIL_MAX_DEPTH = 16 }; /* nesting of multipart / message/rfc822 parts we follow */

typedef struct span {
  const char *p;
  size_t n;
} span;

/* The header fields we use; the first occurrence of each wins. */
typedef struct mime_hdr {
  span subject, ctype, cte;
  int has_subject, has_ctype, has_cte;
} mime_hdr;

typedef struct mime_type {
  char type[80];      /* "type/subtype", lower case */
  char boundary[256]; /* boundary parameter, "" when absent */
  char charset[48];   /* charset parameter, lower-cased, "" when absent */
  size_t blen;
} mime_type;

/* ---- small helpers ------------------------------------------------------------------------- */

/* Append one byte, leaving room for the terminating NUL that fin() writes. */
static inline void put(buf *b, char c) {
  if (b->len + 2 > b->cap) buf_reserve(b, 1);
  b->data[b->len++] = c;
}

static void fin(buf *b) {
  if (b->data) b->data[b->len] = '\0';
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static int is_blank(int c) { return c == ' ' || c == '\t'; }
static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Case-insensitive: does s[0..n) start with the lower-case word w? */
static int has_prefix_ci(const char *s, size_t n, const char *w) {
  size_t k = strlen(w);
  if (n < k) return 0;
  for (size_t i = 0; i < k; i++)
    if (lower((unsigned char)s[i]) != w[i]) return 0;
  return 1;
}

/* Case-insensitive search for the lower-case word w in s[from..n); returns its offset or n. */
static size_t find_ci(const char *s, size_t n, size_t from, const char *w) {
  size_t k = strlen(w);
  for (size_t i = from; i + k <= n; i++)
    if (lower((unsigned char)s[i]) == w[0] && has_prefix_ci(s + i, n - i, w)) return i;
  return n;
}

/* ---- transfer encodings ------------------------------------------------------------------ */

void email_decode_qp(const char *s, size_t len, buf *out) {
  buf_reserve(out, len);
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '=') {
      put(out, s[i]);
      continue;
    }
    int hi = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
    int lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      put(out, (char)(hi * 16 + lo));
      i += 2;
      continue;
    }
    size_t j = i + 1;
    while (j < len && is_blank((unsigned char)s[j])) j++;
    if (j == len) { /* "=" (and blanks) at the very end: a soft break with nothing after */
      i = len;
    } else if (s[j] == '\n') {
      i = j;
    } else if (s[j] == '\r') {
      i = (j + 1 < len && s[j + 1] == '\n') ? j + 1 : j;
    } else {
      put(out, '=');
    }
  }
  fin(out);
}

static signed char g_b64[256]; /* a byte's base64 value, -1 for the others */
static pthread_once_t g_b64_once = PTHREAD_ONCE_INIT;

static void b64_init(void) {
  const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 256; i++) g_b64[i] = -1;
  for (int i = 0; i < 64; i++) g_b64[(unsigned char)a[i]] = (signed char)i;
}

void email_decode_base64(const char *s, size_t len, buf *out) {
  pthread_once(&g_b64_once, b64_init); /* predict's workers decode at once */
  const signed char *val = g_b64;
  buf_reserve(out, len / 4 * 3 + 3);
  unsigned long acc = 0;
  int have = 0;
  for (size_t i = 0; i < len; i++) {
    int v = val[(unsigned char)s[i]];
    if (v < 0) continue;
    acc = (acc << 6) | (unsigned long)v;
    if (++have == 4) {
      put(out, (char)((acc >> 16) & 0xFF));
      put(out, (char)((acc >> 8) & 0xFF));
      put(out, (char)(acc & 0xFF));
      acc = 0;
      have = 0;
    }
  }
  if (have == 2) {
    put(out, (char)((acc >> 4) & 0xFF));
  } else if (have == 3) {
    put(out, (char)((acc >> 10) & 0xFF));
    put(out, (char)((acc >> 2) & 0xFF));
  }
  fin(out);
}

/* ---- RFC 2047 encoded-words ------------------------------------------------------------- */

/* If s[i..n) starts a well-formed encoded-word, append its decoding and return its length. */
static size_t encoded_word(const char *s, size_t n, size_t i, buf *out) {
  if (i + 2 > n || s[i] != '=' || s[i + 1] != '?') return 0;
  size_t j = i + 2, cs = j;
  while (j < n && s[j] != '?' && !is_ws((unsigned char)s[j])) j++;
  if (j == cs || j + 2 >= n || s[j] != '?' || s[j + 2] != '?') return 0;
  int enc = lower((unsigned char)s[j + 1]);
  if (enc != 'b' && enc != 'q') return 0;
  size_t t0 = j + 3, t = t0;
  while (t + 1 < n && !(s[t] == '?' && s[t + 1] == '=') && !is_ws((unsigned char)s[t])) t++;
  if (t + 1 >= n || s[t] != '?' || s[t + 1] != '=') return 0;
  if (enc == 'b') {
    email_decode_base64(s + t0, t - t0, out);
  } else {
    for (size_t k = t0; k < t; k++) {
      int hi = k + 2 < t ? hexval((unsigned char)s[k + 1]) : -1;
      int lo = k + 2 < t ? hexval((unsigned char)s[k + 2]) : -1;
      if (s[k] == '_') {
        put(out, ' ');
      } else if (s[k] == '=' && hi >= 0 && lo >= 0) {
        put(out, (char)(hi * 16 + lo));
        k += 2;
      } else {
        put(out, s[k]);
      }
    }
    fin(out);
  }
  return t + 2 - i;
}

void email_decode_header(const char *s, size_t len, buf *out) {
  size_t i = 0;
  int last_was_word = 0; /* the previous non-blank thing was an encoded-word */
  buf_reserve(out, len);
  while (i < len) {
    size_t k = encoded_word(s, len, i, out);
    if (k) {
      i += k;
      last_was_word = 1;
      continue;
    }
    if (is_ws((unsigned char)s[i]) && last_was_word) {
      /* blanks between two encoded-words vanish; elsewhere they are kept */
      size_t j = i;
      while (j < len && is_ws((unsigned char)s[j])) j++;
      buf probe = {0};
      if (j < len && encoded_word(s, len, j, &probe)) {
        buf_free(&probe);
        i = j;
        continue;
      }
      buf_free(&probe);
    }
    put(out, s[i++]);
    last_was_word = 0;
  }
  fin(out);
}

/* ---- HTML ------------------------------------------------------------------------------------ */

/* Named references: the five XML ones, the HTML 4 Latin-1 set (U+00A0..U+00FF in order) and the
 * common typographic ones. Case matters except for the XML five (&AMP; is seen in the wild). */
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",   "ordf",
    "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",
    "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave",
    "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",
    "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",
    "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute",
    "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
    "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide",
    "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

static const struct {
  const char *name;
  unsigned long cp;
} other_names[] = {{"amp", '&'},    {"lt", '<'},      {"gt", '>'},      {"quot", '"'},    {"apos", '\''},
                   {"ndash", 8211}, {"mdash", 8212},  {"lsquo", 8216},  {"rsquo", 8217},  {"sbquo", 8218},
                   {"ldquo", 8220}, {"rdquo", 8221},  {"bdquo", 8222},  {"dagger", 8224}, {"Dagger", 8225},
                   {"bull", 8226},  {"hellip", 8230}, {"permil", 8240}, {"lsaquo", 8249}, {"rsaquo", 8250},
                   {"euro", 8364},  {"trade", 8482},  {"OElig", 338},   {"oelig", 339},   {"Scaron", 352},
                   {"scaron", 353}, {"Yuml", 376},    {"fnof", 402},    {"circ", 710},    {"tilde", 732},
                   {"ensp", 8194},  {"emsp", 8195},   {"thinsp", 8201}, {"larr", 8592},   {"rarr", 8594}};

/* Append code point cp as a browser would show it, for word splitting: no-break and other wide
 * spaces become ' ', the soft hyphen disappears, invalid values become U+FFFD. */
static void put_char_ref(buf *out, unsigned long cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp == 0xAD) return;
  if (cp == 0xA0 || cp == 8194 || cp == 8195 || cp == 8201) cp = ' ';
  buf_put_utf8(out, cp);
}

/* Decode the character reference at s[i] == '&'; append it and return its length, or 0 (then
 * the '&' is text). The ';' is optional; a name must be the whole alphanumeric run after '&'. */
static size_t html_entity(const char *s, size_t n, size_t i, buf *out) {
  size_t j = i + 1;
  if (j < n && s[j] == '#') {
    j++;
    int hex = j < n && (s[j] == 'x' || s[j] == 'X');
    if (hex) j++;
    size_t d0 = j;
    unsigned long cp = 0;
    for (; j < n; j++) {
      int v = hex ? hexval((unsigned char)s[j]) : (is_digit((unsigned char)s[j]) ? s[j] - '0' : -1);
      if (v < 0) break;
      if (cp <= 0x10FFFF) cp = cp * (hex ? 16 : 10) + (unsigned long)v;
    }
    if (j == d0) return 0;
    if (j < n && s[j] == ';') j++;
    put_char_ref(out, cp);
    return j - i;
  }
  size_t e = j;
  while (e < n && e - j < 8 && is_alnum((unsigned char)s[e])) e++;
  size_t k = e - j, end = (e < n && s[e] == ';') ? e + 1 : e;
  if (k < 2 || (e < n && is_alnum((unsigned char)s[e]))) return 0; /* "&amplifier" is text, not "&amp;" */
  for (int c = 0; c < 96; c++)
    if (strlen(latin1_names[c]) == k && !memcmp(s + j, latin1_names[c], k)) {
      put_char_ref(out, 0xA0 + (unsigned long)c);
      return end - i;
    }
  for (size_t c = 0; c < sizeof other_names / sizeof other_names[0]; c++) {
    const char *nm = other_names[c].name;
    if (strlen(nm) != k) continue;
    if (c < 5 ? has_prefix_ci(s + j, k, nm) : !memcmp(s + j, nm, k)) {
      put_char_ref(out, other_names[c].cp);
      return end - i;
    }
  }
  return 0;
}

/* End of the element that starts at s[i] == '<' when it is <script ...> or <style ...>: the byte
 * after its closing tag (or n when unterminated); 0 when it is neither. */
static size_t raw_text_end(const char *s, size_t n, size_t i) {
  static const char *const names[] = {"script", "style"};
  for (int e = 0; e < 2; e++) {
    size_t k = strlen(names[e]);
    if (!has_prefix_ci(s + i + 1, n - i - 1, names[e])) continue;
    size_t after = i + 1 + k;
    if (after < n && !is_ws((unsigned char)s[after]) && s[after] != '>' && s[after] != '/') continue;
    char close[16] = "</";
    memcpy(close + 2, names[e], k + 1);
    size_t c = find_ci(s, n, after, close);
    if (c == n) return n;
    const char *gt = memchr(s + c, '>', n - c);
    return gt ? (size_t)(gt - s) + 1 : n;
  }
  return 0;
}

void email_html_to_text(const char *s, size_t len, buf *out) {
  buf_reserve(out, len);
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    if (c == '<' && i + 1 < len) {
      unsigned char d = (unsigned char)s[i + 1];
      if (d == '!' && i + 3 < len && s[i + 2] == '-' && s[i + 3] == '-') { /* comment */
        size_t j = i + 4;
        while (j + 2 < len && !(s[j] == '-' && s[j + 1] == '-' && s[j + 2] == '>')) j++;
        if (j + 2 < len) {
          i = j + 3;
          put(out, ' ');
          continue;
        } /* no "-->" anywhere: "<!--" is read as an ordinary tag below */
      }
      size_t raw = is_alpha(d) ? raw_text_end(s, len, i) : 0;
      if (raw) {
        i = raw;
        put(out, ' ');
        continue;
      }
      if (is_alpha(d) || d == '/' || d == '!' || d == '?') { /* a tag: up to '>' or the end */
        const char *gt = memchr(s + i, '>', len - i);
        i = gt ? (size_t)(gt - s) + 1 : len;
        put(out, ' ');
        continue;
      }
    } else if (c == '&') {
      size_t k = html_entity(s, len, i, out);
      if (k) {
        i += k;
        continue;
      }
    }
    put(out, (char)c);
    i++;
  }
  fin(out);
}

/* ---- headers ------------------------------------------------------------------------------- */

/* Parse the header block of s[0..n) into h; return the offset where the body starts. */
static size_t parse_headers(const char *s, size_t n, mime_hdr *h) {
  memset(h, 0, sizeof *h);
  span *cur = NULL; /* the field that continuation lines extend */
  size_t pos = 0;
  while (pos < n) {
    const char *nl = memchr(s + pos, '\n', n - pos);
    size_t end = nl ? (size_t)(nl - s) : n, next = nl ? end + 1 : n;
    size_t cend = (end > pos && s[end - 1] == '\r') ? end - 1 : end;
    if (cend == pos) return next; /* the empty line */
    if (is_blank((unsigned char)s[pos])) {
      if (cur) cur->n = cend - (size_t)(cur->p - s);
      pos = next;
      continue;
    }
    if (pos == 0 && has_prefix_ci(s, cend, "from ")) { /* mbox separator line */
      cur = NULL;
      pos = next;
      continue;
    }
    size_t k = pos;
    while (k < cend && s[k] > 32 && s[k] < 127 && s[k] != ':') k++;
    size_t name_end = k;
    while (k < cend && is_blank((unsigned char)s[k])) k++;
    if (name_end == pos || k >= cend || s[k] != ':') return pos; /* not a field: body begins */
    size_t v = k + 1;
    while (v < cend && is_blank((unsigned char)s[v])) v++;
    span val = {s + v, cend - v};
    const char *name = s + pos;
    size_t nlen = name_end - pos;
    cur = NULL;
    if (nlen == 7 && has_prefix_ci(name, nlen, "subject") && !h->has_subject) {
      h->subject = val, h->has_subject = 1, cur = &h->subject;
    } else if (nlen == 12 && has_prefix_ci(name, nlen, "content-type") && !h->has_ctype) {
      h->ctype = val, h->has_ctype = 1, cur = &h->ctype;
    } else if (nlen == 25 && has_prefix_ci(name, nlen, "content-transfer-encoding") && !h->has_cte) {
      h->cte = val, h->has_cte = 1, cur = &h->cte;
    }
    pos = next;
  }
  return n; /* headers only, no body */
}

/* Parse a Content-Type value (possibly folded) into t; an unusable value gives `dflt`. */
static void parse_ctype(span v, const char *dflt, mime_type *t) {
  const char *s = v.p;
  size_t n = v.n, i = 0, k = 0;
  t->blen = 0;
  t->boundary[0] = '\0';
  t->charset[0] = '\0';
  while (i < n && is_ws((unsigned char)s[i])) i++;
  while (i < n && s[i] != ';' && !is_ws((unsigned char)s[i])) {
    if (k + 1 < sizeof t->type) t->type[k++] = (char)lower((unsigned char)s[i]);
    i++;
  }
  t->type[k] = '\0';
  if (!strchr(t->type, '/')) snprintf(t->type, sizeof t->type, "%s", dflt);
  while (i < n) { /* parameters: ; name = value | ; name = "quoted" */
    while (i < n && s[i] != ';') i++;
    if (i < n) i++;
    while (i < n && is_ws((unsigned char)s[i])) i++;
    size_t n0 = i;
    while (i < n && s[i] != '=' && s[i] != ';' && !is_ws((unsigned char)s[i])) i++;
    size_t n1 = i;
    while (i < n && is_ws((unsigned char)s[i])) i++;
    if (i >= n || s[i] != '=') continue;
    i++;
    while (i < n && is_ws((unsigned char)s[i])) i++;
    int want = n1 - n0 == 8 && has_prefix_ci(s + n0, 8, "boundary");
    int want_cs = n1 - n0 == 7 && has_prefix_ci(s + n0, 7, "charset") && !t->charset[0];
    size_t bl = 0, cl = 0;
    size_t v0 = i;
    if (i < n && s[i] == '"') {
      for (i++; i < n && s[i] != '"'; i++) {
        if (s[i] == '\\' && i + 1 < n) i++;
        if (s[i] == '\r' || s[i] == '\n') continue; /* folding inside the quotes */
        if (want && bl + 1 < sizeof t->boundary) t->boundary[bl++] = s[i];
      }
      if (i < n) i++;
    } else {
      for (; i < n && s[i] != ';' && !is_ws((unsigned char)s[i]); i++)
        if (want && bl + 1 < sizeof t->boundary) t->boundary[bl++] = s[i];
    }
    if (want && !t->blen) {
      t->boundary[bl] = '\0';
      t->blen = bl;
    }
    if (want_cs) { /* the value just scanned, without quotes and blanks */
      for (size_t q = v0; q < i && cl + 1 < sizeof t->charset; q++)
        if (s[q] != '"' && !is_ws((unsigned char)s[q])) t->charset[cl++] = (char)lower((unsigned char)s[q]);
      t->charset[cl] = '\0';
    }
  }
}

/* ---- bodies ------------------------------------------------------------------------------ */

enum cte_kind { CTE_IDENTITY, CTE_QP, CTE_BASE64 };

static enum cte_kind parse_cte(const mime_hdr *h) {
  if (!h->has_cte) return CTE_IDENTITY;
  const char *s = h->cte.p;
  size_t n = h->cte.n;
  while (n && is_ws((unsigned char)*s)) s++, n--;
  if (has_prefix_ci(s, n, "quoted-printable")) return CTE_QP;
  if (has_prefix_ci(s, n, "base64")) return CTE_BASE64;
  return CTE_IDENTITY;
}

/* Undo the transfer encoding of body b into out (replacing out's contents). */
static void decode_body(enum cte_kind cte, span b, buf *out) {
  buf_clear(out);
  if (cte == CTE_QP)
    email_decode_qp(b.p, b.n, out);
  else if (cte == CTE_BASE64)
    email_decode_base64(b.p, b.n, out);
  else
    buf_append(out, b.p, b.n);
}

static void walk(const char *s, size_t n, int depth, int is_message, int in_digest, buf *out);

/* Is the line s[ls..le) a delimiter of boundary b? Sets *close for "--b--". */
static int is_delim(const char *s, size_t ls, size_t le, const mime_type *t, int *close) {
  size_t bl = t->blen;
  if (le - ls < 2 + bl || s[ls] != '-' || s[ls + 1] != '-' || memcmp(s + ls + 2, t->boundary, bl)) return 0;
  size_t k = ls + 2 + bl;
  *close = (k + 2 <= le && s[k] == '-' && s[k + 1] == '-');
  if (*close) k += 2;
  while (k < le && is_ws((unsigned char)s[k])) k++;
  return k == le;
}

/* Split a multipart body on its boundary and walk each part. Returns 0 when no delimiter line was
 * found (the caller then treats the body as plain text). */
static int walk_multipart(const char *s, size_t n, const mime_type *t, int depth, buf *out) {
  int digest = strcmp(t->type, "multipart/digest") == 0;
  size_t part = 0, pos = 0;
  int open = 0, found = 0;
  while (pos < n) {
    const char *nl = memchr(s + pos, '\n', n - pos);
    size_t le = nl ? (size_t)(nl - s) : n, next = nl ? le + 1 : n;
    int close = 0;
    if (s[pos] == '-' && is_delim(s, pos, le, t, &close)) {
      found = 1;
      if (open) { /* the line break before the delimiter belongs to the delimiter */
        size_t pe = pos;
        if (pe > part && s[pe - 1] == '\n') pe--;
        if (pe > part && s[pe - 1] == '\r') pe--;
        walk(s + part, pe - part, depth + 1, 0, digest, out);
      }
      if (close) return 1; /* the epilogue is ignored */
      open = 1;
      part = next;
    }
    pos = next;
  }
  if (open && part < n) walk(s + part, n - part, depth + 1, 0, digest, out); /* no closing line */
  return found;
}

/* Convert the bytes a transfer encoding produced from `charset` to UTF-8 in place (iconv).
 * Unlabelled, ASCII and UTF-8 text is left alone, and so is text in a charset iconv does not know;
 * a byte iconv cannot convert is kept as is. (Bodies sent as 8bit reach us already as UTF-8 from
 * the JSON; any bytes still invalid are read as Latin-1 by the tokenizer's normalisation.) */
static void to_utf8(const char *charset, buf *b) {
  if (!charset[0] || !b->len || !strcmp(charset, "us-ascii") || !strcmp(charset, "utf-8") || !strcmp(charset, "utf8"))
    return;
  iconv_t cd = iconv_open("UTF-8", charset);
  if (cd == (iconv_t)-1) return;
  buf res = {0};
  buf_reserve(&res, b->len * 2 + 16);
  char *in = b->data;
  size_t left = b->len;
  while (left > 0) {
    char chunk[4096], *o = chunk;
    size_t room = sizeof chunk;
    size_t rc = iconv(cd, &in, &left, &o, &room);
    buf_append(&res, chunk, (size_t)(o - chunk));
    if (rc == (size_t)-1 && errno != E2BIG) { /* EILSEQ/EINVAL: keep the byte, go on */
      buf_putc(&res, *in++);
      left--;
    }
  }
  iconv_close(cd);
  buf_free(b);
  *b = res;
}

static void walk(const char *s, size_t n, int depth, int is_message, int in_digest, buf *out) {
  mime_hdr h;
  size_t off = parse_headers(s, n, &h);
  span body = {s + off, n - off};
  if (is_message && h.has_subject) {
    buf raw = {0};
    for (size_t i = 0; i < h.subject.n; i++) /* unfold: drop the line breaks, keep the blanks */
      if (h.subject.p[i] != '\r' && h.subject.p[i] != '\n') put(&raw, h.subject.p[i]);
    fin(&raw);
    email_decode_header(raw.data ? raw.data : "", raw.len, out);
    put(out, '\n');
    fin(out);
    buf_free(&raw);
  }
  const char *dflt = in_digest ? "message/rfc822" : "text/plain";
  mime_type t;
  if (h.has_ctype)
    parse_ctype(h.ctype, dflt, &t);
  else
    snprintf(t.type, sizeof t.type, "%s", dflt), t.blen = 0, t.boundary[0] = '\0', t.charset[0] = '\0';
  enum cte_kind cte = parse_cte(&h);

  if (strncmp(t.type, "multipart/", 10) == 0) {
    if (depth >= EMAIL_MAX_DEPTH) return;
    if (t.blen && walk_multipart(body.p, body.n, &t, depth, out)) return;
    snprintf(t.type, sizeof t.type, "text/plain"); /* no usable boundary: keep the text */
  }
  if (strcmp(t.type, "message/rfc822") == 0) {
    if (depth >= EMAIL_MAX_DEPTH) return;
    buf dec = {0};
    decode_body(cte, body, &dec);
    walk(dec.data ? dec.data : "", dec.len, depth + 1, 1, 0, out);
    buf_free(&dec);
    return;
  }
  int plain = strcmp(t.type, "text/plain") == 0, html = strcmp(t.type, "text/html") == 0;
  if (!plain && !html) return;
  if (plain && cte == CTE_IDENTITY) {
    buf_append(out, body.p, body.n);
  } else {
    buf dec = {0};
    decode_body(cte, body, &dec);
    if (cte != CTE_IDENTITY) to_utf8(t.charset, &dec);
    if (html)
      email_html_to_text(dec.data ? dec.data : "", dec.len, out);
    else
      buf_append(out, dec.data ? dec.data : "", dec.len);
    buf_free(&dec);
  }
  put(out, '\n');
  fin(out);
}

int email_to_text(const char *msg, size_t len, buf *out) {
  buf_reserve(out, 0); /* out->data is never NULL afterwards */
  walk(msg ? msg : "", msg ? len : 0, 0, 1, 0, out);
  fin(out);
  return 0;
}
