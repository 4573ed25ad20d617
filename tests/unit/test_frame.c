/*
 * tests/unit/test_frame.c — the length-prefixed frame reader (common/frame.c).
 *
 * A TCP socket delivers bytes in arbitrary pieces, so every test here cuts the
 * stream at every possible point and checks that the reader hands out exactly
 * the frames that were sent, never a partial one. The size tests check the
 * promise in frame.h: a declared length above the maximum is refused after
 * the 4 header bytes, before anything of that size is allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

/* Well below any size a hostile length could make us allocate. */
#define SMALL_CAP (64u * 1024u)

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* A frame (header + payload) in a fresh buffer; *total gets its size. */
static uint8_t *make_frame(const uint8_t *payload, size_t len, size_t *total)
{
    uint8_t *f = malloc(FRAME_HEADER_BYTES + len + 1); /* +1: len may be 0 */

    assert_non_null(f);
    frame_put_header(f, (uint32_t)len);
    if (len > 0) {
        memcpy(f + FRAME_HEADER_BYTES, payload, len);
    }
    *total = FRAME_HEADER_BYTES + len;
    return f;
}

/* A payload that includes zero bytes and every byte value, so a reader that
 * treated it as a string or lost a byte would be caught. */
static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 31u + seed);
    }
}

static void feed_ok(struct frame_reader *r, const void *data, size_t n)
{
    assert_int_equal(frame_reader_feed(r, data, n), 0);
}

/* What a socket read loop does: it only feeds when it received something.
 * Feeding zero bytes is covered on its own by test_feeding_zero_bytes, so the
 * split loops below do not depend on it. */
static void feed_some(struct frame_reader *r, const void *data, size_t n)
{
    if (n > 0) {
        feed_ok(r, data, n);
    }
}

/* Drains every ready frame, checking each against want[] as soon as it is
 * handed out: the payload is only promised until the next call. Returns how
 * many frames came out; *next is the index of the next expected frame. */
static size_t drain_check(struct frame_reader *r, uint8_t *const *want, const size_t *want_len,
                          size_t n_want, size_t *next)
{
    size_t got = 0;
    const uint8_t *p;
    size_t len;
    enum frame_result fr;

    while ((fr = frame_reader_next(r, &p, &len)) == FRAME_READY) {
        assert_true(*next < n_want);
        assert_int_equal(len, want_len[*next]);
        if (len > 0) {
            assert_memory_equal(p, want[*next], len);
        }
        (*next)++;
        got++;
    }
    assert_int_equal(fr, FRAME_NEED_MORE);
    return got;
}

/* ------------------------------------------------------------------------
 * One frame, however it arrives
 * ------------------------------------------------------------------------ */

static void test_whole_frame(void **state)
{
    uint8_t payload[37];
    size_t total;
    struct frame_reader r;
    const uint8_t *p;
    size_t len;

    fill_pattern(payload, sizeof payload, 7);
    uint8_t *f = make_frame(payload, sizeof payload, &total);
    frame_reader_init(&r, 0);
    feed_ok(&r, f, total);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_READY);
    assert_int_equal(len, sizeof payload);
    assert_memory_equal(p, payload, len);
    /* Asked again, the reader must not hand the same frame out twice. */
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    assert_int_equal(frame_reader_buffered(&r), 0);
    frame_reader_free(&r);
    free(f);
}

static void test_one_byte_at_a_time(void **state)
{
    uint8_t payload[37];
    size_t total;
    struct frame_reader r;
    const uint8_t *p;
    size_t len;
    int ready = 0;

    fill_pattern(payload, sizeof payload, 3);
    uint8_t *f = make_frame(payload, sizeof payload, &total);
    frame_reader_init(&r, 0);
    for (size_t i = 0; i < total; i++) {
        feed_ok(&r, f + i, 1);
        enum frame_result fr = frame_reader_next(&r, &p, &len);
        if (i + 1 < total) {
            assert_int_equal(fr, FRAME_NEED_MORE);
            continue;
        }
        assert_int_equal(fr, FRAME_READY);
        assert_int_equal(len, sizeof payload);
        assert_memory_equal(p, payload, len);
        ready++;
    }
    assert_int_equal(ready, 1);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    frame_reader_free(&r);
    free(f);
}

/* Two reads, cut at every possible point: the header, the header/payload
 * boundary and every byte of the payload. */
static void test_split_at_every_boundary(void **state)
{
    uint8_t payload[29];
    size_t total;
    uint8_t *want[1] = {payload};
    size_t want_len[1] = {sizeof payload};

    fill_pattern(payload, sizeof payload, 11);
    uint8_t *f = make_frame(payload, sizeof payload, &total);
    for (size_t split = 0; split <= total; split++) {
        struct frame_reader r;
        size_t next = 0;
        size_t got;

        frame_reader_init(&r, 0);
        feed_some(&r, f, split);
        got = drain_check(&r, want, want_len, 1, &next);
        assert_int_equal(got, split == total ? 1 : 0);
        feed_some(&r, f + split, total - split);
        got += drain_check(&r, want, want_len, 1, &next);
        assert_int_equal(got, 1);
        assert_int_equal(frame_reader_buffered(&r), 0);
        frame_reader_free(&r);
    }
    free(f);
}

/* ------------------------------------------------------------------------
 * Several frames
 * ------------------------------------------------------------------------ */

#define N_STREAM 6

/* Assorted sizes: empty, tiny, and one larger than the first buffer. */
static const size_t stream_sizes[N_STREAM] = {5, 0, 1, 300, 4, 4100};

/* Frames of assorted sizes (0 included) laid end to end, as a busy peer
 * would send them. */
struct stream {
    uint8_t *payload[N_STREAM];
    size_t len[N_STREAM];
    uint8_t *bytes;
    size_t total;
};

static void stream_make(struct stream *s, const size_t sizes[N_STREAM])
{
    s->total = 0;
    for (size_t i = 0; i < N_STREAM; i++) {
        s->len[i] = sizes[i];
        s->payload[i] = malloc(sizes[i] + 1);
        assert_non_null(s->payload[i]);
        fill_pattern(s->payload[i], sizes[i], (unsigned)i * 13u);
        s->total += FRAME_HEADER_BYTES + sizes[i];
    }
    s->bytes = malloc(s->total);
    assert_non_null(s->bytes);
    size_t off = 0;
    for (size_t i = 0; i < N_STREAM; i++) {
        frame_put_header(s->bytes + off, (uint32_t)s->len[i]);
        memcpy(s->bytes + off + FRAME_HEADER_BYTES, s->payload[i], s->len[i]);
        off += FRAME_HEADER_BYTES + s->len[i];
    }
}

static void stream_free(struct stream *s)
{
    for (size_t i = 0; i < N_STREAM; i++) {
        free(s->payload[i]);
    }
    free(s->bytes);
}

static void test_several_frames_in_one_feed(void **state)
{
    struct stream s;
    struct frame_reader r;
    size_t next = 0;

    stream_make(&s, stream_sizes);
    frame_reader_init(&r, 0);
    feed_ok(&r, s.bytes, s.total);
    assert_int_equal(drain_check(&r, s.payload, s.len, N_STREAM, &next), N_STREAM);
    assert_int_equal(frame_reader_buffered(&r), 0);
    frame_reader_free(&r);
    stream_free(&s);
}

/* Chunk sizes that put frame edges at every offset inside a read, as TCP
 * segments do; each payload is checked before the next feed moves the
 * buffer. */
static void test_frames_straddling_feeds(void **state)
{
    static const size_t chunks[] = {1, 2, 3, 4, 5, 7, 64, 333, 4096, 5000};
    struct stream s;

    stream_make(&s, stream_sizes);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        struct frame_reader r;
        size_t next = 0;
        size_t got = 0;

        frame_reader_init(&r, 0);
        for (size_t off = 0; off < s.total; off += chunks[c]) {
            size_t n = s.total - off < chunks[c] ? s.total - off : chunks[c];
            feed_some(&r, s.bytes + off, n);
            got += drain_check(&r, s.payload, s.len, N_STREAM, &next);
        }
        assert_int_equal(got, N_STREAM);
        assert_int_equal(frame_reader_buffered(&r), 0);
        frame_reader_free(&r);
    }
    stream_free(&s);
}

/* Every pair of split points over the whole stream: three reads. */
static void test_stream_split_in_three_everywhere(void **state)
{
    struct stream s;
    static const size_t small[N_STREAM] = {3, 0, 1, 9, 2, 4};

    /* Small frames keep the O(n^2) loop quick. */
    stream_make(&s, small);
    for (size_t a = 0; a <= s.total; a++) {
        for (size_t b = a; b <= s.total; b++) {
            struct frame_reader r;
            size_t next = 0;
            size_t got = 0;

            frame_reader_init(&r, 0);
            feed_some(&r, s.bytes, a);
            got += drain_check(&r, s.payload, s.len, N_STREAM, &next);
            feed_some(&r, s.bytes + a, b - a);
            got += drain_check(&r, s.payload, s.len, N_STREAM, &next);
            feed_some(&r, s.bytes + b, s.total - b);
            got += drain_check(&r, s.payload, s.len, N_STREAM, &next);
            assert_int_equal(got, N_STREAM);
            frame_reader_free(&r);
        }
    }
    stream_free(&s);
}

/* ------------------------------------------------------------------------
 * Truncation and empty frames
 * ------------------------------------------------------------------------ */

/* A peer that dies mid-frame leaves a prefix: the reader must keep waiting,
 * never hand out what it has. */
static void test_truncated_at_every_boundary(void **state)
{
    uint8_t payload[40];
    size_t total;
    const uint8_t *p;
    size_t len;

    fill_pattern(payload, sizeof payload, 5);
    uint8_t *f = make_frame(payload, sizeof payload, &total);
    for (size_t cut = 0; cut < total; cut++) {
        struct frame_reader r;

        frame_reader_init(&r, 0);
        feed_some(&r, f, cut);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
        assert_int_equal(frame_reader_buffered(&r), cut);
        frame_reader_free(&r);
    }
    free(f);
}

/* The same, after a whole frame: the prefix of the second one must not be
 * mistaken for a frame. */
static void test_truncated_after_a_whole_frame(void **state)
{
    uint8_t payload[12];
    size_t total;
    const uint8_t *p;
    size_t len;

    fill_pattern(payload, sizeof payload, 9);
    uint8_t *f = make_frame(payload, sizeof payload, &total);
    for (size_t cut = 0; cut < total; cut++) {
        struct frame_reader r;

        frame_reader_init(&r, 0);
        feed_ok(&r, f, total);
        feed_some(&r, f, cut);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_READY);
        assert_memory_equal(p, payload, sizeof payload);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
        assert_int_equal(frame_reader_buffered(&r), cut);
        frame_reader_free(&r);
    }
    free(f);
}

static void test_zero_length_frame(void **state)
{
    uint8_t hdr[FRAME_HEADER_BYTES];
    struct frame_reader r;
    const uint8_t *p = NULL;
    size_t len = 99;

    frame_put_header(hdr, 0);
    frame_reader_init(&r, 0);
    feed_ok(&r, hdr, sizeof hdr);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_READY);
    assert_int_equal(len, 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    frame_reader_free(&r);
}

/* A read callback may deliver nothing; that must change nothing. */
static void test_feeding_zero_bytes(void **state)
{
    static const uint8_t none[1];
    struct frame_reader r;
    const uint8_t *p;
    size_t len;

    frame_reader_init(&r, 0);
    feed_ok(&r, none, 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    assert_int_equal(frame_reader_buffered(&r), 0);
    frame_reader_free(&r);
}

/* ------------------------------------------------------------------------
 * Size limits
 * ------------------------------------------------------------------------ */

/* Only the 4 header bytes are fed: the refusal must not wait for (or make
 * room for) the body. */
static void expect_too_large(size_t max_frame, uint32_t declared)
{
    uint8_t hdr[FRAME_HEADER_BYTES];
    struct frame_reader r;
    const uint8_t *p;
    size_t len = 0;

    frame_put_header(hdr, declared);
    frame_reader_init(&r, max_frame);
    feed_ok(&r, hdr, sizeof hdr);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_TOO_LARGE);
    assert_int_equal(len, declared);
    assert_true(r.cap < SMALL_CAP);
    /* The stream cannot be resynchronised: asking again gives the same. */
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_TOO_LARGE);
    /* More bytes from a hostile peer must not turn it into a frame either. */
    feed_ok(&r, hdr, sizeof hdr);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_TOO_LARGE);
    assert_true(r.cap < SMALL_CAP);
    frame_reader_free(&r);
}

static void test_too_large_u32_max(void **state)
{
    expect_too_large(0, UINT32_MAX);
    expect_too_large(1024, UINT32_MAX);
}

static void test_too_large_max_plus_one(void **state)
{
    expect_too_large(0, FRAME_DEFAULT_MAX + 1);
    expect_too_large(1024, 1025);
    expect_too_large(1, 2);
}

/* The default applies when 0 is passed; it is what replctl and the client
 * library rely on. */
static void test_default_max(void **state)
{
    struct frame_reader r;

    frame_reader_init(&r, 0);
    assert_int_equal(r.max_frame, FRAME_DEFAULT_MAX);
    frame_reader_free(&r);
}

static void expect_exactly_max_accepted(size_t max_frame)
{
    size_t total;
    struct frame_reader r;
    const uint8_t *p;
    size_t len;
    uint8_t *payload = malloc(max_frame);

    assert_non_null(payload);
    fill_pattern(payload, max_frame, 17);
    uint8_t *f = make_frame(payload, max_frame, &total);
    frame_reader_init(&r, max_frame);
    /* The header alone: a length equal to the maximum is not refused. */
    feed_ok(&r, f, FRAME_HEADER_BYTES);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    feed_ok(&r, f + FRAME_HEADER_BYTES, total - FRAME_HEADER_BYTES);
    assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_READY);
    assert_int_equal(len, max_frame);
    assert_memory_equal(p, payload, max_frame);
    frame_reader_free(&r);
    free(f);
    free(payload);
}

static void test_exactly_max_accepted(void **state)
{
    expect_exactly_max_accepted(1);
    expect_exactly_max_accepted(1024);
    expect_exactly_max_accepted(FRAME_DEFAULT_MAX);
}

/* ------------------------------------------------------------------------
 * Header encoding and buffer reuse
 * ------------------------------------------------------------------------ */

/* Big-endian is the wire format every other implementation will assume. */
static void test_put_header_big_endian(void **state)
{
    uint8_t h[FRAME_HEADER_BYTES];

    frame_put_header(h, 0x01020304u);
    assert_memory_equal(h, ((uint8_t[]){0x01, 0x02, 0x03, 0x04}), 4);
    frame_put_header(h, 0);
    assert_memory_equal(h, ((uint8_t[]){0, 0, 0, 0}), 4);
    frame_put_header(h, 0xFFFFFFFFu);
    assert_memory_equal(h, ((uint8_t[]){0xFF, 0xFF, 0xFF, 0xFF}), 4);
    frame_put_header(h, 300);
    assert_memory_equal(h, ((uint8_t[]){0x00, 0x00, 0x01, 0x2C}), 4);
}

/* A long-lived connection must not grow its buffer with the number of
 * frames it has seen, whether reads line up with frames or not. */
static void test_buffer_reuse_bounded(void **state)
{
    uint8_t payload[50];
    size_t total;
    struct frame_reader r;
    const uint8_t *p;
    size_t len;

    fill_pattern(payload, sizeof payload, 1);
    uint8_t *f = make_frame(payload, sizeof payload, &total);

    /* Aligned: one frame per read. */
    frame_reader_init(&r, 0);
    for (int i = 0; i < 10000; i++) {
        feed_ok(&r, f, total);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_READY);
        assert_memory_equal(p, payload, sizeof payload);
        assert_int_equal(frame_reader_next(&r, &p, &len), FRAME_NEED_MORE);
    }
    assert_true(r.cap <= 4096);
    frame_reader_free(&r);

    /* Misaligned: each read ends inside a frame, leaving a tail to slide. */
    frame_reader_init(&r, 0);
    size_t pos = 0;
    int got = 0;
    for (int i = 0; i < 10000; i++) {
        uint8_t chunk[200];
        size_t n = 17 + (size_t)(i % 70);
        for (size_t k = 0; k < n; k++) {
            chunk[k] = f[(pos + k) % total];
        }
        pos = (pos + n) % total;
        feed_ok(&r, chunk, n);
        while (frame_reader_next(&r, &p, &len) == FRAME_READY) {
            assert_int_equal(len, sizeof payload);
            assert_memory_equal(p, payload, sizeof payload);
            got++;
        }
        assert_true(r.cap <= 4096);
    }
    assert_true(got > 10000 * 17 / (int)total);
    frame_reader_free(&r);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_frame),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_split_at_every_boundary),
        cmocka_unit_test(test_several_frames_in_one_feed),
        cmocka_unit_test(test_frames_straddling_feeds),
        cmocka_unit_test(test_stream_split_in_three_everywhere),
        cmocka_unit_test(test_truncated_at_every_boundary),
        cmocka_unit_test(test_truncated_after_a_whole_frame),
        cmocka_unit_test(test_zero_length_frame),
        cmocka_unit_test(test_too_large_u32_max),
        cmocka_unit_test(test_too_large_max_plus_one),
        cmocka_unit_test(test_default_max),
        cmocka_unit_test(test_exactly_max_accepted),
        cmocka_unit_test(test_put_header_big_endian),
        cmocka_unit_test(test_buffer_reuse_bounded),
        /* Last: under UBSan a failure here ends the process. */
        cmocka_unit_test(test_feeding_zero_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
