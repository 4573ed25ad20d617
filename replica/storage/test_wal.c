/*
 * tests/unit/test_wal.c — the durable log: round trips, truncation records,
 * torn-tail recovery, refusal of corruption, group-commit semantics, segment
 * rollover and sealing, recovery after a crash at every segment boundary,
 * reads by index, checkpoints, retention and the snapshot, migration of the
 * legacy wal.log, a full disk, and replay speed. Every test works in its own
 * mkdtemp directory.
 */
#define _GNU_SOURCE /* unshare */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/crc32c.h"
#include "storage/wal.h"

#define HEADER_SIZE  20 /* the record header, as documented in wal.c */
#define TRAILER_SIZE 24 /* the trailer of a sealed segment */
#define SEG1         "wal-0000000000000001.seg"

/* ------------------------------------------------------------------------
 * Fixture and helpers
 * ------------------------------------------------------------------------ */

struct fixture {
    char base[64];  /* the mkdtemp directory */
    char dir[96];   /* base/data: does not exist until wal_open makes it */
    char file[160]; /* the first segment */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->base, sizeof f->base, "/tmp/test_wal.XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->dir, sizeof f->dir, "%s/data", f->base);
    snprintf(f->file, sizeof f->file, "%s/" SEG1, f->dir);
    *state = f;
    return 0;
}

static bool is_segment_name(const char *name)
{
    return strlen(name) == 24 && strncmp(name, "wal-", 4) == 0 && strcmp(name + 20, ".seg") == 0;
}

/* The WAL's own files are all a test may leave: rmdir failing on the base
 * would mean the WAL wrote something else (a .tmp left behind, say). */
static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *de;
    char path[512];

    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, "wal.lock") != 0 && strcmp(de->d_name, "snapshot") != 0 &&
            !is_segment_name(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    assert_int_equal(rmdir(f->base), 0);
    free(f);
    return 0;
}

static void seg_path(const struct fixture *f, uint64_t seq, char *out, size_t len)
{
    snprintf(out, len, "%s/wal-%016llx.seg", f->dir, (unsigned long long)seq);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    FILE *fp = fopen(path, "rb");

    if (!fp)
        fail_msg("cannot open %s: %s", path, strerror(errno));
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

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Length of the record at off of a file's bytes, header included. */
static size_t record_len(const uint8_t *file, size_t off)
{
    return HEADER_SIZE + get32(file + off + 8);
}

/* Offset of the ENTRY record of index in a segment's bytes (the last one,
 * when truncations wrote it again). */
static size_t entry_offset(const uint8_t *file, size_t len, uint64_t index)
{
    size_t found = SIZE_MAX;

    for (size_t off = 0; off + HEADER_SIZE <= len && file[off + 4] != 6;
         off += record_len(file, off))
        if (file[off + 4] == 2 && get64(file + off + HEADER_SIZE) == index)
            found = off;
    if (found == SIZE_MAX)
        fail_msg("entry %llu not found", (unsigned long long)index);
    return found;
}

static struct wal *open_with(const char *dir, uint64_t segment_bytes, struct wal_recovered *rec)
{
    struct wal_options o = {.segment_bytes = segment_bytes};
    struct wal *w = NULL;
    char err[512];
    int rc = wal_open(dir, &o, &w, rec, err, sizeof err);

    if (rc != 0)
        fail_msg("wal_open(%s) = %d: %s", dir, rc, err);
    assert_non_null(w);
    return w;
}

static struct wal *open_ok(const char *dir, struct wal_recovered *rec)
{
    return open_with(dir, 0, rec);
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

/* Entry index, read back through wal_read. Lent until the next read. */
static const struct core_entry *read_one(struct wal *w, uint64_t index)
{
    const struct core_entry *e;
    size_t n;
    int rc = wal_read(w, index, index, SIZE_MAX, false, &e, &n);

    if (rc != 0)
        fail_msg("wal_read(%llu) = %d: %s", (unsigned long long)index, rc, wal_last_error(w));
    assert_int_equal(n, 1);
    assert_int_equal(e->index, index);
    return e;
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

/* Writes a state record and entries 1..n, one sync each, into one segment;
 * bounds[k] is the file size after record k and bounds[0] where the state
 * record starts (after the segment's header), so record k spans
 * [bounds[k-1], bounds[k]). Returns the hard state written. */
static struct core_hard_state write_records(const char *dir, size_t n, uint64_t *bounds)
{
    struct wal_recovered rec;
    struct wal *w = open_ok(dir, &rec);
    struct core_hard_state hs = hard_state(3, "r2");
    char data[32];
    size_t state_len = 8 + 4 + 2 + 4;

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    assert_int_equal(wal_sync(w), 0);
    bounds[1] = wal_size(w);
    bounds[0] = bounds[1] - HEADER_SIZE - state_len;
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
 * A model of the log, to compare what comes back with what went in
 * ------------------------------------------------------------------------ */

#define MODEL_MAX 3000

struct model {
    uint64_t last;
    struct core_entry e[MODEL_MAX + 1]; /* e[i] is entry i */
    char data[MODEL_MAX + 1][160];
    char client[MODEL_MAX + 1][16];
};

static struct model *model_new(void)
{
    struct model *m = calloc(1, sizeof *m);

    assert_non_null(m);
    return m;
}

/* Sets entry index of the model: data of a size that varies with the
 * index and the epoch, now and then a CONFIG entry. */
static void model_set(struct model *m, uint64_t index, uint64_t epoch)
{
    size_t len = 8 + (index * 7 + epoch * 3) % 120;

    assert_true(index <= MODEL_MAX);
    memset(m->data[index], 'a' + (int)(index % 26), len);
    snprintf(m->data[index], len, "%llu/%llu:", (unsigned long long)index,
             (unsigned long long)epoch);
    m->data[index][strlen(m->data[index])] = '.';
    snprintf(m->client[index], sizeof m->client[index], "c%llu", (unsigned long long)index % 7);
    m->e[index] = (struct core_entry){
        .index = index,
        .epoch = epoch,
        .type = index % 37 == 5 ? CORE_ENTRY_CONFIG : CORE_ENTRY_DATA,
        .time_ms = (int64_t)(index * 1000 + epoch),
        .client_id = index % 37 == 5 ? "" : m->client[index],
        .primary = epoch % 2 ? "r1" : "replica-2",
        .data = (const uint8_t *)m->data[index],
        .len = len,
    };
}

/* Buffers entries first..first+n-1 of epoch, after dropping from
 * truncate_from (0: none). */
static void model_append(struct wal *w, struct model *m, uint64_t truncate_from, uint64_t first,
                         size_t n, uint64_t epoch)
{
    for (size_t i = 0; i < n; i++)
        model_set(m, first + i, epoch);
    assert_int_equal(wal_append_entries(w, truncate_from, &m->e[first], n), 0);
    m->last = first + n - 1;
}

/* Reads first..last back in slices of every size max_bytes allows, and
 * checks each entry, with and without its data. */
static void check_log(struct wal *w, const struct model *m, uint64_t first)
{
    static const size_t budgets[] = {SIZE_MAX, 1, 500, 4000};
    const struct core_entry *e;
    size_t n;

    assert_int_equal(wal_first_index(w), first);
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        for (uint64_t lo = first; lo <= m->last; lo += n) {
            int rc = wal_read(w, lo, UINT64_MAX, budgets[b], false, &e, &n);
            size_t bytes = 0;

            if (rc != 0)
                fail_msg("wal_read(%llu..) = %d: %s", (unsigned long long)lo, rc,
                         wal_last_error(w));
            assert_true(n >= 1);
            for (size_t i = 0; i < n; i++) {
                assert_entry_equal(&e[i], &m->e[lo + i]);
                bytes += e[i].len + CORE_ENTRY_OVERHEAD;
            }
            assert_true(n == 1 || bytes <= budgets[b]);
            assert_true(lo + n - 1 <= m->last);
        }
    }
    for (uint64_t lo = first; lo <= m->last; lo += n) {
        assert_int_equal(wal_read(w, lo, m->last, 4096, true, &e, &n), 0);
        for (size_t i = 0; i < n; i++) {
            const struct core_entry *want = &m->e[lo + i];

            assert_int_equal(e[i].index, want->index);
            assert_int_equal(e[i].epoch, want->epoch);
            assert_int_equal(e[i].type, want->type);
            assert_int_equal(e[i].len, want->len);
            assert_null(e[i].data);
            assert_string_equal(e[i].client_id, want->client_id);
            assert_string_equal(e[i].primary, want->primary);
        }
    }
    assert_int_equal(wal_read(w, m->last + 1, m->last + 1, SIZE_MAX, false, &e, &n), -ERANGE);
}

/* The recovered summary matches the model's entries first..last. */
static void check_recovered(const struct wal_recovered *rec, const struct model *m, uint64_t first)
{
    size_t r = 0, c = 0;

    assert_int_equal(rec->core.last_index, m->last);
    for (uint64_t i = first; i <= m->last; i++) {
        if (i == first || m->e[i].epoch != m->e[i - 1].epoch) {
            assert_true(r < rec->core.n_runs);
            assert_int_equal(rec->core.runs[r].first_index, i);
            assert_int_equal(rec->core.runs[r].epoch, m->e[i].epoch);
            r++;
        }
        if (m->e[i].type == CORE_ENTRY_CONFIG) {
            assert_true(c < rec->core.n_config);
            assert_int_equal(rec->core.config_indexes[c], i);
            c++;
        }
    }
    assert_int_equal(rec->core.n_runs, r);
    assert_int_equal(rec->core.n_config, c);
}

/* Reopens and checks both the summary and every entry. */
static struct wal *reopen_check(struct wal *w, const char *dir, uint64_t seg_bytes,
                                const struct model *m, uint64_t first)
{
    struct wal_recovered rec;

    wal_close(w);
    w = open_with(dir, seg_bytes, &rec);
    check_recovered(&rec, m, first);
    wal_recovered_free(&rec);
    check_log(w, m, first);
    return w;
}

static uint64_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += is_segment_name(de->d_name);
    closedir(d);
    return n;
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
    assert_int_equal(crc32c_portable(0, "123456789", 9), 0xe3069283u);
}

/* The instruction path and the table agree at every length and alignment
 * (the instruction takes 8 bytes a step, the rest one by one). */
static void test_crc32c_paths_agree(void **state)
{
    uint8_t buf[300];

    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; off + len <= sizeof buf; len += 1 + len / 8)
            assert_int_equal(crc32c(0x1234u, buf + off, len),
                             crc32c_portable(0x1234u, buf + off, len));
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
    const struct core_entry *e;
    size_t n;

    memset(&zero, 0, sizeof zero);
    assert_int_equal(rec.core.last_index, 0);
    assert_int_equal(rec.core.n_runs, 0);
    assert_null(rec.core.runs);
    assert_int_equal(rec.core.n_config, 0);
    assert_int_equal(rec.core.checkpoint.commit, 0);
    assert_int_equal(rec.snapshot_index, 0);
    assert_null(rec.snapshot_data);
    assert_hs_equal(&rec.core.hs, &zero);
    /* No segment until there is something to write. */
    assert_false(exists(f->file));
    assert_int_equal(wal_size(w), 0);
    assert_int_equal(wal_segment_count(w), 0);
    assert_int_equal(wal_first_index(w), 1);
    assert_false(wal_pending(w));
    assert_int_equal(wal_sync(w), 0); /* nothing buffered: a no-op */
    assert_int_equal(wal_last_fsync_ns(w), 0);
    assert_int_equal(wal_read(w, 1, 1, SIZE_MAX, false, &e, &n), -ERANGE);
    assert_int_equal(wal_read(w, 0, 0, SIZE_MAX, false, &e, &n), -ERANGE);
    wal_recovered_free(&rec);
    wal_close(w);

    /* Reopening the empty log is just as empty. */
    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.core.last_index, 0);
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_bad_options(void **state)
{
    struct fixture *f = *state;
    struct wal_options o = {.segment_bytes = 100};
    struct wal_recovered rec;
    struct wal *w = (struct wal *)0x1;
    char err[256];

    assert_int_equal(wal_open(f->dir, &o, &w, &rec, err, sizeof err), -EINVAL);
    assert_null(w);
    assert_non_null(strstr(err, "segment size"));
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
    assert_true(wal_pending_bytes(w) > 0);
    assert_int_equal(wal_size(w), 0); /* buffered only */
    assert_false(exists(f->file));
    assert_int_equal(wal_sync(w), 0);
    assert_true(wal_last_fsync_ns(w) > 0);
    assert_false(wal_pending(w));
    assert_int_equal(wal_pending_bytes(w), 0);
    assert_int_equal(wal_size(w), file_size(f->file));
    assert_true(wal_size(w) > 0);
    assert_int_equal(wal_segment_count(w), 1);
    for (size_t i = 0; i < 4; i++)
        assert_entry_equal(read_one(w, i + 1), &want[i]);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_hs_equal(&rec.core.hs, &hs);
    assert_int_equal(rec.core.last_index, 4);
    assert_int_equal(rec.core.n_runs, 3);
    assert_int_equal(rec.core.runs[0].first_index, 1);
    assert_int_equal(rec.core.runs[0].epoch, 1);
    assert_int_equal(rec.core.runs[1].first_index, 3);
    assert_int_equal(rec.core.runs[1].epoch, 7);
    assert_int_equal(rec.core.runs[2].first_index, 4);
    assert_true(rec.core.runs[2].epoch == UINT64_MAX);
    assert_int_equal(rec.core.n_config, 1);
    assert_int_equal(rec.core.config_indexes[0], 3);
    for (size_t i = 0; i < 4; i++)
        assert_entry_equal(read_one(w, i + 1), &want[i]);
    assert_int_equal(wal_size(w), file_size(f->file));
    wal_recovered_free(&rec);
    assert_null(rec.core.runs);
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
    assert_int_equal(rec.core.last_index, 5);
    wal_recovered_free(&rec);
    e[0] = entry(3, 2, "c", "new-3");
    e[1] = entry(4, 2, "c", "new-4");
    assert_int_equal(wal_append_entries(w, 3, e, 2), 0);
    assert_int_equal(wal_sync(w), 0);
    assert_data(read_one(w, 3), "new-3");
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.core.last_index, 4);
    assert_int_equal(rec.core.n_runs, 2);
    assert_int_equal(rec.core.runs[1].first_index, 3);
    assert_int_equal(read_one(w, 2)->epoch, 1);
    assert_data(read_one(w, 2), "old");
    assert_int_equal(read_one(w, 3)->epoch, 2);
    assert_data(read_one(w, 3), "new-3");
    assert_data(read_one(w, 4), "new-4");
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
    assert_int_equal(rec.core.last_index, 3);
    assert_data(read_one(w, 1), "old");
    assert_data(read_one(w, 2), "two");
    assert_int_equal(read_one(w, 3)->epoch, 4);
    assert_data(read_one(w, 3), "three-again");
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
    /* Nor an index past the counters' limit (bounds.h), which replay would
     * refuse as the base of the next segment. */
    e[1] = entry(LIMIT_COUNTER_MAX, 1, "c", "far");
    assert_int_equal(wal_append_entries(w, 0, &e[1], 1), -EINVAL);
    assert_int_equal(wal_append_entries(w, 2, e, 1), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.core.last_index, 2);
    assert_data(read_one(w, 2), "dup");
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
    assert_hs_equal(&rec.core.hs, &hs);
    wal_recovered_free(&rec);
    /* A later state with fewer bootstrap ids replaces, not merges. */
    hs = hard_state(5, "b");
    assert_int_equal(wal_append_state(w, &hs), 0);
    append_one(w, 0, entry(2, 5, "c", "y"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);

    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.core.hs.epoch, 5);
    assert_string_equal(rec.core.hs.voted_for, "b");
    assert_int_equal(rec.core.hs.n_bootstrap, 0);
    assert_string_equal(rec.core.hs.bootstrap[0], "");
    assert_int_equal(rec.core.last_index, 2);
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
    /* Nor ids replay would refuse (validate_id). */
    hs = hard_state(1, "r 1");
    assert_int_equal(wal_append_state(w, &hs), -EINVAL);
    hs = hard_state(1, "");
    hs.n_bootstrap = 1;
    strcpy(hs.bootstrap[0], "r*");
    assert_int_equal(wal_append_state(w, &hs), -EINVAL);
    hs.bootstrap[0][0] = '\0';
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
    /* Only what is durable can be read. */
    {
        const struct core_entry *e;
        size_t n;

        assert_int_equal(wal_read(w, 2, 2, SIZE_MAX, false, &e, &n), -ERANGE);
        assert_non_null(strstr(wal_last_error(w), "outside the log"));
    }
    wal_close(w);

    assert_int_equal(file_size(f->file), synced);
    w = open_ok(f->dir, &rec);
    assert_hs_equal(&rec.core.hs, &hs);
    assert_int_equal(rec.core.last_index, 1);
    assert_data(read_one(w, 1), "durable");
    wal_recovered_free(&rec);
    wal_close(w);
}

static void test_second_open_is_locked_out(void **state)
{
    struct fixture *f = *state;
    struct wal_recovered rec, rec2;
    struct wal *w = open_ok(f->dir, &rec), *w2 = NULL;
    char err[512];

    assert_int_equal(wal_open(f->dir, NULL, &w2, &rec2, err, sizeof err), -EBUSY);
    assert_null(w2);
    assert_non_null(strstr(err, f->dir));
    assert_non_null(strstr(err, "another replica"));
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
        assert_int_equal(rec.core.last_index, keep_entries);
        assert_hs_equal(&rec.core.hs, &hs);
        for (uint64_t i = 1; i <= keep_entries; i++)
            read_one(w, i);
        assert_int_equal(file_size(f->file), start);
        assert_int_equal(wal_size(w), start);
        wal_recovered_free(&rec);

        /* The log keeps working after recovery, and survives a reopen. */
        append_one(w, 0, entry(keep_entries + 1, 4, "c2", "after-recovery"));
        assert_int_equal(wal_sync(w), 0);
        wal_close(w);
        w = open_ok(f->dir, &rec);
        assert_int_equal(rec.core.last_index, keep_entries + 1);
        assert_data(read_one(w, keep_entries + 1), "after-recovery");
        assert_string_equal(read_one(w, keep_entries + 1)->client_id, "c2");
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

static void expect_refused(struct fixture *f, const char *path, const uint8_t *content, size_t len,
                           const char *offset_text, const char *reason);

static void check_recovers_to(struct fixture *f, uint64_t good_end, uint64_t n_entries)
{
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);

    assert_int_equal(rec.core.last_index, n_entries);
    assert_int_equal(file_size(f->file), good_end);
    assert_int_equal(wal_size(w), good_end);
    wal_recovered_free(&rec);
    append_one(w, 0, entry(n_entries + 1, 9, "c", "next"));
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    w = open_ok(f->dir, &rec);
    assert_int_equal(rec.core.last_index, n_entries + 1);
    assert_data(read_one(w, n_entries + 1), "next");
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
    expect_refused(f, f->file, content, len, offset_text, "header checksum mismatch");
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
    assert_int_equal(wal_open(f->dir, NULL, &w, &rec, err, sizeof err), -EILSEQ);
    assert_null(w);
    assert_non_null(strstr(err, "over the limit"));
    free(pristine);
}

/* ------------------------------------------------------------------------
 * Recovery: corruption is refused, and the file left alone
 * ------------------------------------------------------------------------ */

static void expect_refused(struct fixture *f, const char *path, const uint8_t *content, size_t len,
                           const char *offset_text, const char *reason)
{
    struct wal_recovered rec;
    struct wal *w = (struct wal *)0x1; /* wal_open must reset it to NULL */
    char err[512];
    uint8_t *after;
    size_t after_len;

    write_whole(path, content, len);
    assert_int_equal(wal_open(f->dir, NULL, &w, &rec, err, sizeof err), -EILSEQ);
    assert_null(w);
    assert_int_equal(rec.core.last_index, 0);
    assert_null(rec.storage);
    if (!strstr(err, path) || !strstr(err, offset_text) || !strstr(err, reason) ||
        !strstr(err, "refusing to start"))
        fail_msg("unexpected refusal: %s (wanted %s, %s, %s)", err, path, offset_text, reason);

    after = read_whole(path, &after_len);
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
    expect_refused(f, f->file, content, len, offset_text, "payload checksum mismatch");
    content[bounds[1] + HEADER_SIZE + 5] ^= 0x10;

    content[bounds[1] + 8] ^= 0x04; /* inside its length field */
    expect_refused(f, f->file, content, len, offset_text, "header checksum mismatch");
    content[bounds[1] + 8] ^= 0x04;

    content[bounds[1] + 1] ^= 0xff; /* its magic */
    expect_refused(f, f->file, content, len, offset_text, "bad magic");
    content[bounds[1] + 1] ^= 0xff;

    /* The state record after the segment's header, damaged, with
     * everything after it. */
    snprintf(offset_text, sizeof offset_text, "offset %llu ", (unsigned long long)bounds[0]);
    content[bounds[0] + HEADER_SIZE] ^= 0x01;
    expect_refused(f, f->file, content, len, offset_text, "payload checksum mismatch");
    content[bounds[0] + HEADER_SIZE] ^= 0x01;

    /* The segment's header itself: never torn, since a segment only gets
     * its name once its header is synced. */
    content[HEADER_SIZE + 2] ^= 0x01;
    expect_refused(f, f->file, content, len, "offset 0 ", "payload checksum mismatch");
    content[HEADER_SIZE + 2] ^= 0x01;

    /* Untouched again, it opens. */
    write_whole(f->file, content, len);
    check_recovers_to(f, len, N);
    free(content);
}

/* Reserved header bytes are zero; set ones are refused, not skipped. */
static void test_reserved_bytes_refused(void **state)
{
    struct fixture *f = *state;
    uint64_t bounds[5];
    uint8_t *content;
    size_t len;
    char offset_text[64];
    uint32_t hcrc;

    write_records(f->dir, 3, bounds);
    content = read_whole(f->file, &len);
    content[bounds[2] + 6] = 1;
    hcrc = crc32c(0, content + bounds[2], 16);
    for (int i = 0; i < 4; i++)
        content[bounds[2] + 16 + i] = (uint8_t)(hcrc >> (8 * i));
    snprintf(offset_text, sizeof offset_text, "offset %llu ", (unsigned long long)bounds[2]);
    expect_refused(f, f->file, content, len, offset_text, "reserved header bytes set");
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
    expect_refused(f, f->file, spliced, n, offset_text, "entry index 4 where 3 was expected");
    free(spliced);
    free(content);
}

/* ------------------------------------------------------------------------
 * Segments
 * ------------------------------------------------------------------------ */

#define SMALL 4096 /* tiny segments: a few dozen entries each */

/* Where a sealed segment's footer starts, and the log's last index it
 * records (wal.c: FOOTER payload, u64 last_index at byte 28). */
static uint64_t footer_offset(const uint8_t *file, size_t len)
{
    assert_true(len >= TRAILER_SIZE);
    assert_memory_equal(file + len - TRAILER_SIZE, "RWTL", 4);
    return get64(file + len - TRAILER_SIZE + 8);
}

static uint64_t footer_last_index(const uint8_t *file, size_t len)
{
    return get64(file + footer_offset(file, len) + HEADER_SIZE + 28);
}

/* Entries 1..n in batches of 1..7, one sync each, epochs going up now and
 * then; a checkpoint every so often. */
static void fill(struct wal *w, struct model *m, uint64_t n)
{
    uint64_t epoch = m->last ? m->e[m->last].epoch : 1;

    while (m->last < n) {
        size_t batch = 1 + (size_t)(m->last * 5 % 7);

        if (batch > n - m->last)
            batch = (size_t)(n - m->last);
        if (m->last % 90 > 80)
            epoch++;
        model_append(w, m, 0, m->last + 1, batch, epoch);
        if (m->last % 50 < 7) {
            struct core_checkpoint cp = {m->last / 2, m->last / 3, m->last / 5};

            assert_int_equal(wal_append_checkpoint(w, &cp), 0);
        }
        assert_int_equal(wal_sync(w), 0);
    }
}

/* Bytes in all segment files. */
static uint64_t dir_bytes(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *de;
    char path[512];
    uint64_t total = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!is_segment_name(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
        total += file_size(path);
    }
    closedir(d);
    return total;
}

static void test_segment_rollover(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    struct core_hard_state hs = hard_state(1, "r1");
    static char big[6000];
    char path[256];
    uint64_t n_segs;

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    fill(w, m, 150);
    assert_true(wal_segment_count(w) > 3);
    /* One record bigger than a segment gets one of its own. */
    memset(big, 'B', sizeof big);
    model_set(m, 151, m->e[150].epoch);
    m->e[151].data = (const uint8_t *)big;
    m->e[151].len = sizeof big;
    assert_int_equal(wal_append_entries(w, 0, &m->e[151], 1), 0);
    m->last = 151;
    assert_int_equal(wal_sync(w), 0);
    fill(w, m, 200);
    /* One batch spanning several segments, in one sync. */
    model_append(w, m, 0, 201, 150, m->e[200].epoch + 1);
    assert_int_equal(wal_sync(w), 0);
    n_segs = wal_segment_count(w);
    assert_int_equal(count_segments(f->dir), n_segs);
    check_log(w, m, 1);

    /* Every segment but the last is sealed and within its size, except
     * the one holding the big record. */
    for (uint64_t seq = 1; seq < n_segs; seq++) {
        size_t len;
        uint8_t *file;

        seg_path(f, seq, path, sizeof path);
        file = read_whole(path, &len);
        footer_offset(file, len);
        if (len > SMALL)
            assert_non_null(memmem(file, len, big, 1000));
        free(file);
    }
    assert_int_equal(wal_size(w), dir_bytes(f));
    w = reopen_check(w, f->dir, SMALL, m, 1);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_hs_equal(&rec.core.hs, &hs);
    wal_recovered_free(&rec);
    wal_close(w);
    free(m);
}

/* The segment files of a log, kept to be put back between scenarios. */
struct saved {
    uint64_t n;
    uint8_t *bytes[64];
    size_t len[64];
};

static void save_segments(const struct fixture *f, struct saved *s, uint64_t n)
{
    char path[256];

    assert_true(n < 64);
    s->n = n;
    for (uint64_t seq = 1; seq <= n; seq++) {
        seg_path(f, seq, path, sizeof path);
        s->bytes[seq] = read_whole(path, &s->len[seq]);
    }
}

/* Puts back segments 1..keep, the last of them cut to `cut` bytes. */
static void restore_segments(const struct fixture *f, const struct saved *s, uint64_t keep,
                             size_t cut)
{
    char path[256];

    for (uint64_t seq = 1; seq <= s->n; seq++) {
        seg_path(f, seq, path, sizeof path);
        if (seq < keep)
            write_whole(path, s->bytes[seq], s->len[seq]);
        else if (seq == keep)
            write_whole(path, s->bytes[seq], cut);
        else
            unlink(path);
    }
}

static void free_saved(struct saved *s)
{
    for (uint64_t seq = 1; seq <= s->n; seq++)
        free(s->bytes[seq]);
}

/* Opens what a crash left, checks the log is entries 1..last of the model,
 * appends one entry and checks it survives a reopen. */
static void check_after_crash(struct fixture *f, struct model *m, uint64_t last)
{
    struct model *cut = model_new();
    struct wal_recovered rec;
    struct wal *w;

    memcpy(cut, m, sizeof *m);
    cut->last = last;
    w = open_with(f->dir, SMALL, &rec);
    check_recovered(&rec, cut, 1);
    wal_recovered_free(&rec);
    check_log(w, cut, 1);
    model_append(w, cut, 0, last + 1, 1, cut->e[last].epoch + 1);
    assert_int_equal(wal_sync(w), 0);
    w = reopen_check(w, f->dir, SMALL, cut, 1);
    wal_close(w);
    free(cut);
}

/* A crash can stop a rollover at any step: while the footer is written
 * (torn), before the trailer is complete, after the seal but before the
 * next segment got its name (its .tmp left over), or right after it did
 * (the new segment holds its header only). Each is tried at every segment
 * boundary of a log, and also a log whose sealed segments all lost their
 * trailers or footers (read record by record instead). */
static void test_crash_at_every_boundary(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    struct core_hard_state hs = hard_state(1, "r1");
    struct saved s;
    char path[256], tmp[300];
    uint64_t n_segs;

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    fill(w, m, 300);
    n_segs = wal_segment_count(w);
    assert_true(n_segs >= 6);
    wal_close(w);
    save_segments(f, &s, n_segs);

    for (uint64_t k = 1; k < n_segs; k++) {
        uint64_t foff = footer_offset(s.bytes[k], s.len[k]);
        uint64_t last = footer_last_index(s.bytes[k], s.len[k]);
        size_t cuts[] = {s.len[k],
                         s.len[k] - 1,
                         s.len[k] - TRAILER_SIZE,
                         foff + HEADER_SIZE / 2,
                         foff + HEADER_SIZE + 3,
                         (foff + s.len[k]) / 2,
                         foff};

        /* Sealed, or cut anywhere in its footer or trailer. */
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            restore_segments(f, &s, k, cuts[c]);
            check_after_crash(f, m, last);
        }
        /* Sealed, the next segment created but not yet named. */
        restore_segments(f, &s, k, s.len[k]);
        seg_path(f, k + 1, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        write_whole(tmp, s.bytes[k + 1], 200);
        check_after_crash(f, m, last);
        assert_false(exists(tmp));
        /* Named, with nothing in it but its header. */
        restore_segments(f, &s, k + 1, record_len(s.bytes[k + 1], 0));
        check_after_crash(f, m, last);
    }

    /* Every trailer gone, or every footer damaged: the same log. */
    for (int how = 0; how < 2; how++) {
        restore_segments(f, &s, n_segs, s.len[n_segs]);
        for (uint64_t seq = 1; seq < n_segs; seq++) {
            uint8_t *copy = malloc(s.len[seq]);

            memcpy(copy, s.bytes[seq], s.len[seq]);
            copy[footer_offset(copy, s.len[seq]) + HEADER_SIZE + 40] ^= 0x20;
            seg_path(f, seq, path, sizeof path);
            if (how == 0)
                write_whole(path, s.bytes[seq], s.len[seq] - TRAILER_SIZE);
            else
                write_whole(path, copy, s.len[seq]);
            free(copy);
        }
        check_after_crash(f, m, m->last);
    }
    free_saved(&s);
    free(m);
}

/* The last segment's torn tail is cut, whatever came before it. */
static void test_torn_tail_last_segment(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    char path[256];
    uint8_t *pristine;
    size_t len, start;
    uint64_t n_segs;

    wal_recovered_free(&rec);
    fill(w, m, 120);
    n_segs = wal_segment_count(w);
    assert_true(n_segs > 2);
    wal_close(w);
    seg_path(f, n_segs, path, sizeof path);
    pristine = read_whole(path, &len);
    start = entry_offset(pristine, len, m->last);
    for (size_t off = start; off < len; off++) {
        write_whole(path, pristine, off);
        check_after_crash(f, m, m->last - 1);
        assert_true(file_size(path) > start);
    }
    free(pristine);
    free(m);
}

/* Damage in a sealed segment: with its footer sound, wal_open does not
 * read the records, so wal_read finds it; without, wal_open refuses. */
static void test_corrupted_closed_segment(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    const struct core_entry *e;
    uint8_t *pristine, *bad;
    size_t len, off, n;
    char offset_text[64], err[512];

    wal_recovered_free(&rec);
    fill(w, m, 150);
    assert_true(wal_segment_count(w) > 2);
    wal_close(w);
    pristine = read_whole(f->file, &len);
    bad = malloc(len);
    memcpy(bad, pristine, len);
    off = entry_offset(bad, len, 5);
    bad[off + record_len(bad, off) - 1] ^= 0x08; /* its data's last byte */
    snprintf(offset_text, sizeof offset_text, "offset %zu ", off);

    /* Footer sound: opens; the read of entry 5 fails, with where and why. */
    write_whole(f->file, bad, len);
    w = open_with(f->dir, SMALL, &rec);
    check_recovered(&rec, m, 1);
    wal_recovered_free(&rec);
    assert_int_equal(wal_read(w, 5, 5, SIZE_MAX, false, &e, &n), -EILSEQ);
    snprintf(err, sizeof err, "%s", wal_last_error(w));
    if (!strstr(err, SEG1) || !strstr(err, offset_text) || !strstr(err, "payload checksum"))
        fail_msg("unexpected error: %s", err);
    assert_int_equal(wal_read(w, 2, 10, SIZE_MAX, false, &e, &n), -EILSEQ);
    /* Its neighbours, and its metadata alone, are fine. */
    read_one(w, 4);
    read_one(w, 6);
    assert_int_equal(wal_read(w, 5, 5, SIZE_MAX, true, &e, &n), 0);
    assert_int_equal(e[0].index, 5);
    read_one(w, m->last);
    wal_close(w);

    /* A record rewritten with checksums to match, which the footer
     * contradicts: no crash does that, and a read refuses to lend it. */
    {
        uint8_t *forged = malloc(len);
        size_t at = entry_offset(forged = memcpy(forged, pristine, len), len, 7);
        uint32_t crc;

        forged[at + HEADER_SIZE + 8] ^= 0x40; /* its epoch */
        crc = crc32c(0, forged + at + HEADER_SIZE, get32(forged + at + 8));
        for (int i = 0; i < 4; i++)
            forged[at + 12 + i] = (uint8_t)(crc >> (8 * i));
        crc = crc32c(0, forged + at, 16);
        for (int i = 0; i < 4; i++)
            forged[at + 16 + i] = (uint8_t)(crc >> (8 * i));
        write_whole(f->file, forged, len);
        w = open_with(f->dir, SMALL, &rec);
        wal_recovered_free(&rec);
        assert_int_equal(wal_read(w, 6, 8, SIZE_MAX, false, &e, &n), -EILSEQ);
        if (!strstr(wal_last_error(w), "where the index says"))
            fail_msg("unexpected error: %s", wal_last_error(w));
        wal_close(w);
        free(forged);
    }

    /* Trailer gone: the segment is read at open, and refused. */
    expect_refused(f, f->file, bad, len - TRAILER_SIZE, offset_text,
                   "payload checksum mismatch) followed by");
    /* Footer damaged: the same. */
    bad[footer_offset(bad, len) + HEADER_SIZE + 3] ^= 0x01;
    expect_refused(f, f->file, bad, len, offset_text, "in a closed segment");
    /* A sealed segment cut short inside a record. */
    expect_refused(f, f->file, pristine, off + 7, "offset", "cut short by the end of the closed");
    /* A segment missing in the middle. */
    write_whole(f->file, pristine, len);
    {
        char path[256];
        struct wal *w2 = (struct wal *)0x1;

        seg_path(f, 2, path, sizeof path);
        unlink(path);
        assert_int_equal(wal_open(f->dir, NULL, &w2, &rec, err, sizeof err), -EILSEQ);
        assert_null(w2);
        assert_non_null(strstr(err, "segments missing between"));
    }
    free(bad);
    free(pristine);
    free(m);
}

/* Truncations in one segment of entries held by earlier ones, within a
 * batch and across syncs, read back before and after reopening (through
 * the footers, and record by record). */
static void test_truncate_across_segments(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    char path[256];
    uint64_t n_segs, first_segs;

    wal_recovered_free(&rec);
    fill(w, m, 150);
    first_segs = wal_segment_count(w);
    assert_true(first_segs > 3);
    /* Back into segment 1. */
    model_append(w, m, 20, 20, 40, 10);
    assert_int_equal(wal_sync(w), 0);
    check_log(w, m, 1);
    /* Back into the previous segment and on, in one batch with more. */
    model_append(w, m, 45, 45, 10, 11);
    model_append(w, m, 50, 50, 70, 12);
    model_append(w, m, 100, 100, 5, 13);
    assert_int_equal(wal_sync(w), 0);
    check_log(w, m, 1);
    /* A truncation alone, then nothing. */
    assert_int_equal(wal_append_entries(w, 90, NULL, 0), 0);
    m->last = 89;
    assert_int_equal(wal_sync(w), 0);
    check_log(w, m, 1);
    w = reopen_check(w, f->dir, SMALL, m, 1);
    fill(w, m, 260);
    w = reopen_check(w, f->dir, SMALL, m, 1);
    n_segs = wal_segment_count(w);
    wal_close(w);

    /* Without trailers, every segment is read record by record. */
    for (uint64_t seq = 1; seq < n_segs; seq++) {
        uint8_t *file;
        size_t len;

        seg_path(f, seq, path, sizeof path);
        file = read_whole(path, &len);
        write_whole(path, file, len - TRAILER_SIZE);
        free(file);
    }
    w = open_with(f->dir, SMALL, &rec);
    check_recovered(&rec, m, 1);
    wal_recovered_free(&rec);
    check_log(w, m, 1);
    wal_close(w);
    free(m);
}

static void test_read_ranges(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    const struct core_entry *e;
    size_t n, three;

    wal_recovered_free(&rec);
    fill(w, m, 300);
    assert_int_equal(wal_read(w, 0, 5, SIZE_MAX, false, &e, &n), -ERANGE);
    assert_int_equal(wal_read(w, 5, 4, SIZE_MAX, false, &e, &n), -ERANGE);
    assert_int_equal(wal_read(w, 301, 301, SIZE_MAX, false, &e, &n), -ERANGE);
    assert_int_equal(n, 0);
    /* hi past the end reads to the end, across segments. */
    assert_int_equal(wal_read(w, 1, 1000, SIZE_MAX, false, &e, &n), 0);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++)
        assert_entry_equal(&e[i], &m->e[i + 1]);
    assert_int_equal(wal_read(w, 290, 1000, SIZE_MAX, false, &e, &n), 0);
    assert_int_equal(n, 11);
    /* At least one entry, however small the budget. */
    assert_int_equal(wal_read(w, 77, 300, 0, false, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_entry_equal(&e[0], &m->e[77]);
    /* Exactly as many as fit, each counting CORE_ENTRY_OVERHEAD too
     * (core_store's rule), with or without the data. */
    three = m->e[100].len + m->e[101].len + m->e[102].len + 3 * CORE_ENTRY_OVERHEAD;
    assert_int_equal(wal_read(w, 100, 300, three, false, &e, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wal_read(w, 100, 300, three - 1, false, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(wal_read(w, 100, 300, three, true, &e, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wal_read(w, 100, 300, three - 1, true, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(wal_read(w, 100, 101, SIZE_MAX, false, &e, &n), 0);
    assert_int_equal(n, 2);
    /* Metadata only: no data, the real length. */
    assert_int_equal(wal_read(w, 1, 300, SIZE_MAX, true, &e, &n), 0);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++) {
        assert_null(e[i].data);
        assert_int_equal(e[i].len, m->e[i + 1].len);
        assert_string_equal(e[i].client_id, m->e[i + 1].client_id);
    }
    /* Through the core's interface. */
    {
        struct core_store st = wal_store(w);

        assert_ptr_equal(st.arg, w);
        assert_int_equal(st.read(st.arg, 150, 150, SIZE_MAX, false, &e, &n), 0);
        assert_entry_equal(&e[0], &m->e[150]);
    }
    wal_close(w);
    free(m);
}

/* ------------------------------------------------------------------------
 * Checkpoints, retention, the snapshot
 * ------------------------------------------------------------------------ */

static void test_checkpoint_survives(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    struct core_checkpoint a = {10, 6, 4}, lower = {8, 1, 1}, b = {40, 30, 10};

    wal_recovered_free(&rec);
    model_append(w, m, 0, 1, 10, 1);
    assert_int_equal(wal_append_checkpoint(w, &a), 0);
    assert_int_equal(wal_sync(w), 0);
    w = reopen_check(w, f->dir, SMALL, m, 1);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_memory_equal(&rec.core.checkpoint, &a, sizeof a);
    wal_recovered_free(&rec);

    /* A lower one does not replace it; segments later, it still stands
     * (carried in each segment's header), also once its own is gone. */
    assert_int_equal(wal_append_checkpoint(w, &lower), 0);
    assert_int_equal(wal_sync(w), 0);
    for (uint64_t i = 11; i <= 200; i++)
        model_append(w, m, 0, i, 1, 1);
    assert_int_equal(wal_sync(w), 0);
    assert_int_equal(wal_drop_before(w, 150), 0);
    assert_true(wal_first_index(w) > 10);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_memory_equal(&rec.core.checkpoint, &a, sizeof a);
    wal_recovered_free(&rec);
    assert_int_equal(wal_append_checkpoint(w, &b), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_memory_equal(&rec.core.checkpoint, &b, sizeof b);
    wal_recovered_free(&rec);
    wal_close(w);
    free(m);
}

static void test_drop_before_and_snapshot(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    struct core_hard_state hs = hard_state(2, "r2");
    const struct core_entry *e;
    struct core_entry one;
    uint64_t first, segs_before;
    size_t n;
    char snap[300], err[512];

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    fill(w, m, 300);
    segs_before = wal_segment_count(w);

    /* Nothing below 1: nothing goes. */
    assert_int_equal(wal_drop_before(w, 1), 0);
    assert_int_equal(wal_segment_count(w), segs_before);
    assert_int_equal(wal_first_index(w), 1);

    assert_int_equal(wal_save_snapshot(w, 150, m->e[150].epoch, "state up to 150", 15), 0);
    assert_int_equal(wal_drop_before(w, 151), 0);
    first = wal_first_index(w);
    assert_true(first > 1 && first <= 151);
    assert_true(wal_segment_count(w) < segs_before);
    assert_int_equal(count_segments(f->dir), wal_segment_count(w));
    assert_false(exists(f->file));
    assert_int_equal(wal_size(w), dir_bytes(f));
    assert_int_equal(wal_read(w, first - 1, first, SIZE_MAX, false, &e, &n), -ERANGE);
    check_log(w, m, first);
    /* Committed entries are not truncated, least of all dropped ones. */
    one = m->e[first];
    assert_int_equal(wal_append_entries(w, first - 1, &one, 1), -EINVAL);

    /* Reopened: the same first index, runs from it, the snapshot, and the
     * hard state whose record went with segment 1. */
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_int_equal(wal_first_index(w), first);
    check_recovered(&rec, m, first);
    assert_hs_equal(&rec.core.hs, &hs);
    assert_int_equal(rec.snapshot_index, 150);
    assert_int_equal(rec.snapshot_epoch, m->e[150].epoch);
    assert_int_equal(rec.snapshot_len, 15);
    assert_memory_equal(rec.snapshot_data, "state up to 150", 15);
    wal_recovered_free(&rec);
    check_log(w, m, first);

    /* A later snapshot replaces it; dropping everything keeps the last
     * segment, and the log goes on from there. */
    assert_int_equal(wal_save_snapshot(w, 300, m->e[300].epoch, "all", 3), 0);
    assert_int_equal(wal_drop_before(w, 301), 0);
    assert_int_equal(wal_segment_count(w), 1);
    first = wal_first_index(w);
    check_log(w, m, first);
    fill(w, m, 330);
    w = reopen_check(w, f->dir, SMALL, m, first);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_int_equal(rec.snapshot_index, 300);
    assert_memory_equal(rec.snapshot_data, "all", 3);
    assert_hs_equal(&rec.core.hs, &hs);
    wal_recovered_free(&rec);
    /* When the last segment holds no entry at all. */
    assert_int_equal(wal_drop_before(w, 1000), 0);
    wal_close(w);

    /* A damaged snapshot is refused. */
    snprintf(snap, sizeof snap, "%s/snapshot", f->dir);
    {
        size_t len;
        uint8_t *bytes = read_whole(snap, &len);
        struct wal *w2 = (struct wal *)0x1;

        bytes[len - 1] ^= 1;
        write_whole(snap, bytes, len);
        assert_int_equal(wal_open(f->dir, NULL, &w2, &rec, err, sizeof err), -EILSEQ);
        assert_null(w2);
        assert_non_null(strstr(err, "snapshot"));
        assert_non_null(strstr(err, "checksum"));
        free(bytes);
    }
    free(m);
}

/* When every retained segment lost its entries to drops, the log is empty
 * and starts after them. */
static void test_drop_leaves_empty_log(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w = open_with(f->dir, SMALL, &rec);
    struct core_hard_state hs = hard_state(7, "r3");

    wal_recovered_free(&rec);
    fill(w, m, 120);
    /* State records until one starts a new segment. */
    for (uint64_t before = wal_segment_count(w); wal_segment_count(w) == before;) {
        assert_int_equal(wal_append_state(w, &hs), 0);
        assert_int_equal(wal_sync(w), 0);
    }
    assert_int_equal(wal_drop_before(w, 121), 0);
    assert_int_equal(wal_segment_count(w), 1);
    assert_int_equal(wal_first_index(w), 121);
    wal_close(w);
    w = open_with(f->dir, SMALL, &rec);
    assert_int_equal(wal_first_index(w), 121);
    assert_int_equal(rec.core.last_index, 120);
    assert_int_equal(rec.core.n_runs, 0);
    assert_hs_equal(&rec.core.hs, &hs);
    wal_recovered_free(&rec);
    model_append(w, m, 0, 121, 3, 8);
    assert_int_equal(wal_sync(w), 0);
    w = reopen_check(w, f->dir, SMALL, m, 121);
    wal_close(w);
    free(m);
}

/* ------------------------------------------------------------------------
 * The legacy wal.log
 * ------------------------------------------------------------------------ */

/* The file of the format before segments: the same records without the
 * segment's header (nor footer: the log written fits one segment). */
static uint8_t *legacy_bytes(struct fixture *f, struct model *m, size_t *len)
{
    struct wal_recovered rec;
    struct wal *w = open_ok(f->dir, &rec);
    struct core_hard_state hs = hard_state(4, "r1");
    uint8_t *seg, *legacy;
    size_t seg_len, hlen;
    char lock[256];

    wal_recovered_free(&rec);
    assert_int_equal(wal_append_state(w, &hs), 0);
    model_append(w, m, 0, 1, 30, 3);
    model_append(w, m, 20, 20, 5, 4);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    seg = read_whole(f->file, &seg_len);
    hlen = record_len(seg, 0);
    *len = seg_len - hlen;
    legacy = malloc(*len + 1);
    memcpy(legacy, seg + hlen, *len);
    free(seg);
    unlink(f->file);
    snprintf(lock, sizeof lock, "%s/wal.lock", f->dir);
    unlink(lock);
    return legacy;
}

static void test_legacy_migration(void **state)
{
    struct fixture *f = *state;
    struct model *m = model_new();
    struct wal_recovered rec;
    struct wal *w;
    char legacy[256], seg0[256];
    uint8_t *bytes;
    size_t len;

    bytes = legacy_bytes(f, m, &len);
    snprintf(legacy, sizeof legacy, "%s/wal.log", f->dir);
    seg_path(f, 0, seg0, sizeof seg0);

    /* Damaged in the middle: refused, and left as it was, name and all. */
    bytes[30] ^= 0x04;
    expect_refused(f, legacy, bytes, len, "offset 0 ", "payload checksum mismatch");
    assert_false(exists(seg0));
    bytes[30] ^= 0x04;

    /* Torn: recovered, then renamed. */
    write_whole(legacy, bytes, len - 5);
    m->last = 23;
    w = open_with(f->dir, SMALL, &rec);
    check_recovered(&rec, m, 1);
    assert_int_equal(rec.core.hs.epoch, 4);
    wal_recovered_free(&rec);
    assert_false(exists(legacy));
    assert_true(exists(seg0));
    assert_int_equal(file_size(seg0), entry_offset(bytes, len, 24));
    check_log(w, m, 1);

    /* It takes appends until full, then is sealed like any segment. */
    fill(w, m, 200);
    assert_true(wal_segment_count(w) > 2);
    w = reopen_check(w, f->dir, SMALL, m, 1);
    wal_close(w);
    {
        size_t slen, off;
        uint8_t *s0 = read_whole(seg0, &slen);

        /* Sealed: a restart reads its footer, not its records (damage to
         * one shows when it is read)... */
        footer_offset(s0, slen);
        off = entry_offset(s0, slen, 3);
        s0[off + record_len(s0, off) - 1] ^= 1;
        write_whole(seg0, s0, slen);
        w = open_with(f->dir, SMALL, &rec);
        check_recovered(&rec, m, 1);
        wal_recovered_free(&rec);
        assert_int_equal(
            wal_read(w, 1, 5, SIZE_MAX, false, &(const struct core_entry *){0}, &(size_t){0}),
            -EILSEQ);
        wal_close(w);
        /* ...and without its trailer, its records. */
        s0[off + record_len(s0, off) - 1] ^= 1;
        write_whole(seg0, s0, slen - TRAILER_SIZE);
        w = open_with(f->dir, SMALL, &rec);
        check_recovered(&rec, m, 1);
        wal_recovered_free(&rec);
        check_log(w, m, 1);
        free(s0);
    }
    /* Both at once is refused. */
    wal_close(w);
    write_whole(legacy, bytes, len);
    {
        struct wal *w2 = (struct wal *)0x1;
        char err[512];

        assert_int_equal(wal_open(f->dir, NULL, &w2, &rec, err, sizeof err), -EEXIST);
        assert_null(w2);
        assert_non_null(strstr(err, "legacy"));
        unlink(legacy);
    }
    free(bytes);
    free(m);
}

/* ------------------------------------------------------------------------
 * A full disk
 * ------------------------------------------------------------------------ */

#define CHILD_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "    %s:%d: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#define SKIPPED 77

static struct core_entry sized_entry(uint64_t index, char *buf, size_t len)
{
    memset(buf, 'a' + (int)(index % 26), len);
    snprintf(buf, len, "%llu:", (unsigned long long)index);
    buf[strlen(buf)] = '.';
    return (struct core_entry){.index = index,
                               .epoch = 1,
                               .type = CORE_ENTRY_DATA,
                               .client_id = "c",
                               .primary = "r1",
                               .data = (const uint8_t *)buf,
                               .len = len};
}

/* Appends count entries of 200 bytes after last, buffered. */
static int append_sized(struct wal *w, uint64_t *last, size_t count)
{
    char buf[200];

    for (size_t i = 0; i < count; i++) {
        struct core_entry e = sized_entry(*last + 1, buf, sizeof buf);

        CHILD_CHECK(wal_append_entries(w, 0, &e, 1) == 0, "append %llu",
                    (unsigned long long)*last + 1);
        ++*last;
    }
    return 0;
}

/* In a private mount namespace with a 256 KiB tmpfs: fill it, see wal_sync
 * fail with ENOSPC and keep everything, free space, see the retry write it
 * once, and the log reopen with every entry exactly once. */
static int enospc_child(const char *base)
{
    char mnt[128], dir[160], filler[160], err[512], buf[4096], want[200];
    struct wal_options o = {.segment_bytes = 16 * 1024};
    struct wal_recovered rec;
    struct wal *w;
    uint64_t last = 0, durable;
    int fd, rc = 0, failures = 0;
    size_t n;
    const struct core_entry *e;

    if (geteuid() != 0) {
        fprintf(stderr, "    skipped: mounting a small tmpfs needs root\n");
        return SKIPPED;
    }
    snprintf(mnt, sizeof mnt, "%s/mnt", base);
    if (mkdir(mnt, 0755) != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr, "    skipped: no private tmpfs mount (%s)\n", strerror(errno));
        return SKIPPED;
    }
    snprintf(dir, sizeof dir, "%s/data", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    CHILD_CHECK(wal_open(dir, &o, &w, &rec, err, sizeof err) == 0, "%s", err);
    wal_recovered_free(&rec);
    CHILD_CHECK(append_sized(w, &last, 20) == 0, "append");
    CHILD_CHECK(wal_sync(w) == 0, "first sync: %s", wal_last_error(w));

    /* Fill the disk. */
    fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHILD_CHECK(fd >= 0, "filler: %s", strerror(errno));
    memset(buf, 'x', sizeof buf);
    while (write(fd, buf, sizeof buf) > 0)
        ;
    CHILD_CHECK(errno == ENOSPC, "filling stopped with %s", strerror(errno));
    close(fd);

    /* The open segment's preallocation takes appends until a new segment
     * is needed: that fails, and keeps failing with more buffered. */
    for (int i = 0; i < 200 && rc == 0; i++) {
        durable = last;
        CHILD_CHECK(append_sized(w, &last, 5) == 0, "append");
        rc = wal_sync(w);
    }
    CHILD_CHECK(rc == -ENOSPC, "wal_sync = %d, not -ENOSPC", rc);
    CHILD_CHECK(strstr(wal_last_error(w), "wal-") != NULL, "error: %s", wal_last_error(w));
    CHILD_CHECK(wal_pending(w), "nothing kept after ENOSPC");
    CHILD_CHECK(wal_read(w, durable + 1, durable + 1, SIZE_MAX, false, &e, &n) == -ERANGE,
                "an entry that failed to sync reads back");
    for (int i = 0; i < 3; i++) {
        CHILD_CHECK(append_sized(w, &last, 3) == 0, "append");
        failures += wal_sync(w) == -ENOSPC;
    }
    CHILD_CHECK(failures == 3, "%d of 3 retries failed with ENOSPC", failures);

    /* Space again: the same bytes land, once. */
    CHILD_CHECK(unlink(filler) == 0, "unlink filler");
    CHILD_CHECK(wal_sync(w) == 0, "sync after freeing space: %s", wal_last_error(w));
    CHILD_CHECK(!wal_pending(w), "still pending");
    CHILD_CHECK(append_sized(w, &last, 10) == 0, "append");
    CHILD_CHECK(wal_sync(w) == 0, "sync: %s", wal_last_error(w));
    wal_close(w);

    CHILD_CHECK(wal_open(dir, &o, &w, &rec, err, sizeof err) == 0, "reopen: %s", err);
    CHILD_CHECK(rec.core.last_index == last, "reopened with %llu entries, wrote %llu",
                (unsigned long long)rec.core.last_index, (unsigned long long)last);
    wal_recovered_free(&rec);
    for (uint64_t i = 1; i <= last; i++) {
        struct core_entry x = sized_entry(i, want, sizeof want);

        CHILD_CHECK(wal_read(w, i, i, SIZE_MAX, false, &e, &n) == 0 && n == 1, "read %llu: %s",
                    (unsigned long long)i, wal_last_error(w));
        CHILD_CHECK(e->index == i && e->len == x.len && memcmp(e->data, x.data, x.len) == 0,
                    "entry %llu differs", (unsigned long long)i);
    }
    wal_close(w);
    umount(mnt);
    return 0;
}

static void test_enospc(void **state)
{
    struct fixture *f = *state;
    char mnt[128];
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(enospc_child(f->base));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    snprintf(mnt, sizeof mnt, "%s/mnt", f->base);
    rmdir(mnt);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == SKIPPED)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
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
    struct wal *w = open_with(f->dir, 1024 * 1024, &rec);
    const struct core_entry *got;
    struct timespec t0;
    double append_s, replay_s, read_s;
    uint64_t next = 1;
    size_t n;

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
    w = open_with(f->dir, 1024 * 1024, &rec);
    replay_s = seconds_since(&t0);
    assert_int_equal(rec.core.last_index, N);
    assert_int_equal(rec.core.n_runs, 1);
    wal_recovered_free(&rec);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (next <= N) {
        assert_int_equal(wal_read(w, next, N, 64 * 1024, false, &got, &n), 0);
        for (size_t i = 0; i < n; i++) {
            uint64_t index;

            assert_int_equal(got[i].index, next + i);
            assert_int_equal(got[i].len, 16);
            memcpy(&index, got[i].data, sizeof index);
            assert_int_equal(index, next + i);
        }
        next += n;
    }
    read_s = seconds_since(&t0);
    print_message("    100000 entries: append+sync %.3f s, open %.3f s, read all %.3f s, "
                  "%llu bytes in %llu segments\n",
                  append_s, replay_s, read_s, (unsigned long long)wal_size(w),
                  (unsigned long long)wal_segment_count(w));
    assert_string_equal(read_one(w, N)->client_id, "client");
    /* Generous for sanitizer builds; an O(n^2) replay would take minutes. */
    assert_true(replay_s < 2.0);
    assert_true(read_s < 5.0);
    wal_close(w);
    free(e);
    free(data);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_values),
        cmocka_unit_test(test_crc32c_paths_agree),
        T(test_empty_dir),
        T(test_bad_options),
        T(test_roundtrip_all_fields),
        T(test_truncate_and_reappend),
        T(test_append_rejects_gaps),
        T(test_last_state_wins),
        T(test_append_state_rejects_unterminated),
        T(test_close_does_not_sync),
        T(test_second_open_is_locked_out),
        T(test_torn_tail_entry),
        T(test_torn_tail_state),
        T(test_trailing_zeros),
        T(test_damaged_last_record_is_torn),
        T(test_damaged_header_before_data_refused),
        T(test_oversized_length_not_trusted),
        T(test_corrupted_middle),
        T(test_reserved_bytes_refused),
        T(test_gap_in_indices_refused),
        T(test_segment_rollover),
        T(test_crash_at_every_boundary),
        T(test_torn_tail_last_segment),
        T(test_corrupted_closed_segment),
        T(test_truncate_across_segments),
        T(test_read_ranges),
        T(test_checkpoint_survives),
        T(test_drop_before_and_snapshot),
        T(test_drop_leaves_empty_log),
        T(test_legacy_migration),
        T(test_enospc),
        T(test_many_small_entries),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
