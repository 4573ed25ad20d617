/*
 * coordinator/respond.h — what both HTTP sides send, byte for byte the
 * same: the front door on the loop thread (front.c) and civetweb's handlers
 * (http.c).
 */
#ifndef COORDINATOR_RESPOND_H
#define COORDINATOR_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

/* A whole response, status line to body, in one malloc'ed buffer (sent
 * with one write: two small sends on a keep-alive connection wait for the
 * client's delayed ACK). `extra_headers` is "" or lines each ending in
 * \r\n. Without `with_body` (HEAD) the headers still give the body's
 * length. NULL when out of memory. */
char *respond_format(int status, const char *type, const char *body, const char *extra_headers,
                     bool with_body, size_t *len);

/* A status's reason phrase and, for errors, the API's code and message;
 * NULL for a status not in the table. */
struct respond_status {
    int status;
    const char *reason;
    const char *code;
    const char *message;
};
const struct respond_status *respond_status(int status);
const char *respond_reason(int status); /* "OK" / "Error" when not in the table */

/* The Retry-After header of a 503 (seconds, at least 1) into out. */
void respond_retry_after(char *out, size_t len, int status, unsigned retry_after_s);

/* A client id for a request that came without one: "c-" and 16 hex digits. */
void respond_random_id(char *out, size_t len);

#endif
