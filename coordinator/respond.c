/*
 * coordinator/respond.c — see respond.h.
 */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

char *respond_format(int status, const char *type, const char *body, const char *extra_headers,
                     bool with_body, size_t *len)
{
    size_t body_len = body ? strlen(body) : 0;
    size_t send_len = with_body ? body_len : 0;
    const char *fmt = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s\r\n";
    const char *xh = extra_headers ? extra_headers : "";
    int hl = snprintf(NULL, 0, fmt, status, reason(status), type, body_len, xh);
    char *buf = hl > 0 ? malloc((size_t)hl + 1 + send_len) : NULL;
    if (buf == NULL) {
        return NULL;
    }
    snprintf(buf, (size_t)hl + 1, fmt, status, reason(status), type, body_len, xh);
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
