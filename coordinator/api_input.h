/*
 * coordinator/api_input.h — the HTTP API's input layer: request bodies and
 * query strings parsed and checked in one place, before any handler acts.
 *
 * Pure functions over bytes (no civetweb connection), so the fuzz targets
 * and unit tests call them exactly as the server does. A rejected input
 * comes back as the status, error code and message of the API's error
 * shape; nothing else has happened.
 */
#ifndef COORDINATOR_API_INPUT_H
#define COORDINATOR_API_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

struct api_error {
    int status;       /* 400, or 503 when out of memory */
    const char *code; /* bad_json, missing_data, too_large, bad_request, bad_query */
    char message[160];
};

/* POST /api/requests: {"data":"text","id":"optional","fault":false,
 * "seen_index":N (optional: a log index the client saw before its first
 * attempt, so that a retry after its session expired is refused)}. */
struct api_write {
    char *data; /* malloc'ed, NUL-terminated, valid UTF-8 */
    size_t len;
    char id[LIMIT_CLIENT_ID_BYTES]; /* "" when the client gave none */
    bool fault;
    bool has_seen;
    uint64_t seen_index;
};

/* body: len bytes (need not be NUL-terminated). 0 and *out filled, which
 * api_write_free releases; or -1 and *err filled. */
int api_parse_write(const char *body, size_t len, size_t max_data_bytes, struct api_write *out,
                    struct api_error *err);
void api_write_free(struct api_write *w);

/* Any body that must be one JSON object: the raw checks (NUL bytes, depth,
 * UTF-8, \u0000), then the whole body parsed, white space only after it.
 * The object (cJSON_Delete it), or NULL with *err filled (400 bad_json,
 * bad_encoding). */
struct cJSON;
struct cJSON *api_parse_object(const char *body, size_t len, struct api_error *err);

/* ?after=N&limit=M (either may be absent): after any u64, limit 1..max. */
struct api_page {
    uint64_t after;
    uint32_t limit;
    bool linearizable; /* consistency=linearizable (the default) or serializable */
};
int api_parse_page(const char *query, uint32_t default_limit, uint32_t max_limit,
                   struct api_page *out, struct api_error *err);
/* GET /api/requests: the page and consistency=linearizable|serializable
 * (absent: linearizable; anything else, or twice: 400 bad_query). */
int api_parse_read(const char *query, uint32_t default_limit, uint32_t max_limit,
                   struct api_page *out, struct api_error *err);

/* POST /api/replicas/{id}/fail?replace=true|false: absent is false; any
 * other value, or the parameter twice, is 400 bad_query. Other parameters
 * are ignored. */
int api_parse_fail_query(const char *query, bool *replace, struct api_error *err);

/* A replica id taken from a URL path segment (not NUL-terminated). 0 when
 * it is a valid id, copied into out; -1 otherwise (the caller answers 404). */
int api_parse_replica_id(const char *segment, size_t len, char out[LIMIT_ID_BYTES]);

/* The HTTP front door (front.c) answers one kind of request itself: exactly
 * "POST /api/requests HTTP/1.1", CRLF line ends, headers it understands
 * (no Transfer-Encoding, Expect or Upgrade; one Content-Length of at most
 * max_body bytes), the whole head within API_HEAD_MAX bytes. Everything
 * else is civetweb's to answer. Given the bytes of a connection so far
 * (b, n; not NUL-terminated), from the start of a request: */
#define API_HEAD_MAX 8192
enum api_head_result {
    API_HEAD_MORE,  /* may still become such a request: wait for more bytes */
    API_HEAD_OTHER, /* it cannot: civetweb's */
    API_HEAD_READY, /* a whole such request: head and body are in b */
};
struct api_head {
    size_t head_len; /* the body starts here */
    size_t body_len;
    bool close;      /* Connection: close */
    size_t auth_off; /* the Authorization value, trimmed: b + auth_off, auth_len */
    size_t auth_len; /* bytes; 0 when there is none (twice: civetweb's) */
    bool has_auth;
};
enum api_head_result api_parse_head(const char *b, size_t n, size_t max_body, struct api_head *out);

#endif
