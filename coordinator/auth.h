/*
 * coordinator/auth.h — who may call the HTTP API: the API token
 * (--api-token-file), an optional read-only token (--api-read-token-file)
 * and which paths need which (docs/api.md, "Authentication and TLS").
 *
 * Pure functions over strings (no civetweb connection): the front door
 * (front.c) and civetweb's handlers (http.c) ask the same questions. Only
 * SHA-256 digests of the tokens are kept, and a presented token is hashed
 * and compared in constant time with both, so neither its length nor the
 * position of a first wrong byte shows in the time an answer takes.
 */
#ifndef COORDINATOR_AUTH_H
#define COORDINATOR_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_TOKEN_MAX 4096 /* bytes of a token file, and of a presented token */

struct auth {
    bool on;           /* an API token was given: calls need it */
    bool has_read;     /* a read-only token was given too */
    bool metrics_open; /* /metrics needs no token */
    unsigned char full[32], read[32];
};

/* What a call needs, from its method and raw path. */
enum auth_need {
    AUTH_NEED_NONE,  /* the dashboard's files, /livez, /healthz, /readyz */
    AUTH_NEED_READ,  /* GET or HEAD under /api/ (the WebSocket too), /metrics */
    AUTH_NEED_WRITE, /* any other method under /api/ */
};

/* What a presented token grants. */
enum auth_level {
    AUTH_LEVEL_NONE, /* no token, or a wrong one */
    AUTH_LEVEL_READ,
    AUTH_LEVEL_FULL,
};

/* The answer to a call. */
enum auth_result {
    AUTH_OK,
    AUTH_MISSING,   /* 401: no token given */
    AUTH_INVALID,   /* 401: a token that is neither */
    AUTH_READ_ONLY, /* 403: the read-only token on a call that changes something */
};

/* Read a token file: its content without trailing white space, 1 to
 * AUTH_TOKEN_MAX bytes of printable ASCII (no space). 0 with the digest in
 * out, or -1 with a reason naming the file. */
int auth_load_file(const char *path, unsigned char out[32], char *err, size_t errlen);

/* Set up *a from the flags: token_path NULL or "" means no token (then
 * read_path must be empty too). 0, or -1 with a reason. */
int auth_setup(struct auth *a, const char *token_path, const char *read_path, bool metrics_open,
               char *err, size_t errlen);

enum auth_need auth_need(const struct auth *a, const char *method, const char *path);

/* The token of an Authorization header value ("Bearer <token>", the scheme
 * in any case): its start and length, or NULL when the header is absent,
 * of another scheme, or holds no token. */
const char *auth_bearer(const char *header, size_t len, size_t *token_len);

enum auth_level auth_level(const struct auth *a, const char *token, size_t len);

/* The whole decision: the call's method and raw path, and the token it
 * presented (NULL when none). */
enum auth_result auth_check(const struct auth *a, const char *method, const char *path,
                            const char *token, size_t token_len);

#endif
