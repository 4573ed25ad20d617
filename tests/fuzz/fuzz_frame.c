/*
 * tests/fuzz/fuzz_frame.c — the frame reader (common/frame.c) against a
 * reference parse of the same byte stream.
 *
 * Input: u8 max_frame (0: the 16 MiB default), u8 n (0..15) and n chunk
 * sizes, then the stream. The stream is fed in chunks of those sizes in
 * turn (a size of 0 feeds nothing, then one byte), as a socket might
 * deliver it, and after every feed all ready frames are taken. Checked:
 * every frame is the reference's next frame, byte for byte, and no longer
 * than max_frame; the buffered count is what was fed minus what was taken;
 * a declared length over max_frame is FRAME_TOO_LARGE with that length, at
 * the same point as in the reference, and nothing but FRAME_TOO_LARGE comes
 * after it; the buffer grows only with bytes received.
 */
#include "fuzz_util.h"

#include "frame.h"

/* The reference: frames and where the stream turns bad. */
struct ref_frame {
    size_t off; /* payload offset in the stream */
    size_t len;
};

struct ref {
    struct ref_frame *frames;
    size_t n;
    bool too_large; /* a header declares more than max */
    size_t bad_off; /* where that header starts */
    uint32_t bad_len;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void ref_parse(struct ref *r, const uint8_t *s, size_t len, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->frames = malloc((len / 4 + 1) * sizeof(*r->frames));
    if (r->frames == NULL) {
        abort();
    }
    size_t off = 0;
    while (len - off >= 4) {
        uint32_t n = be32(s + off);
        if (n > max) {
            r->too_large = true;
            r->bad_off = off;
            r->bad_len = n;
            return;
        }
        if (len - off - 4 < n) {
            return; /* incomplete at the end */
        }
        r->frames[r->n].off = off + 4;
        r->frames[r->n].len = n;
        r->n++;
        off += 4 + (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t max = in_u8(&in);
    size_t eff_max = max ? max : FRAME_DEFAULT_MAX;
    uint8_t sizes[16];
    unsigned n_sizes = in_u8(&in) % 16;
    for (unsigned i = 0; i < n_sizes; i++) {
        sizes[i] = in_u8(&in);
    }
    const uint8_t *stream;
    size_t len = in_bytes(&in, in.left, &stream);

    struct ref ref;
    ref_parse(&ref, stream, len, eff_max);

    struct frame_reader r;
    frame_reader_init(&r, max);
    FUZZ_CHECK(r.max_frame == eff_max, "max_frame %zu, expected %zu", r.max_frame, eff_max);

    size_t fed = 0, taken = 0, next_frame = 0, peak = 0, chunk = 0;
    bool too_large = false;
    while (fed < len) {
        size_t c = n_sizes ? sizes[chunk++ % n_sizes] : len - fed;
        if (c == 0) {
            FUZZ_CHECK(frame_reader_feed(&r, stream + fed, 0) == 0, "feeding 0 bytes failed");
            c = 1;
        }
        if (c > len - fed) {
            c = len - fed;
        }
        FUZZ_CHECK(frame_reader_feed(&r, stream + fed, c) == 0, "feed of %zu bytes failed", c);
        fed += c;
        if (r.len > peak) {
            peak = r.len;
        }
        /* Grows only by bytes received: doubling from 4096 up to what it holds. */
        FUZZ_CHECK(r.cap <= (peak * 2 > 4096 ? peak * 2 : 4096), "cap %zu for at most %zu bytes",
                   r.cap, peak);
        FUZZ_CHECK(r.start <= r.len && r.len <= r.cap, "start %zu len %zu cap %zu", r.start, r.len,
                   r.cap);

        for (;;) {
            const uint8_t *payload = NULL;
            size_t plen = 0;
            enum frame_result res = frame_reader_next(&r, &payload, &plen);
            if (res == FRAME_READY) {
                FUZZ_CHECK(!too_large, "a frame after FRAME_TOO_LARGE");
                FUZZ_CHECK(next_frame < ref.n, "frame %zu; the reference has %zu", next_frame,
                           ref.n);
                const struct ref_frame *f = &ref.frames[next_frame];
                FUZZ_CHECK(plen == f->len && plen <= eff_max,
                           "frame %zu of %zu bytes, expected %zu", next_frame, plen, f->len);
                FUZZ_CHECK(f->off + f->len <= fed, "frame %zu ready before all of it was fed",
                           next_frame);
                FUZZ_CHECK(payload >= r.buf && payload + plen <= r.buf + r.len,
                           "payload outside the buffer");
                FUZZ_CHECK(plen == 0 || memcmp(payload, stream + f->off, plen) == 0,
                           "frame %zu differs from the stream", next_frame);
                uint8_t h[FRAME_HEADER_BYTES];
                frame_put_header(h, (uint32_t)plen);
                FUZZ_CHECK(memcmp(h, stream + f->off - 4, 4) == 0, "frame_put_header differs");
                taken += 4 + plen;
                next_frame++;
                FUZZ_CHECK(frame_reader_buffered(&r) == fed - taken, "buffered %zu after a frame",
                           frame_reader_buffered(&r));
                continue;
            }
            /* Anything else takes nothing. */
            FUZZ_CHECK(frame_reader_buffered(&r) == fed - taken, "buffered %zu, fed %zu taken %zu",
                       frame_reader_buffered(&r), fed, taken);
            if (res == FRAME_TOO_LARGE) {
                FUZZ_CHECK(ref.too_large && ref.bad_off == taken && next_frame == ref.n,
                           "FRAME_TOO_LARGE at %zu; reference: %s at %zu", taken,
                           ref.too_large ? "too large" : "fine", ref.bad_off);
                FUZZ_CHECK(plen == ref.bad_len && plen > eff_max, "declared %zu, header says %u",
                           plen, ref.bad_len);
                too_large = true;
                /* It stays that way: the stream cannot be resynchronised. */
                FUZZ_CHECK(frame_reader_next(&r, &payload, &plen) == FRAME_TOO_LARGE,
                           "FRAME_TOO_LARGE did not stick");
                break;
            }
            FUZZ_CHECK(res == FRAME_NEED_MORE, "unknown result %d", (int)res);
            FUZZ_CHECK(!too_large, "FRAME_NEED_MORE after FRAME_TOO_LARGE");
            /* Need more only when the next frame is really incomplete. */
            size_t avail = fed - taken;
            FUZZ_CHECK(avail < 4 || (be32(stream + taken) <= eff_max &&
                                     avail - 4 < (size_t)be32(stream + taken)),
                       "FRAME_NEED_MORE with %zu bytes available", avail);
            break;
        }
    }
    /* The whole stream fed: every complete frame came out, and a bad header
     * was reported. */
    FUZZ_CHECK(too_large == ref.too_large, "too large: %d, reference %d", too_large, ref.too_large);
    FUZZ_CHECK(next_frame == ref.n, "%zu frames, reference %zu", next_frame, ref.n);

    frame_reader_free(&r);
    FUZZ_CHECK(r.buf == NULL && r.len == 0, "frame_reader_free left state behind");
    free(ref.frames);
    return 0;
}
