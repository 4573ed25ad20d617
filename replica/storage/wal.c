/*
 * replica/storage/wal.c — the write-ahead log of one replica: its files and
 * record format, buffered appends, group commit, segment rollover and
 * sealing. Reads are in wal_read.c, recovery in wal_open.c, old segments and
 * the snapshot in wal_retain.c.
 *
 * FILES in the data dir
 *   wal-<16 hex digits>.seg  segments, by sequence number from 1; the highest
 *                            is the one appended to
 *   wal-<...>.seg.tmp        a segment being created (deleted by wal_open)
 *   wal.lock                 flock'd while a WAL is open: one replica per dir
 *   snapshot(.tmp)           the last snapshot (wal_retain.c)
 *   wal.log                  the single file of the format before segments,
 *                            migrated by wal_open (LEGACY below)
 *
 * RECORDS. Every integer is little-endian and encoded byte by byte, so the
 * format depends neither on the compiler's struct layout nor on the host.
 *
 *   header, 20 bytes
 *      0  u32  magic      0x4c415752, the bytes "RWAL"
 *      4  u8   type       1 STATE, 2 ENTRY, 3 TRUNCATE, 4 CHECKPOINT,
 *                         5 SEGMENT, 6 FOOTER
 *      5  u8x3 reserved   zero
 *      8  u32  len        payload bytes, at most 64 MiB
 *     12  u32  pcrc       CRC-32C of the payload
 *     16  u32  hcrc       CRC-32C of header bytes 0..15
 *   payload, len bytes
 *     STATE       u64 epoch, str voted_for, u32 n_bootstrap, n_bootstrap x str
 *     ENTRY       u64 index, u64 epoch, u8 type, u64 time_ms (two's
 *                 complement), str client_id, str primary, str data
 *     TRUNCATE    u64 from: entries with index >= from are dropped
 *     CHECKPOINT  u64 commit, u64 processed, u64 synced
 *     SEGMENT     u32 version (1), u64 seq, u64 base, STATE, CHECKPOINT
 *     FOOTER      u32 version (1), u64 seq, u64 base, u64 first_live,
 *                 u64 last_index, u64 min_truncate,
 *                 u32 n, n x (u64 index, u64 offset)      sparse index points
 *                 u32 n, n x (u64 first_index, u64 epoch) epoch runs
 *                 u32 n, n x u64                          CONFIG indexes
 *                 STATE, CHECKPOINT
 *   str = u32 length, then that many bytes (no NUL)
 *
 * The header has its own checksum so that a damaged length is detected
 * rather than trusted: a flipped length bit would otherwise make replay skip
 * or swallow the records that follow.
 *
 * SEGMENTS. A segment starts with a SEGMENT record: its sequence number,
 * `base` (the index the log's next entry had when it was started: the first
 * it may hold, a TRUNCATE aside) and the hard state and checkpoint in force
 * then, so that deleting older segments loses neither. Then records, in the
 * order they were appended. A record goes to the current segment if it fits
 * there with room to spare for the footer and trailer within segment_bytes;
 * if not, the segment is sealed and the record starts the next one (so one
 * wal_sync may span segments; a record larger than segment_bytes still gets
 * a segment of its own).
 *
 * Sealing appends a FOOTER: the segment's share of the log, which is all a
 * restart needs from it — the sparse index points of its live entries
 * (logindex.h), their epoch runs and CONFIG indexes, the first of them
 * (first_live, 0 if none), the log's last index, and the smallest TRUNCATE
 * `from` it holds (which removes entries of earlier segments) — and the hard
 * state and checkpoint in force at its end. A 24-byte trailer ends the file:
 *      0  u32  magic      0x4c545752, the bytes "RWTL"
 *      4  u32  length of the footer record, header included
 *      8  u64  offset of the footer record
 *     16  u32  reserved   zero
 *     20  u32  CRC-32C of trailer bytes 0..19
 * wal_open reads a sealed segment's trailer and footer, not its records.
 *
 * ORDER. A segment is created as wal-<seq>.seg.tmp, preallocated with
 * fallocate(KEEP_SIZE) — so that a full disk fails there, before any record
 * of the batch is written — given its SEGMENT record and fdatasync'd, and
 * renamed into place (then the dir fsync'd) only once its predecessor is
 * sealed and synced. Every segment but the last is therefore complete and
 * sealed, and a crash can only damage the last one.
 *
 * RECOVERY draws one line. In the last segment, a record cut short by the
 * end of the file, or a damaged record with only zero bytes (or nothing)
 * after it, is what a crash in the middle of a write leaves: it was never
 * synced, so nobody was told about it, and the file is truncated before it;
 * a footer there (a seal whose next segment never got its name) goes too,
 * trailer and all: the last segment is always open after recovery, and is
 * sealed anew when full.
 * A damaged record with more data after it cannot come from a torn write;
 * dropping it would silently lose entries that may have been acknowledged,
 * so wal_open refuses to start. When the header itself is damaged the
 * record's end is unknown, so everything after the header must be zero for
 * it to count as torn. In an earlier segment no damage is a crash's: one
 * whose trailer or footer is unreadable is read record by record and any
 * damaged or cut-short record refuses; one with a sound footer is not read
 * at all, so damage to its records shows when they are read (wal_read:
 * -EILSEQ naming file and offset). Segment numbers must be consecutive and
 * each segment's base must follow on from the log before it.
 *
 * LEGACY. wal.log, the log of the format before segments (the same records,
 * without SEGMENT, FOOTER and CHECKPOINT), is recovered as segment 0 — it
 * is the last segment, so a torn tail is cut as before — and renamed to
 * wal-0000000000000000.seg once recovered. It is appended to until full,
 * then sealed like any other. A dir holding both wal.log and segments is
 * refused.
 */
#define _GNU_SOURCE /* fallocate */
#include "storage/wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/crc32c.h"

void wal_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void wal_set_err(struct wal *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

const char *wal_last_error(const struct wal *w)
{
    return w->err;
}

/* ------------------------------------------------------------------------
 * Names and file helpers
 * ------------------------------------------------------------------------ */

void wal_segment_name(char *out, uint64_t seq, bool tmp)
{
    snprintf(out, WAL_NAME_MAX, "wal-%016" PRIx64 ".seg%s", seq, tmp ? WAL_TMP_SUFFIX : "");
}

bool wal_parse_segment_name(const char *name, uint64_t *seq)
{
    uint64_t v = 0;

    if (strlen(name) != 24 || strncmp(name, "wal-", 4) != 0 || strcmp(name + 20, ".seg") != 0)
        return false;
    for (int i = 4; i < 20; i++) {
        char ch = name[i];

        if (ch >= '0' && ch <= '9')
            v = v << 4 | (uint64_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v = v << 4 | (uint64_t)(ch - 'a' + 10);
        else
            return false;
    }
    *seq = v;
    return true;
}

struct segment *wal_segment(struct wal *w, uint64_t seq)
{
    if (w->n_segs == 0 || seq < w->segs[0].seq || seq - w->segs[0].seq >= w->n_segs)
        return NULL;
    return &w->segs[seq - w->segs[0].seq];
}

int wal_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t k = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));

        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EIO;
        done += (size_t)k;
    }
    return 0;
}

int wal_fsync_fd(int fd, bool data_only)
{
    while ((data_only ? fdatasync(fd) : fsync(fd)) != 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Times the sync for wal_last_fsync_ns. */
static int timed_sync(struct wal *w, int fd, bool data_only)
{
    uint64_t start = mono_ns();
    int rc = wal_fsync_fd(fd, data_only);

    w->fsync_ns += mono_ns() - start;
    return rc;
}

/* ------------------------------------------------------------------------
 * Trailer and footer
 * ------------------------------------------------------------------------ */

void wal_trailer_encode(uint8_t *t, uint64_t footer_off, uint32_t footer_len)
{
    uint8_t *p = t;

    p = put_u32(p, WAL_TRAILER_MAGIC);
    p = put_u32(p, footer_len);
    p = put_u64(p, footer_off);
    p = put_u32(p, 0);
    put_u32(p, crc32c(0, t, WAL_TRAILER_SIZE - 4));
}

bool wal_trailer_decode(const uint8_t *t, uint64_t *footer_off, uint32_t *footer_len)
{
    if (get_u32(t) != WAL_TRAILER_MAGIC || get_u32(t + 16) != 0 ||
        get_u32(t + 20) != crc32c(0, t, WAL_TRAILER_SIZE - 4))
        return false;
    *footer_len = get_u32(t + 4);
    *footer_off = get_u64(t + 8);
    return true;
}

static size_t footer_payload_len(const struct log_index *s, size_t state_len)
{
    return WAL_FOOTER_FIXED + 16 * s->n_points + 16 * s->n_runs + 8 * s->n_configs + state_len +
           REC_CHECKPOINT_SIZE;
}

/* The footer record and the trailer after it, for a segment whose records
 * end at `off`. Returns the bytes (malloc'd) and their count. */
static uint8_t *footer_encode(const struct footer *f, uint64_t off, size_t *total)
{
    const struct log_index *s = &f->slice;
    size_t state_len, len;
    uint8_t *rec, *p;

    rec_state_len(&f->hs, &state_len);
    len = footer_payload_len(s, state_len);
    rec = malloc(REC_HEADER_SIZE + len + WAL_TRAILER_SIZE);
    if (!rec)
        return NULL;
    p = rec + REC_HEADER_SIZE;
    p = put_u32(p, WAL_FORMAT_VERSION);
    p = put_u64(p, f->seq);
    p = put_u64(p, f->base);
    p = put_u64(p, s->last >= s->first ? s->first : 0);
    p = put_u64(p, f->last_index);
    p = put_u64(p, f->min_truncate);
    p = put_u32(p, (uint32_t)s->n_points);
    for (size_t i = 0; i < s->n_points; i++) {
        p = put_u64(p, s->points[i].index);
        p = put_u64(p, s->points[i].offset);
    }
    p = put_u32(p, (uint32_t)s->n_runs);
    for (size_t i = 0; i < s->n_runs; i++) {
        p = put_u64(p, s->runs[i].first_index);
        p = put_u64(p, s->runs[i].epoch);
    }
    p = put_u32(p, (uint32_t)s->n_configs);
    for (size_t i = 0; i < s->n_configs; i++)
        p = put_u64(p, s->configs[i]);
    p = rec_put_state(p, &f->hs);
    rec_put_checkpoint(p, &f->cp);
    rec_seal(rec, REC_FOOTER, (uint32_t)len);
    wal_trailer_encode(rec + REC_HEADER_SIZE + len, off, (uint32_t)(REC_HEADER_SIZE + len));
    *total = REC_HEADER_SIZE + len + WAL_TRAILER_SIZE;
    return rec;
}

/* Reads n pairs of u64 (or single ones with pair false) into a fresh array,
 * refusing counts the payload cannot hold before allocating. */
static bool take_u64s(struct cursor *c, size_t n, size_t per, uint64_t **out)
{
    uint64_t *a;

    *out = NULL;
    if (!c->ok || n > c->left / (8 * per)) {
        c->ok = false;
        return false;
    }
    if (n == 0)
        return true;
    a = malloc(n * per * 8);
    if (!a)
        return c->ok = false;
    for (size_t i = 0; i < n * per; i++)
        a[i] = take_u64(c);
    *out = a;
    return true;
}

/* Whether the slice a footer describes is well formed in itself: points,
 * runs and config indexes strictly ascending inside first..last, the first
 * point and run at first. Offsets are the caller's to check. */
static bool slice_sound(const struct log_index *s)
{
    if (s->last < s->first)
        return s->n_points == 0 && s->n_runs == 0 && s->n_configs == 0;
    if (s->n_points == 0 || s->n_runs == 0 || s->points[0].index != s->first ||
        s->runs[0].first_index != s->first)
        return false;
    for (size_t i = 0; i < s->n_points; i++)
        if (s->points[i].index > s->last ||
            (i > 0 && (s->points[i].index <= s->points[i - 1].index ||
                       s->points[i].offset <= s->points[i - 1].offset)))
            return false;
    for (size_t i = 1; i < s->n_runs; i++)
        if (s->runs[i].first_index <= s->runs[i - 1].first_index ||
            s->runs[i].first_index > s->last || s->runs[i].epoch <= s->runs[i - 1].epoch)
            return false;
    for (size_t i = 0; i < s->n_configs; i++)
        if (s->configs[i] < s->first || s->configs[i] > s->last ||
            (i > 0 && s->configs[i] <= s->configs[i - 1]))
            return false;
    return true;
}

bool wal_footer_decode(const uint8_t *payload, size_t len, struct footer *f)
{
    struct cursor c = cursor_of(payload, len);
    uint64_t first_live, *pts = NULL, *runs = NULL;
    uint32_t version, n;
    struct log_index *s = &f->slice;

    memset(f, 0, sizeof *f);
    version = take_u32(&c);
    f->seq = take_u64(&c);
    f->base = take_u64(&c);
    first_live = take_u64(&c);
    f->last_index = take_u64(&c);
    f->min_truncate = take_u64(&c);
    if (!c.ok || version != WAL_FORMAT_VERSION || f->last_index >= WAL_INDEX_MAX ||
        f->base > WAL_INDEX_MAX || (first_live != 0 && first_live > f->last_index))
        return false;
    ix_init(s, first_live ? first_live : f->last_index + 1);
    s->last = f->last_index;

    n = take_u32(&c);
    if (take_u64s(&c, n, 2, &pts) && n > 0) {
        s->points = malloc(n * sizeof *s->points);
        if (!s->points)
            c.ok = false;
        for (uint32_t i = 0; c.ok && i < n; i++)
            s->points[i] = (struct ix_point){pts[2 * i], f->seq, pts[2 * i + 1]};
        s->n_points = s->cap_points = c.ok ? n : 0;
    }
    free(pts);
    n = take_u32(&c);
    if (take_u64s(&c, n, 2, &runs) && n > 0) {
        s->runs = malloc(n * sizeof *s->runs);
        if (!s->runs)
            c.ok = false;
        for (uint32_t i = 0; c.ok && i < n; i++)
            s->runs[i] = (struct core_epoch_run){runs[2 * i], runs[2 * i + 1]};
        s->n_runs = s->cap_runs = c.ok ? n : 0;
    }
    free(runs);
    n = take_u32(&c);
    if (take_u64s(&c, n, 1, &s->configs))
        s->n_configs = s->cap_configs = n;
    rec_take_state(&c, &f->hs);
    rec_take_checkpoint(&c, &f->cp);
    if (!c.ok || c.left != 0 || !slice_sound(s)) {
        ix_free(s);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Appends: records are encoded into one buffer
 * ------------------------------------------------------------------------ */

/* Room for one record with len payload bytes at the end of the buffer.
 * Returns where the payload goes, or NULL when memory runs out. */
static uint8_t *record_reserve(struct wal *w, size_t len)
{
    size_t need = w->buf_len + REC_HEADER_SIZE + len;

    if (need > w->buf_cap) {
        size_t cap = w->buf_cap ? w->buf_cap : 4096;
        uint8_t *buf;

        while (cap < need)
            cap *= 2;
        buf = realloc(w->buf, cap);
        if (!buf)
            return NULL;
        w->buf = buf;
        w->buf_cap = cap;
    }
    return w->buf + w->buf_len + REC_HEADER_SIZE;
}

/* Seal the record whose payload record_reserve placed: fill its header. */
static void record_finish(struct wal *w, enum rec_type type, size_t len)
{
    rec_seal(w->buf + w->buf_len, type, (uint32_t)len);
    w->buf_len += REC_HEADER_SIZE + len;
}

int wal_append_state(struct wal *w, const struct core_hard_state *hs)
{
    size_t len;
    uint8_t *p;

    if (!rec_state_len(hs, &len))
        return -EINVAL;
    p = record_reserve(w, len);
    if (!p)
        return -ENOMEM;
    rec_put_state(p, hs);
    record_finish(w, REC_STATE, len);
    return 0;
}

int wal_append_checkpoint(struct wal *w, const struct core_checkpoint *cp)
{
    uint8_t *p = record_reserve(w, REC_CHECKPOINT_SIZE);

    if (!p)
        return -ENOMEM;
    rec_put_checkpoint(p, cp);
    record_finish(w, REC_CHECKPOINT, REC_CHECKPOINT_SIZE);
    return 0;
}

static int put_entry_record(struct wal *w, const struct core_entry *e)
{
    size_t clen = strlen(e->client_id ? e->client_id : "");
    size_t plen = strlen(e->primary ? e->primary : "");
    size_t len = rec_entry_len(clen, plen, e->len);
    uint8_t *p = record_reserve(w, len);

    if (!p)
        return -ENOMEM;
    rec_put_entry(p, e, clen, plen);
    record_finish(w, REC_ENTRY, len);
    return 0;
}

static int put_truncate(struct wal *w, uint64_t from)
{
    uint8_t *p = record_reserve(w, 8);

    if (!p)
        return -ENOMEM;
    put_u64(p, from);
    record_finish(w, REC_TRUNCATE, 8);
    return 0;
}

int wal_append_entries(struct wal *w, uint64_t truncate_from, const struct core_entry *e, size_t n)
{
    uint64_t last = w->buf_last;
    size_t mark = w->buf_len;
    bool truncate = truncate_from > 0 && truncate_from <= last;
    int rc;

    /* Entries below the first kept one were dropped for a snapshot: they
     * were committed, and committed entries are never truncated. */
    if (truncate && truncate_from < w->ix.first)
        return -EINVAL;
    if (truncate)
        last = truncate_from - 1;
    /* Check the whole batch first: replay treats a gap in the indices or an
     * oversized record as corruption, so such a batch must never reach disk,
     * and a half-buffered batch would be worse than none. */
    for (size_t i = 0; i < n; i++) {
        const char *client = e[i].client_id ? e[i].client_id : "";
        const char *primary = e[i].primary ? e[i].primary : "";

        if (e[i].index != last + 1 + i || e[i].index >= WAL_INDEX_MAX ||
            (unsigned)e[i].type > CORE_ENTRY_CONFIG)
            return -EINVAL;
        if (e[i].len > REC_MAX_PAYLOAD ||
            rec_entry_len(strlen(client), strlen(primary), e[i].len) > REC_MAX_PAYLOAD)
            return -EMSGSIZE;
    }
    if (truncate && (rc = put_truncate(w, truncate_from)) < 0)
        goto err_rollback;
    for (size_t i = 0; i < n; i++)
        if ((rc = put_entry_record(w, &e[i])) < 0)
            goto err_rollback;
    w->buf_last = last + n;
    return 0;

err_rollback:
    w->buf_len = mark;
    return rc;
}

/* ------------------------------------------------------------------------
 * Applying written records to the index
 * ------------------------------------------------------------------------ */

/* Our own records buf[0..len), written at offset `at` of segment seq: their
 * effect on ix, the hard state, the checkpoint and the smallest TRUNCATE. */
static int apply_records(struct log_index *ix, const uint8_t *buf, size_t len, uint64_t seq,
                         uint64_t at, struct core_hard_state *hs, struct core_checkpoint *cp,
                         uint64_t *min_truncate)
{
    for (size_t off = 0; off < len;) {
        const uint8_t *h = buf + off, *p = h + REC_HEADER_SIZE;
        uint32_t plen = get_u32(h + 8);
        struct cursor c = cursor_of(p, plen);
        struct core_checkpoint k;
        uint64_t from;
        int rc;

        switch (h[4]) {
        case REC_ENTRY:
            rc = ix_add_entry(ix, get_u64(p), get_u64(p + 8), (enum core_entry_type)p[16], seq,
                              at + off);
            if (rc < 0)
                return rc;
            break;
        case REC_TRUNCATE:
            from = get_u64(p);
            ix_cut(ix, from);
            if (*min_truncate == 0 || from < *min_truncate)
                *min_truncate = from;
            break;
        case REC_STATE:
            rec_take_state(&c, hs);
            break;
        case REC_CHECKPOINT:
            rec_take_checkpoint(&c, &k);
            rec_checkpoint_keep(cp, &k);
            break;
        }
        off += REC_HEADER_SIZE + plen;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Sync: planning where each buffered record goes
 * ------------------------------------------------------------------------ */

/* A run of buffered records going into one segment. */
struct part {
    size_t from, to; /* buffer bytes [from, to) */
    uint64_t seq;
    bool fresh;                /* its segment is created by this sync */
    bool seal;                 /* and sealed after these records */
    int fd;                    /* fresh: the file, named .tmp until its turn */
    uint64_t base;             /* fresh: its header's */
    struct core_hard_state hs; /* fresh: in force where it starts */
    struct core_checkpoint cp;
};

/* A segment as the plan fills it, with what its footer would take (an
 * upper bound: truncations only ever shrink a footer). */
struct room {
    uint64_t used;
    size_t points, runs, configs, state_len;
    uint64_t epoch; /* of the last entry */
    bool need_point, run_break, has_records;
};

static uint64_t room_needed(const struct room *r)
{
    return r->used + REC_HEADER_SIZE + WAL_FOOTER_FIXED + 16 * r->points + 16 * r->runs +
           8 * r->configs + r->state_len + REC_CHECKPOINT_SIZE + WAL_TRAILER_SIZE;
}

static void room_add(struct room *r, const uint8_t *h)
{
    const uint8_t *p = h + REC_HEADER_SIZE;
    uint32_t len = get_u32(h + 8);
    uint64_t index, epoch;

    r->used += REC_HEADER_SIZE + len;
    r->has_records = true;
    switch (h[4]) {
    case REC_ENTRY:
        index = get_u64(p);
        epoch = get_u64(p + 8);
        r->points += r->need_point || (index - 1) % IX_POINT_EVERY == 0;
        r->runs += r->run_break || epoch != r->epoch;
        r->configs += p[16] == CORE_ENTRY_CONFIG;
        r->need_point = r->run_break = false;
        r->epoch = epoch;
        break;
    case REC_TRUNCATE:
        r->need_point = r->run_break = true;
        break;
    case REC_STATE:
        if (len > r->state_len)
            r->state_len = len;
        break;
    }
}

static size_t segment_header_len(const struct core_hard_state *hs)
{
    size_t state_len = 0;

    rec_state_len(hs, &state_len);
    return REC_HEADER_SIZE + WAL_SEGMENT_FIXED + state_len + REC_CHECKPOINT_SIZE;
}

/* An empty segment about to be created. */
static struct room room_fresh(const struct core_hard_state *hs)
{
    size_t state_len = 0;

    rec_state_len(hs, &state_len);
    return (struct room){.used = segment_header_len(hs),
                         .state_len = state_len,
                         .need_point = true,
                         .run_break = true};
}

/* The open segment as it is on disk. */
static struct room room_open(const struct wal *w, const struct segment *seg)
{
    struct room r = room_fresh(&w->hs);

    r.used = seg->end;
    r.has_records = seg->end > seg->start;
    r.epoch = ix_last_epoch(&w->ix);
    r.need_point = w->ix.need_point;
    ix_slice_counts(&w->ix, seg->seq, &r.points, &r.runs, &r.configs);
    r.run_break = r.points == 0 || w->ix.need_point;
    return r;
}

/* What a record changes in what the next segment's header carries. */
static void plan_apply(const uint8_t *h, uint64_t *last, struct core_hard_state *hs,
                       struct core_checkpoint *cp)
{
    const uint8_t *p = h + REC_HEADER_SIZE;
    struct cursor c = cursor_of(p, get_u32(h + 8));
    struct core_checkpoint k;

    switch (h[4]) {
    case REC_ENTRY:
        *last = get_u64(p);
        break;
    case REC_TRUNCATE:
        if (get_u64(p) <= *last)
            *last = get_u64(p) - 1;
        break;
    case REC_STATE:
        rec_take_state(&c, hs);
        break;
    case REC_CHECKPOINT:
        rec_take_checkpoint(&c, &k);
        rec_checkpoint_keep(cp, &k);
        break;
    }
}

static struct part *add_part(struct part **parts, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct part *p = realloc(*parts, ncap * sizeof *p);

        if (!p)
            return NULL;
        *parts = p;
        *cap = ncap;
    }
    memset(&(*parts)[*n], 0, sizeof **parts);
    (*parts)[*n].fd = -1;
    return &(*parts)[(*n)++];
}

/* Splits the buffer into parts, one per segment it goes to: the open
 * segment first (if any), then fresh ones. Deterministic: a retry after a
 * failure places the same records at the same places. */
static int plan_sync(struct wal *w, struct part **out, size_t *n_out)
{
    struct part *parts = NULL, *pt;
    size_t n = 0, cap = 0;
    struct segment *cur = w->cur_fd >= 0 ? &w->segs[w->n_segs - 1] : NULL;
    uint64_t last = w->ix.last, next_seq = w->n_segs ? w->segs[w->n_segs - 1].seq + 1 : 1;
    struct core_hard_state hs = w->hs;
    struct core_checkpoint cp = w->cp;
    struct room room;

    if (!(pt = add_part(&parts, &n, &cap)))
        return -ENOMEM;
    if (cur) {
        pt->seq = cur->seq;
        room = room_open(w, cur);
    } else {
        *pt = (struct part){.seq = next_seq++, .fresh = true, .fd = -1, .base = last + 1};
        pt->hs = hs;
        pt->cp = cp;
        room = room_fresh(&hs);
    }
    for (size_t off = 0; off < w->buf_len;) {
        const uint8_t *h = w->buf + off;
        struct room t = room;

        room_add(&t, h);
        if (room_needed(&t) > w->segment_bytes && room.has_records) {
            parts[n - 1].to = off;
            parts[n - 1].seal = true;
            if (!(pt = add_part(&parts, &n, &cap))) {
                free(parts);
                return -ENOMEM;
            }
            *pt = (struct part){.from = off, .seq = next_seq++, .fresh = true, .fd = -1};
            pt->base = last + 1;
            pt->hs = hs;
            pt->cp = cp;
            t = room = room_fresh(&hs);
            room_add(&t, h);
        }
        room = t;
        plan_apply(h, &last, &hs, &cp);
        off += REC_HEADER_SIZE + get_u32(h + 8);
    }
    parts[n - 1].to = w->buf_len;
    *out = parts;
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------------------
 * Sync: creating, writing and sealing segments
 * ------------------------------------------------------------------------ */

static void discard_tmp(struct wal *w, struct part *pt)
{
    char name[WAL_NAME_MAX];

    if (pt->fd < 0)
        return;
    close(pt->fd);
    pt->fd = -1;
    wal_segment_name(name, pt->seq, true);
    unlinkat(w->dir_fd, name, 0);
}

/* Creates a fresh part's segment under its temporary name: preallocated,
 * with its SEGMENT record, synced. */
static int create_segment(struct wal *w, struct part *pt)
{
    char name[WAL_NAME_MAX];
    size_t hlen = segment_header_len(&pt->hs);
    uint64_t want = w->segment_bytes;
    uint8_t *rec, *p;
    int rc;

    wal_segment_name(name, pt->seq, true);
    pt->fd = openat(w->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (pt->fd < 0) {
        rc = -errno;
        wal_set_err(w, "cannot create %s/%s: %s", w->dir, name, strerror(errno));
        return rc;
    }
    /* An oversized record makes its segment bigger than segment_bytes. */
    if (hlen + (pt->to - pt->from) + WAL_TRAILER_SIZE + 4096 > want)
        want = hlen + (pt->to - pt->from) + WAL_TRAILER_SIZE + 4096;
    if (fallocate(pt->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)want) != 0 && errno != EOPNOTSUPP &&
        errno != ENOSYS) {
        rc = -errno;
        wal_set_err(w, "cannot reserve %llu bytes for %s/%s: %s", (unsigned long long)want, w->dir,
                    name, strerror(errno));
        discard_tmp(w, pt);
        return rc;
    }
    rec = malloc(hlen);
    if (!rec) {
        discard_tmp(w, pt);
        return -ENOMEM;
    }
    p = rec + REC_HEADER_SIZE;
    p = put_u32(p, WAL_FORMAT_VERSION);
    p = put_u64(p, pt->seq);
    p = put_u64(p, pt->base);
    p = rec_put_state(p, &pt->hs);
    rec_put_checkpoint(p, &pt->cp);
    rec_seal(rec, REC_SEGMENT, (uint32_t)(hlen - REC_HEADER_SIZE));
    rc = wal_pwrite_all(pt->fd, rec, hlen, 0);
    free(rec);
    if (rc == 0)
        rc = wal_fsync_fd(pt->fd, true);
    if (rc < 0) {
        wal_set_err(w, "cannot write the header of %s/%s: %s", w->dir, name, strerror(-rc));
        discard_tmp(w, pt);
    }
    return rc;
}

static int add_segment(struct wal *w, const struct segment *seg)
{
    if (w->n_segs == w->cap_segs) {
        size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
        struct segment *s = realloc(w->segs, cap * sizeof *s);

        if (!s)
            return -ENOMEM;
        w->segs = s;
        w->cap_segs = cap;
    }
    w->segs[w->n_segs++] = *seg;
    return 0;
}

/* A fresh part's turn: its predecessor is sealed, so it may take its name. */
static int publish_segment(struct wal *w, struct part *pt)
{
    char tmp[WAL_NAME_MAX], name[WAL_NAME_MAX];
    uint64_t start = segment_header_len(&pt->hs);
    int rc;

    wal_segment_name(tmp, pt->seq, true);
    wal_segment_name(name, pt->seq, false);
    rc = add_segment(
        w, &(struct segment){
               .seq = pt->seq, .base = pt->base, .start = start, .end = start, .size = start});
    if (rc < 0)
        return rc;
    if (renameat(w->dir_fd, tmp, w->dir_fd, name) != 0) {
        rc = -errno;
        w->n_segs--;
        wal_set_err(w, "cannot rename %s/%s: %s", w->dir, tmp, strerror(errno));
        return rc;
    }
    w->cur_fd = pt->fd;
    pt->fd = -1;
    /* The name is only durable with the directory. */
    rc = wal_fsync_fd(w->dir_fd, false);
    if (rc < 0) {
        w->broken = true;
        wal_set_err(w, "cannot sync directory %s: %s", w->dir, strerror(-rc));
    }
    return rc;
}

/* The footer of the open segment once the part's records are in it. */
static uint8_t *build_footer(struct wal *w, const struct part *pt, const struct segment *seg,
                             size_t *total)
{
    struct footer f = {.seq = seg->seq,
                       .base = seg->base,
                       .min_truncate = seg->min_truncate,
                       .hs = w->hs,
                       .cp = w->cp};
    uint8_t *bytes = NULL;

    if (pt->fresh) {
        ix_init(&f.slice, pt->base);
        f.hs = pt->hs;
        f.cp = pt->cp;
    } else if (ix_slice(&w->ix, seg->seq, &f.slice) < 0) {
        return NULL;
    }
    if (apply_records(&f.slice, w->buf + pt->from, pt->to - pt->from, seg->seq, seg->end, &f.hs,
                      &f.cp, &f.min_truncate) == 0) {
        f.last_index = f.slice.last;
        bytes = footer_encode(&f, seg->end + (pt->to - pt->from), total);
    }
    ix_free(&f.slice);
    return bytes;
}

/* Footer, trailer, nothing after them, synced. Until the fdatasync returns
 * a failure is retried as a whole by the next wal_sync. */
static int seal_segment(struct wal *w, const struct part *pt, struct segment *seg)
{
    uint64_t off = seg->end + (pt->to - pt->from);
    size_t total;
    uint8_t *footer = build_footer(w, pt, seg, &total);
    char name[WAL_NAME_MAX];
    int rc;

    wal_segment_name(name, seg->seq, false);
    if (!footer) {
        wal_set_err(w, "out of memory sealing %s/%s", w->dir, name);
        return -ENOMEM;
    }
    rc = wal_pwrite_all(w->cur_fd, footer, total, off);
    free(footer);
    if (rc == 0 && ftruncate(w->cur_fd, (off_t)(off + total)) != 0)
        rc = -errno;
    if (rc < 0) {
        wal_set_err(w, "cannot seal %s/%s: %s", w->dir, name, strerror(-rc));
        return rc;
    }
    /* A full fsync: the file's size may have gone down. */
    rc = timed_sync(w, w->cur_fd, false);
    if (rc < 0) {
        w->broken = true;
        wal_set_err(w, "fsync of %s/%s failed: %s", w->dir, name, strerror(-rc));
        return rc;
    }
    seg->size = off + total;
    return 0;
}

/* The part is durable: the index, hard state and checkpoint take it in. */
static int commit_part(struct wal *w, const struct part *pt, struct segment *seg)
{
    int rc;

    if (pt->fresh)
        ix_segment_start(&w->ix);
    rc = apply_records(&w->ix, w->buf + pt->from, pt->to - pt->from, seg->seq, seg->end, &w->hs,
                       &w->cp, &seg->min_truncate);
    if (rc < 0) {
        /* Durable but not indexed: only a restart can reconcile them. */
        w->broken = true;
        wal_set_err(w, "out of memory indexing %s", w->dir);
        return rc;
    }
    seg->end += pt->to - pt->from;
    if (!pt->seal) {
        seg->size = seg->end;
        return 0;
    }
    seg->sealed = true;
    close(w->cur_fd);
    w->cur_fd = -1;
    return 0;
}

static int write_part(struct wal *w, struct part *pt)
{
    struct segment *seg;
    char name[WAL_NAME_MAX];
    int rc;

    if (pt->fresh && (rc = publish_segment(w, pt)) < 0)
        return rc;
    seg = &w->segs[w->n_segs - 1];
    wal_segment_name(name, seg->seq, false);
    rc = wal_pwrite_all(w->cur_fd, w->buf + pt->from, pt->to - pt->from, seg->end);
    if (rc < 0) {
        wal_set_err(w, "cannot write %s/%s at offset %llu: %s", w->dir, name,
                    (unsigned long long)seg->end, strerror(-rc));
        return rc;
    }
    if (pt->seal) {
        rc = seal_segment(w, pt, seg);
    } else if ((rc = timed_sync(w, w->cur_fd, true)) < 0) {
        /* The page cache may already have dropped the dirty pages: what is
         * on disk is unknown, so nothing more is written. */
        w->broken = true;
        wal_set_err(w, "fdatasync of %s/%s failed: %s", w->dir, name, strerror(-rc));
    }
    return rc < 0 ? rc : commit_part(w, pt, seg);
}

int wal_sync(struct wal *w)
{
    struct part *parts = NULL;
    size_t n = 0, i = 0, done = 0;
    int rc;

    w->fsync_ns = 0;
    if (w->broken) {
        wal_set_err(w, "%s: an earlier fdatasync failed; restart to recover", w->dir);
        return -EIO;
    }
    if (w->buf_len == 0)
        return 0;
    rc = plan_sync(w, &parts, &n);
    if (rc < 0)
        return rc;
    /* Every segment this batch needs exists before any record of it is
     * written: a full disk shows up here, and nothing changes. */
    for (i = 0; i < n && rc == 0; i++)
        if (parts[i].fresh)
            rc = create_segment(w, &parts[i]);
    for (i = 0; i < n && rc == 0; i++) {
        rc = write_part(w, &parts[i]);
        if (rc == 0)
            done = parts[i].to;
    }
    for (i = 0; i < n; i++)
        discard_tmp(w, &parts[i]);
    free(parts);
    /* What is durable leaves the buffer; the rest is kept for a retry,
     * which writes it at the same place. */
    memmove(w->buf, w->buf + done, w->buf_len - done);
    w->buf_len -= done;
    if (rc < 0) {
        w->fsync_ns = 0;
        return rc;
    }
    if (w->fsync_ns == 0)
        w->fsync_ns = 1; /* it did happen */
    if (w->buf_cap > WAL_KEEP_BUFFER) {
        free(w->buf);
        w->buf = NULL;
        w->buf_cap = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Accessors and closing
 * ------------------------------------------------------------------------ */

uint64_t wal_last_fsync_ns(const struct wal *w)
{
    return w->fsync_ns;
}

int wal_pending(const struct wal *w)
{
    return w->buf_len > 0;
}

size_t wal_pending_bytes(const struct wal *w)
{
    return w->buf_len;
}

uint64_t wal_size(const struct wal *w)
{
    uint64_t total = 0;

    for (size_t i = 0; i < w->n_segs; i++)
        total += w->segs[i].size;
    return total;
}

uint64_t wal_segment_count(const struct wal *w)
{
    return w->n_segs;
}

uint64_t wal_first_index(const struct wal *w)
{
    return w->ix.first;
}

/* Crash-like on purpose: buffered records are dropped, not synced. Whoever
 * wants them durable calls wal_sync first and handles its error. */
void wal_close(struct wal *w)
{
    if (!w)
        return;
    if (w->cur_fd >= 0)
        close(w->cur_fd);
    if (w->rd_fd >= 0)
        close(w->rd_fd);
    if (w->lock_fd >= 0)
        close(w->lock_fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    ix_free(&w->ix);
    free(w->segs);
    free(w->dir);
    free(w->buf);
    free(w->win.buf);
    free(w->out);
    free(w->arena);
    free(w);
}
