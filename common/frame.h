/*
 * common/frame.h — length-prefixed framing: a 4-byte big-endian length, then
 * that many bytes of one protobuf Envelope.
 *
 * The reader accumulates whatever the socket delivered and hands out whole
 * frames. It grows only by bytes actually received, never by a length read
 * from the wire, and rejects a length above its maximum as soon as the 4
 * header bytes are in: a hostile or broken peer cannot make us allocate.
 */
#ifndef COMMON_FRAME_H
#define COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_BYTES 4
#define FRAME_DEFAULT_MAX  (16u << 20)

struct frame_reader {
    uint8_t *buf;
    size_t start; /* first unconsumed byte */
    size_t len;   /* bytes held, from buf[0] */
    size_t cap;
    size_t max_frame;
};

enum frame_result {
    FRAME_NEED_MORE = 0,
    FRAME_READY = 1,
    FRAME_TOO_LARGE = -1,
};

void frame_reader_init(struct frame_reader *r, size_t max_frame);
void frame_reader_free(struct frame_reader *r);
/* Append received bytes. 0, or -1 when out of memory. */
int frame_reader_feed(struct frame_reader *r, const void *data, size_t n);
/* Next whole frame: its payload stays valid until the next feed or next. On
 * FRAME_TOO_LARGE, *len holds the declared length and the connection must
 * be closed: the stream cannot be resynchronised. */
enum frame_result frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len);
/* Bytes received but not yet part of a returned frame. */
size_t frame_reader_buffered(const struct frame_reader *r);

void frame_put_header(uint8_t out[FRAME_HEADER_BYTES], uint32_t len);

#endif
