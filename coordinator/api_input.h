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

/* POST /api/requests: {"data":"text","id":"optional","fault":false}. */
struct api_write {
    char *data; /* malloc'ed, NUL-terminated, valid UTF-8 */
    size_t len;
    char id[LIMIT_CLIENT_ID_BYTES]; /* "" when the client gave none */
    bool fault;
};

/* body: len bytes (need not be NUL-terminated). 0 and *out filled, which
 * api_write_free releases; or -1 and *err filled. */
int api_parse_write(const char *body, size_t len, size_t max_data_bytes, struct api_write *out,
                    struct api_error *err);
void api_write_free(struct api_write *w);

/* ?after=N&limit=M (either may be absent): after any u64, limit 1..max. */
struct api_page {
    uint64_t after;
    uint32_t limit;
};
int api_parse_page(const char *query, uint32_t default_limit, uint32_t max_limit,
                   struct api_page *out, struct api_error *err);

/* A replica id taken from a URL path segment (not NUL-terminated). 0 when
 * it is a valid id, copied into out; -1 otherwise (the caller answers 404). */
int api_parse_replica_id(const char *segment, size_t len, char out[LIMIT_ID_BYTES]);

#endif
