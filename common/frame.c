/*
 * common/frame.c — see frame.h.
 */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

void frame_reader_init(struct frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame ? max_frame : FRAME_DEFAULT_MAX;
}

void frame_reader_free(struct frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int frame_reader_feed(struct frame_reader *r, const void *data, size_t n)
{
    if (n == 0) {
        return 0; /* nothing to add; also keeps memcpy away from a NULL buffer */
    }
    if (r->start > 0) {
        /* Slide what is left to the front so the buffer never creeps. */
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n) {
            cap *= 2;
        }
        uint8_t *buf = realloc(r->buf, cap);
        if (buf == NULL) {
            return -1;
        }
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

enum frame_result frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len)
{
    size_t avail = r->len - r->start;
    if (avail < FRAME_HEADER_BYTES) {
        return FRAME_NEED_MORE;
    }
    const uint8_t *h = r->buf + r->start;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n > r->max_frame) {
        *len = n;
        return FRAME_TOO_LARGE;
    }
    if (avail - FRAME_HEADER_BYTES < n) {
        return FRAME_NEED_MORE;
    }
    *payload = h + FRAME_HEADER_BYTES;
    *len = n;
    r->start += FRAME_HEADER_BYTES + n;
    return FRAME_READY;
}

size_t frame_reader_buffered(const struct frame_reader *r)
{
    return r->len - r->start;
}

void frame_put_header(uint8_t out[FRAME_HEADER_BYTES], uint32_t len)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}
