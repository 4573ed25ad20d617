/*
 * coordinator/respond.c — see respond.h.
 */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Every status either side answers with: its reason phrase, and for errors
 * the API's error code and a message (used for the errors civetweb produces
 * itself, see http.c's http_error). */
static const struct respond_status STATUSES[] = {
    {200, "OK", NULL, NULL},
    {201, "Created", NULL, NULL},
    {202, "Accepted", NULL, NULL},
    {400, "Bad Request", "bad_request", "the request is not valid HTTP"},
    {401, "Unauthorized", "unauthorized", "this call needs the API token"},
    {403, "Forbidden", "forbidden", "that is not allowed"},
    {404, "Not Found", "not_found", "no such resource"},
    {405, "Method Not Allowed", "method_not_allowed", "that method is not supported here"},
    {408, "Request Timeout", "request_timeout", "the request did not arrive in time"},
    {409, "Conflict", "conflict", "the request conflicts with the current state"},
    {411, "Length Required", "length_required",
     "the request needs a valid Content-Length (or chunked transfer coding)"},
    {413, "Payload Too Large", "too_large", "the request is too large"},
    {414, "URI Too Long", "uri_too_long", "the request URI is too long"},
    {416, "Range Not Satisfiable", "bad_range", "the range cannot be satisfied"},
    {417, "Expectation Failed", "expectation_failed", "the Expect header is not supported"},
    {426, "Upgrade Required", "upgrade_required", "this resource needs a protocol upgrade"},
    {431, "Request Header Fields Too Large", "headers_too_large",
     "the request headers are too large"},
    {500, "Internal Server Error", "internal_error", "the server failed to handle the request"},
    {501, "Not Implemented", "not_implemented", "that is not implemented"},
    {503, "Service Unavailable", "unavailable", "the service is unavailable"},
    {504, "Gateway Timeout", "timeout", "the cluster did not answer in time"},
    {505, "HTTP Version Not Supported", "http_version_not_supported",
     "that HTTP version is not supported"},
};

const struct respond_status *respond_status(int status)
{
    for (size_t i = 0; i < sizeof(STATUSES) / sizeof(STATUSES[0]); i++) {
        if (STATUSES[i].status == status) {
            return &STATUSES[i];
        }
    }
    return NULL;
}

const char *respond_reason(int status)
{
    const struct respond_status *t = respond_status(status);
    return t ? t->reason : status < 400 ? "OK" : "Error";
}

char *respond_format(int status, const char *type, const char *body, const char *extra_headers,
                     bool with_body, size_t *len)
{
    size_t body_len = body ? strlen(body) : 0;
    size_t send_len = with_body ? body_len : 0;
    const char *fmt = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s\r\n";
    const char *xh = extra_headers ? extra_headers : "";
    int hl = snprintf(NULL, 0, fmt, status, respond_reason(status), type, body_len, xh);
    char *buf = hl > 0 ? malloc((size_t)hl + 1 + send_len) : NULL;
    if (buf == NULL) {
        return NULL;
    }
    snprintf(buf, (size_t)hl + 1, fmt, status, respond_reason(status), type, body_len, xh);
    if (send_len) {
        memcpy(buf + hl, body, send_len);
    }
    *len = (size_t)hl + send_len;
    return buf;
}

void respond_retry_after(char *out, size_t len, int status, unsigned retry_after_s)
{
    if (status == 503) {
        snprintf(out, len, "Retry-After: %u\r\n", retry_after_s ? retry_after_s : 1);
    } else if (len > 0) {
        out[0] = '\0';
    }
}

void respond_random_id(char *out, size_t len)
{
    unsigned char raw[8];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts, sizeof(raw));
    }
    snprintf(out, len, "c-%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3], raw[4],
             raw[5], raw[6], raw[7]);
}
