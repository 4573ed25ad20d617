/*
 * common/validate.h — the checks every boundary applies to text it takes in:
 * replica ids, client ids, names, UTF-8, JSON nesting, decimal numbers.
 *
 * Pure functions, no allocation except text_sanitize_utf8; the HTTP layer,
 * the wire layer (wire_unpack), flag parsing and the configuration decoder
 * all call these, so there is one definition of "a valid id".
 */
#ifndef COMMON_VALIDATE_H
#define COMMON_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

/* A replica id: 1..LIMIT_ID_BYTES-1 bytes of [A-Za-z0-9._:-]. */
bool validate_id(const char *s);
/* A client id: 1..LIMIT_CLIENT_ID_BYTES-1 bytes of valid UTF-8 holding no
 * control character (C0, DEL, C1). len is its length; no NUL inside. */
bool validate_client_id(const char *s, size_t len);
/* Display text (names, addresses, reasons): at most max-1 bytes of valid
 * UTF-8 without control characters; may be empty. */
bool validate_text(const char *s, size_t len, size_t max);

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const uint8_t *s, size_t len);
/* The longest prefix of s[0..len) of at most max bytes that ends at a
 * character boundary (a cut inside a character is not valid UTF-8). */
size_t utf8_cut(const char *s, size_t len, size_t max);
/* A NUL-terminated malloc'ed copy with every ill-formed sequence and every
 * NUL replaced by U+FFFD, so arbitrary bytes can go into JSON. NULL when
 * out of memory. */
char *utf8_sanitize(const uint8_t *s, size_t len);

/* The deepest nesting of arrays and objects in JSON text (strings and
 * escapes skipped), stopping early once it exceeds max. */
unsigned json_depth(const char *s, size_t len, unsigned max);

/* A decimal unsigned number: 1 to 20 digits only (no sign, no spaces),
 * within [min, max]. 0 and *out set when it is; -1 otherwise. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
