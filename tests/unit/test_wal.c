/*
 * tests/unit/test_wal.c — the durable log: round trips, truncation records,
 * torn-tail recovery, refusal of mid-file corruption, group-commit semantics
 * and replay speed. Every test works in its own mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/crc32c.h"
#include "storage/wal.h"

#define HEADER_SIZE 20 /* the record header, as documented in wal.c */

/* ------------------------------------------------------------------------
 * Fixture and helpers
 * ------------------------------------------------------------------------ */

struct fixture {
    char base[64]; /* the mkdtemp directory */
    char dir[96];  /* base/data: does not exist until wal_open makes it */
    char file[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->base, sizeof f->base, "/tmp/test_wal.XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->dir, sizeof f->dir, "%s/data", f->base);
    snprintf(f->file, sizeof f->file, "%s/wal.log", f->dir);
    *state = f;
    return 0;
}

/* The log is the only file a test leaves; rmdir failing on the base would
 * mean the WAL wrote something else. */
static int teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->file);
    rmdir(f->dir);
    assert_int_equal(rmdir(f->base), 0);
    free(f);
    return 0;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    FILE *fp = fopen(path, "rb");

    assert_non_null(fp);
    assert_int_equal(fstat(fileno(fp), &st), 0);
    *len = (size_t)st.st_size;
    buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

static void write_whole(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void append_bytes(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "ab");

    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static struct wal *open_ok(const char *dir, struct wal_recovered *rec)
{
    struct wal *w = NULL;
    char err[512];
    int rc = wal_open(dir, &w, rec, err, sizeof err);

    if (rc != 0)
        fail_msg("wal_open(%s) = %d: %s", dir, rc, err);
    assert_non_null(w);
    return w;
}

static struct core_entry entry(uint64_t index, uint64_t epoch, const char *client, const char *data)
{
    return (struct core_entry){
        .index = index,
        .epoch = epoch,
        .type = CORE_ENTRY_DATA,
        .time_ms = 1000 + (int64_t)index,
        .client_id = client,
        .primary = "r1",
        .data = (const uint8_t *)data,
        .len = strlen(data),
    };
}

static void append_one(struct wal *w, uint64_t truncate_from, struct core_entry e)
{
    assert_int_equal(wal_append_entries(w, truncate_from, &e, 1), 0);
}

static void assert_entry_equal(const struct core_entry *got, const struct core_entry *want)
{
    assert_int_equal(got->index, want->index);
    assert_int_equal(got->epoch, want->epoch);
    assert_int_equal(got->type, want->type);
    assert_true(got->time_ms == want->time_ms);
    assert_string_equal(got->client_id, want->client_id ? want->client_id : "");
    assert_string_equal(got->primary, want->primary ? want->primary : "");
    assert_int_equal(got->len, want->len);
    assert_non_null(got->data);
    if (want->len)
        assert_memory_equal(got->data, want->data, want->len);
}

static void assert_data(const struct core_entry *e, const char *data)
{
    assert_int_equal(e->len, strlen(data));
    assert_memory_equal(e->data, data, e->len);
}

static void assert_hs_equal(const struct core_hard_state *got, const struct core_hard_state *want)
{
    assert_int_equal(got->epoch, want->epoch);
    assert_string_equal(got->voted_for, want->voted_for);
    assert_int_equal(got->n_bootstrap, want->n_bootstrap);
    for (unsigned i = 0; i < want->n_bootstrap; i++)
        assert_string_equal(got->bootstrap[i], want->bootstrap[i]);
}

static struct core_hard_state hard_state(uint64_t epoch, const char *vote)
{
    struct core_hard_state hs;

    memset(&hs, 0, sizeof hs);
    hs.epoch = epoch;
    snprintf(hs.voted_for, sizeof hs.voted_for, "%s", vote);
    return hs;
}

/* Writes a state record and entries 1..n, one sync each; bounds[k] is the
 * file size after record k (bounds[0] == 0), so record k spans
 * [bounds[k-1], bounds[k]). Returns the hard state written. */
static struct core_hard_state write_records(const char *dir, size_t n, uint64_t *bounds)
{
    struct wal_recovered rec;
    struct wal *w = open_ok(dir, &rec);
    struct core_hard_state hs = hard_state(3, "r2");
    char data[32];

    wal_recovered_free(&rec);
    bounds[0] = 0;
    assert_int_equal(wal_append_state(w, &hs), 0);
    assert_int_equal(wal_sync(w), 0);
    bounds[1] = wal_size(w);
    for (size_t i = 1; i <= n; i++) {
        snprintf(data, sizeof data, "payload-%zu", i);
        append_one(w, 0, entry(i, 3, "c", data));
        assert_int_equal(wal_sync(w), 0);
        bounds[i + 1] = wal_size(w);
    }
    wal_close(w);
    return hs;
}

/* ------------------------------------------------------------------------
 * CRC-32C
 * ------------------------------------------------------------------------ */

static void test_crc32c_known_values(void **state)
{
    uint8_t buf[32];

    /* The check value of the Castagnoli CRC, and RFC 3720's iSCSI vectors. */
    assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
    memset(buf, 0, sizeof buf);
    assert_int_equal(crc32c(0, buf, sizeof buf), 0x8a9136aau);
    memset(buf, 0xff, sizeof buf);
    assert_int_equal(crc32c(0, buf, sizeof buf), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, buf, sizeof buf), 0x46dd794eu);
    /* Chaining equals one pass. */
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
    assert_int_equal(crc32c(0, NULL, 0), 0);
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

static void test_empty_dir(void **state)
{
    struct fixture *f = *state;
    struct wal_recovered rec;
    struct core_hard_state zero;
    struct wal *w = open_ok(f->dir, &rec);

    memset(&zero, 0, sizeof zero);
    assert_int_equal(rec.n_entries, 0);
    assert_null(rec.entries);
    assert_hs_equal(&rec.hs, &zero);
    assert_int_equal(file_size(f->file), 0);
    assert_int_equal(wal_size(w), 0);
    assert_false(wal_pending(w));
    assert_int_equal(wal_sync(w), 0); /* nothing buffered: a no-op */
    wal_recovered_free(&rec);
    wal_close(w);

    /* Reopening the empty log is just as empty. */
    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, 0);
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_roundtrip_all_fields(void **state)
{
    struct fixture *f = *state;
    static const uint8_t binary[] = {0, 1, 0, 0xff, 0, '\n', 0x80, 0};
    struct core_hard_state hs = hard_state(UINT64_MAX - 1, "replica-b");
    struct core_entry want[4];
    struct wal_recovered rec;
    struct wal *w;

    hs.n_bootstrap = 3;
    strcpy(hs.bootstrap[0], "replica-a");
    strcpy(hs.bootstrap[1], "replica-b");
    strcpy(hs.bootstrap[2], "replica-c-with-a-rather-long-name-to-use-most-of-the-63-chars");

    want[0] = (struct core_entry){.index = 1,
                                  .epoch = 1,
                                  .type = CORE_ENTRY_NOOP,
                                  .time_ms = 0,
                                  .client_id = "",
                                  .primary = "replica-a",
                                  .data = NULL,
                                  .len = 0};
    want[1] = (struct core_entry){.index = 2,
                                  .epoch = 1,
                                  .type = CORE_ENTRY_DATA,
                                  .time_ms = 1700000000123,
                                  .client_id = "client-42",
                                  .primary = "replica-a",
                                  .data = binary,
                                  .len = sizeof binary};
    /* Epochs at their extremes, never going down (a log that does is
     * refused as corrupt). */
    want[2] = (struct core_entry){.index = 3,
                                  .epoch = 7,
                                  .type = CORE_ENTRY_CONFIG,
                                  .time_ms = -5,     /* sign must survive */
                                  .client_id = NULL, /* written as "" */
                                  .primary = "",
                                  .data = (const uint8_t *)"v a\nv b\n",
                                  .len = 8};
    want[3] = (struct core_entry){.index = 4,
                                  .epoch = UINT64_MAX,
                                  .type = CORE_ENTRY_DATA,
                                  .time_ms = INT64_MIN,
                                  .client_id = "c",
                                  .primary = "replica-b",
                                  .data = (const uint8_t *)"",
                                  .len = 0};

    w = open_ok(f->dir, &rec);
    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    assert_int_equal(wal_append_entries(w, 0, want, 2), 0);
    assert_int_equal(wal_append_entries(w, 0, want + 2, 2), 0);
    assert_true(wal_pending(w));
    assert_int_equal(wal_size(w), 0); /* buffered only */
    assert_int_equal(file_size(f->file), 0);
    assert_int_equal(wal_sync(w), 0);
    assert_false(wal_pending(w));
    assert_int_equal(wal_size(w), file_size(f->file));
    assert_true(wal_size(w) > 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_hs_equal(&rec.hs, &hs);
    assert_int_equal(rec.n_entries, 4);
    for (size_t i = 0; i < 4; i++)
        assert_entry_equal(&rec.entries[i], &want[i]);
    assert_int_equal(wal_size(w), file_size(f->file));
    wal_recovered_free(&rec);
    assert_null(rec.entries);
    assert_null(rec.storage);
    wal_close(w);
}

static void test_truncate_and_reappend(void **state)
{
    struct fixture *f = *state;
    struct core_entry e[3];
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    wal_recovered_free(&rec);
    for (uint64_t i = 1; i <= 5; i++)
        append_one(w, 0, entry(i, 1, "c", "old"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    /* A new primary overwrites 3..5 with 3..4 of its own epoch. */
    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, 5);
    wal_recovered_free(&rec);
    e[0] = entry(3, 2, "c", "new-3");
    e[1] = entry(4, 2, "c", "new-4");
    assert_int_equal(wal_append_entries(w, 3, e, 2), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, 4);
    assert_int_equal(rec.entries[1].epoch, 1);
    assert_data(&rec.entries[1], "old");
    assert_int_equal(rec.entries[2].epoch, 2);
    assert_data(&rec.entries[2], "new-3");
    assert_int_equal(rec.entries[3].index, 4);
    assert_data(&rec.entries[3], "new-4");
    wal_recovered_free(&rec);

    /* A truncation with nothing appended, then a truncation in the same
     * batch as earlier appends: both apply in order. */
    assert_int_equal(wal_append_entries(w, 2, NULL, 0), 0);
    append_one(w, 0, entry(2, 3, "c", "two"));
    append_one(w, 0, entry(3, 3, "c", "three"));
    append_one(w, 3, entry(3, 4, "c", "three-again"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, 3);
    assert_data(&rec.entries[0], "old");
    assert_data(&rec.entries[1], "two");
    assert_int_equal(rec.entries[2].epoch, 4);
    assert_data(&rec.entries[2], "three-again");
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_append_rejects_gaps(void **state)
{
    struct fixture *f = *state;
    struct core_entry e[2];
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    wal_recovered_free(&rec);
    /* Replay would refuse a log with a gap, so it must never be written;
     * and a rejected batch leaves nothing half-buffered. */
    e[0] = entry(2, 1, "c", "x");
    assert_int_equal(wal_append_entries(w, 0, e, 1), -EINVAL);
    e[0] = entry(1, 1, "c", "x");
    e[1] = entry(3, 1, "c", "y");
    assert_int_equal(wal_append_entries(w, 0, e, 2), -EINVAL);
    assert_false(wal_pending(w));
    e[1] = entry(2, 1, "c", "y");
    assert_int_equal(wal_append_entries(w, 0, e, 2), 0);
    e[0] = entry(2, 1, "c", "dup");
    assert_int_equal(wal_append_entries(w, 0, e, 1), -EINVAL);
    assert_int_equal(wal_append_entries(w, 2, e, 1), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, 2);
    assert_data(&rec.entries[1], "dup");
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_last_state_wins(void **state)
{
    struct fixture *f = *state;
    struct core_hard_state hs;
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    wal_recovered_free(&rec);
    hs = hard_state(1, "a");
    assert_int_equal(wal_append_state(w, &hs), 0);
    append_one(w, 0, entry(1, 1, "c", "x"));
    hs = hard_state(2, "");
    hs.n_bootstrap = 2;
    strcpy(hs.bootstrap[0], "a");
    strcpy(hs.bootstrap[1], "b");
    assert_int_equal(wal_append_state(w, &hs), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_hs_equal(&rec.hs, &hs);
    wal_recovered_free(&rec);
    /* A later state with fewer bootstrap ids replaces, not merges. */
    hs = hard_state(5, "b");
    assert_int_equal(wal_append_state(w, &hs), 0);
    append_one(w, 0, entry(2, 5, "c", "y"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.hs.epoch, 5);
    assert_string_equal(rec.hs.voted_for, "b");
    assert_int_equal(rec.hs.n_bootstrap, 0);
    assert_string_equal(rec.hs.bootstrap[0], "");
    assert_int_equal(rec.n_entries, 2);
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_append_state_rejects_unterminated(void **state)
{
    struct fixture *f = *state;
    struct core_hard_state hs = hard_state(1, "");
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    wal_recovered_free(&rec);
    memset(hs.voted_for, 'x', sizeof hs.voted_for);
    assert_int_equal(wal_append_state(w, &hs), -EINVAL);
    hs = hard_state(1, "");
    hs.n_bootstrap = CORE_MAX_MEMBERS + 1;
    assert_int_equal(wal_append_state(w, &hs), -EINVAL);
    assert_false(wal_pending(w));
    wal_close(w);
}

/* wal_close is crash-like: it drops what was never synced. */
static void test_close_does_not_sync(void **state)
{
    struct fixture *f = *state;
    struct core_hard_state hs = hard_state(1, "a"), later = hard_state(9, "z");
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);
    uint64_t synced;

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    append_one(w, 0, entry(1, 1, "c", "durable"));
    assert_int_equal(wal_sync(w), 0);
    synced = wal_size(w);
    assert_int_equal(wal_append_state(w, &later), 0);
    append_one(w, 0, entry(2, 9, "c", "lost"));
    assert_true(wal_pending(w));
    assert_int_equal(file_size(f->file), synced);
    wal_close(w);

    assert_int_equal(file_size(f->file), synced);
    w = open_ok(f->dir, &rec);
    assert_hs_equal(&rec.hs, &hs);
    assert_int_equal(rec.n_entries, 1);
    assert_data(&rec.entries[0], "durable");
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_second_open_is_locked_out(void **state)
{
    struct fixture *f = *state;
    struct wal_recovered rec, rec2;
    struct wal *w = open_ok(f->dir, &rec), *w2 = NULL;
    char err[256];

    assert_int_equal(wal_open(f->dir, &w2, &rec2, err, sizeof err), -EBUSY);
    assert_null(w2);
    assert_non_null(strstr(err, "wal.log"));
    wal_close(w);
    w2 = open_ok(f->dir, &rec2); /* the lock goes with the first handle */
    wal_close(w2);
    wal_recovered_free(&rec);
    wal_recovered_free(&rec2);
}

/* ------------------------------------------------------------------------
 * Recovery: torn tails
 * ------------------------------------------------------------------------ */

/* Cuts the file at every offset inside its last record (an entry, or with
 * state_last a state record) and checks recovery each time. */
static void torn_tail_every_offset(struct fixture *f, bool state_last)
{
    enum { N = 4 };
    uint64_t bounds[N + 3];
    struct core_hard_state hs = write_records(f->dir, N, bounds);
    struct core_hard_state newer = hard_state(4, "r3");
    uint64_t start, end, keep_entries;
    uint8_t *pristine;
    size_t len;

    if (state_last) {
        struct wal_recovered rec;
        struct wal *w = open_ok(f->dir, &rec);

        wal_recovered_free(&rec);
        assert_int_equal(wal_append_state(w, &newer), 0);
        assert_int_equal(wal_sync(w), 0);
        bounds[N + 2] = wal_size(w);
        wal_close(w);
        start = bounds[N + 1];
        end = bounds[N + 2];
        keep_entries = N;
    } else {
        start = bounds[N];
        end = bounds[N + 1];
        keep_entries = N - 1;
    }
    pristine = read_whole(f->file, &len);
    assert_int_equal(len, end);

    for (uint64_t off = start; off < end; off++) {
        struct wal_recovered rec;
        struct wal *w;

        write_whole(f->file, pristine, (size_t)off);
        w = open_ok(f->dir, &rec);
        assert_int_equal(rec.n_entries, keep_entries);
        assert_hs_equal(&rec.hs, &hs);
        for (size_t i = 0; i < rec.n_entries; i++)
            assert_int_equal(rec.entries[i].index, i + 1);
        assert_int_equal(file_size(f->file), start);
        assert_int_equal(wal_size(w), start);
        wal_recovered_free(&rec);

        /* The log keeps working after recovery, and survives a reopen. */
        append_one(w, 0, entry(keep_entries + 1, 4, "c2", "after-recovery"));
        assert_int_equal(wal_sync(w), 0);
        wal_close(w);
        w = open_ok(f->dir, &rec);
        assert_int_equal(rec.n_entries, keep_entries + 1);
        assert_data(&rec.entries[keep_entries], "after-recovery");
        assert_string_equal(rec.entries[keep_entries].client_id, "c2");
        assert_int_equal(wal_size(w), file_size(f->file));
        wal_recovered_free(&rec);
        wal_close(w);
    }
    free(pristine);
}

static void test_torn_tail_entry(void **state)
{
    torn_tail_every_offset(*state, false);
}

static void test_torn_tail_state(void **state)
{
    torn_tail_every_offset(*state, true);
}

static void expect_refused(struct fixture *f, const uint8_t *content, size_t len,
                           const char *offset_text, const char *reason);

static void check_recovers_to(struct fixture *f, uint64_t good_end, size_t n_entries)
{
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    assert_int_equal(rec.n_entries, n_entries);
    assert_int_equal(file_size(f->file), good_end);
    assert_int_equal(wal_size(w), good_end);
    wal_recovered_free(&rec);
    append_one(w, 0, entry(n_entries + 1, 9, "c", "next"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.n_entries, n_entries + 1);
    wal_recovered_free(&rec);
    wal_close(w);
}

/* Some filesystems extend the file before the data lands: a crash leaves
 * zeros where the last records should be. */
static void test_trailing_zeros(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[5];
    static const size_t sizes[] = {1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, 4096};
    uint8_t *pristine, zeros[4096];
    size_t len;

    write_records(f->dir, 3, bounds);
    pristine = read_whole(f->file, &len);
    memset(zeros, 0, sizeof zeros);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        write_whole(f->file, pristine, len);
        append_bytes(f->file, zeros, sizes[i]);
        check_recovers_to(f, len, 3);
    }
    free(pristine);
}

/* A complete last record whose checksum fails was torn inside a sector:
 * dropped, whether it reaches EOF or is followed by zeros only. */
static void test_damaged_last_record_is_torn(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[5];
    uint8_t *pristine, zeros[512];
    size_t len;

    write_records(f->dir, 3, bounds);
    pristine = read_whole(f->file, &len);
    memset(zeros, 0, sizeof zeros);

    /* payload byte flipped, record reaching EOF */
    pristine[bounds[3] + HEADER_SIZE + 2] ^= 0x40;
    write_whole(f->file, pristine, len);
    check_recovers_to(f, bounds[3], 2);

    /* same, followed by zeros */
    write_whole(f->file, pristine, len);
    append_bytes(f->file, zeros, sizeof zeros);
    check_recovers_to(f, bounds[3], 2);
    pristine[bounds[3] + HEADER_SIZE + 2] ^= 0x40;

    /* A damaged header hides where its record ends, so only zeros may
     * follow it: a header half written (length flipped) and a payload that
     * never landed. */
    pristine[bounds[3] + 8] ^= 0x01;
    memset(pristine + bounds[3] + HEADER_SIZE, 0, (size_t)(bounds[4] - bounds[3]) - HEADER_SIZE);
    write_whole(f->file, pristine, len);
    check_recovers_to(f, bounds[3], 2);
    free(pristine);
}

/* The conservative side of that rule: a damaged header followed by non-zero
 * bytes may be hiding complete records, so even at the tail it is refused. */
static void test_damaged_header_before_data_refused(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[5];
    uint8_t *content;
    size_t len;
    char offset_text[64];

    write_records(f->dir, 3, bounds);
    content = read_whole(f->file, &len);
    content[bounds[3] + 8] ^= 0x01;
    snprintf(offset_text, sizeof offset_text, "offset %llu ", (unsigned long long)bounds[3]);
    expect_refused(f, content, len, offset_text, "header checksum mismatch");
    free(content);
}

/* A header whose own checksum is right but whose length is absurd must not
 * be trusted (nor allocated for). */
static void test_oversized_length_not_trusted(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[4];
    uint8_t h[HEADER_SIZE], *pristine;
    const uint32_t len_field = 0xfffffff0u;
    size_t len;
    char err[512];
    struct wal_recovered rec;
    struct wal *w = NULL;

    write_records(f->dir, 2, bounds);
    pristine = read_whole(f->file, &len);
    memset(h, 0, sizeof h);
    memcpy(h, "RWAL", 4);
    h[4] = 2; /* ENTRY */
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(len_field >> (8 * i));
    uint32_t hcrc = crc32c(0, h, 16);
    for (int i = 0; i < 4; i++)
        h[16 + i] = (uint8_t)(hcrc >> (8 * i));

    /* at the tail: a torn tail */
    append_bytes(f->file, h, sizeof h);
    check_recovers_to(f, len, 2);

    /* with a valid record after it: corruption */
    write_whole(f->file, pristine, len);
    append_bytes(f->file, h, sizeof h);
    append_bytes(f->file, pristine + bounds[1], (size_t)(bounds[2] - bounds[1]));
    assert_int_equal(wal_open(f->dir, &w, &rec, err, sizeof err), -EILSEQ);
    assert_null(w);
    assert_non_null(strstr(err, "over the limit"));
    free(pristine);
}

/* ------------------------------------------------------------------------
 * Recovery: corruption is refused, and the file left alone
 * ------------------------------------------------------------------------ */

static void expect_refused(struct fixture *f, const uint8_t *content, size_t len,
                           const char *offset_text, const char *reason)
{
    struct wal_recovered rec;
    struct wal *w = (struct wal *)0x1; /* wal_open must reset it to NULL */
    char err[512];
    uint8_t *after;
    size_t after_len;

    write_whole(f->file, content, len);
    assert_int_equal(wal_open(f->dir, &w, &rec, err, sizeof err), -EILSEQ);
    assert_null(w);
    assert_int_equal(rec.n_entries, 0);
    assert_null(rec.storage);
    assert_non_null(strstr(err, f->file));
    assert_non_null(strstr(err, offset_text));
    assert_non_null(strstr(err, reason));
    assert_non_null(strstr(err, "refusing to start"));

    after = read_whole(f->file, &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, content, len);
    free(after);
    wal_recovered_free(&rec); /* harmless on the zeroed struct */
}

static void test_corrupted_middle(void **state)
{
    struct fixture *f = *state;
    enum { N = 5 };
    uint64_t bounds[N + 2];
    uint8_t *content;
    size_t len;
    char offset_text[64];

    write_records(f->dir, N, bounds);
    content = read_whole(f->file, &len);
    /* Record 2 is entry 1; valid records follow it. */
    snprintf(offset_text, sizeof offset_text, "offset %llu ", (unsigned long long)bounds[1]);

    content[bounds[1] + HEADER_SIZE + 5] ^= 0x10; /* inside its payload */
    expect_refused(f, content, len, offset_text, "payload checksum mismatch");
    content[bounds[1] + HEADER_SIZE + 5] ^= 0x10;

    content[bounds[1] + 8] ^= 0x04; /* inside its length field */
    expect_refused(f, content, len, offset_text, "header checksum mismatch");
    content[bounds[1] + 8] ^= 0x04;

    content[bounds[1] + 1] ^= 0xff; /* its magic */
    expect_refused(f, content, len, offset_text, "bad magic");
    content[bounds[1] + 1] ^= 0xff;

    /* The state record at offset 0, damaged, with everything after it. */
    content[HEADER_SIZE] ^= 0x01;
    expect_refused(f, content, len, "offset 0 ", "payload checksum mismatch");
    content[HEADER_SIZE] ^= 0x01;

    /* Untouched again, it opens. */
    write_whole(f->file, content, len);
    check_recovers_to(f, len, N);
    free(content);
}

/* A well-formed record out of sequence is no crash artefact either. */
static void test_gap_in_indices_refused(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[7];
    uint8_t *content, *spliced;
    size_t len, n;
    char offset_text[64];

    write_records(f->dir, 5, bounds);
    content = read_whole(f->file, &len);
    /* Keep the state and entries 1..2, then append entry 4's record. */
    n = (size_t)bounds[3];
    spliced = malloc(len);
    assert_non_null(spliced);
    memcpy(spliced, content, n);
    memcpy(spliced + n, content + bounds[4], (size_t)(bounds[5] - bounds[4]));
    n += (size_t)(bounds[5] - bounds[4]);
    snprintf(offset_text, sizeof offset_text, "offset %llu ", (unsigned long long)bounds[3]);
    expect_refused(f, spliced, n, offset_text, "entry index 4 where 3 was expected");
    free(spliced);
    free(content);
}

/* ------------------------------------------------------------------------
 * Scale
 * ------------------------------------------------------------------------ */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_many_small_entries(void **state)
{
    struct fixture *f = *state;
    enum { N = 100000, BATCH = 1000 };
    struct core_entry *e = calloc(BATCH, sizeof *e);
    uint8_t(*data)[16] = calloc(BATCH, sizeof *data);
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);
    struct timespec t0;
    double append_s, replay_s;

    assert_non_null(e);
    assert_non_null(data);
    wal_recovered_free(&rec);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t base = 0; base < N; base += BATCH) {
        for (size_t i = 0; i < BATCH; i++) {
            uint64_t index = base + i + 1;

            memcpy(data[i], &index, sizeof index);
            memset(data[i] + 8, 0xab, 8);
            e[i] = (struct core_entry){.index = index,
                                       .epoch = 1,
                                       .type = CORE_ENTRY_DATA,
                                       .time_ms = (int64_t)index,
                                       .client_id = "client",
                                       .primary = "r1",
                                       .data = data[i],
                                       .len = 16};
        }
        assert_int_equal(wal_append_entries(w, 0, e, BATCH), 0);
    }
    assert_int_equal(wal_sync(w), 0);
    append_s = seconds_since(&t0);
    wal_close(w);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    w = open_ok(f->dir, &rec);
    replay_s = seconds_since(&t0);
    print_message("    100000 entries: append+sync %.3f s, replay %.3f s, file %llu bytes\n",
                  append_s, replay_s, (unsigned long long)wal_size(w));
    assert_int_equal(rec.n_entries, N);
    for (size_t i = 0; i < N; i += 997) {
        uint64_t index;

        assert_int_equal(rec.entries[i].index, i + 1);
        assert_int_equal(rec.entries[i].len, 16);
        memcpy(&index, rec.entries[i].data, sizeof index);
        assert_int_equal(index, i + 1);
        assert_string_equal(rec.entries[i].client_id, "client");
    }
    assert_int_equal(rec.entries[N - 1].index, N);
    /* Generous for sanitizer builds; an O(n^2) replay would take minutes. */
    assert_true(replay_s < 2.0);
    wal_recovered_free(&rec);
    wal_close(w);
    free(e);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_values),
        cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_all_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_and_reappend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_state_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_state_rejects_unterminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_does_not_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_is_locked_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_last_record_is_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_header_before_data_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_length_not_trusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_in_indices_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_small_entries, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
