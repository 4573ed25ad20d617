/*
 * bench/wal_bench.c — the segmented WAL on its own (replica/storage): how
 * long a restart takes on a big log, how much memory the open log holds,
 * and how fast entries stream back for a catch-up.
 *
 *   wal_bench write DIR [SMALL [BIG]]   SMALL 16-byte entries, then BIG
 *                                       4 KiB ones (default 5,000,000 and
 *                                       1,000,000), 64 MiB segments
 *   wal_bench open DIR                  time wal_open; RSS before and after
 *   wal_bench read DIR                  stream every entry back (1 MiB
 *                                       reads), then metadata only, then
 *                                       10,000 single reads at random
 *
 * Each phase is its own process, so that caches can be dropped in between
 * (echo 3 > /proc/sys/vm/drop_caches) for a cold open. DIR is not removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/wal.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A line of /proc/self/status, in kB (VmRSS, VmHWM). */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            kb = strtol(line + strlen(key) + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static struct wal *open_log(const char *dir, struct wal_recovered *rec, double *secs)
{
    struct wal_options o = {.segment_bytes = 64ull << 20};
    struct wal *w;
    char err[512];
    double t0 = now_s();
    int rc = wal_open(dir, &o, &w, rec, err, sizeof err);

    *secs = now_s() - t0;
    if (rc < 0) {
        fprintf(stderr, "wal_open: %s\n", err);
        exit(1);
    }
    return w;
}

static void die_rc(const char *what, int rc, struct wal *w)
{
    fprintf(stderr, "%s: %s (%s)\n", what, strerror(-rc), wal_last_error(w));
    exit(1);
}

/* Appends count entries of len bytes in batches, one sync per batch. */
static void write_entries(struct wal *w, uint64_t *next, uint64_t count, size_t len, size_t batch)
{
    struct core_entry *e = calloc(batch, sizeof *e);
    uint8_t *data = malloc(batch * len);
    double t0 = now_s();
    uint64_t end = *next + count;
    int rc;

    for (size_t i = 0; i < batch * len; i++)
        data[i] = (uint8_t)(i * 131);
    while (*next < end) {
        size_t n = end - *next < batch ? (size_t)(end - *next) : batch;

        for (size_t i = 0; i < n; i++) {
            e[i] = (struct core_entry){.index = *next + i,
                                       .epoch = 1 + (*next + i) / 1000000,
                                       .type = CORE_ENTRY_DATA,
                                       .time_ms = 1700000000000,
                                       .client_id = "client-0001",
                                       .primary = "r1",
                                       .data = data + i * len,
                                       .len = len};
            memcpy(data + i * len, &e[i].index, 8);
        }
        if ((rc = wal_append_entries(w, 0, e, n)) < 0 || (rc = wal_sync(w)) < 0)
            die_rc("write", rc, w);
        *next += n;
    }
    printf("wrote %llu entries of %zu bytes in %.1f s (%.0f entries/s)\n",
           (unsigned long long)count, len, now_s() - t0, (double)count / (now_s() - t0));
    free(e);
    free(data);
}

static int do_write(const char *dir, uint64_t small, uint64_t big)
{
    struct wal_recovered rec;
    double secs;
    struct wal *w = open_log(dir, &rec, &secs);
    struct core_hard_state hs = {.epoch = 1};
    uint64_t next = rec.core.last_index + 1;
    int rc;

    wal_recovered_free(&rec);
    if ((rc = wal_append_state(w, &hs)) < 0)
        die_rc("state", rc, w);
    write_entries(w, &next, small, 16, 1000);
    write_entries(w, &next, big, 4096, 64);
    printf("log: %llu entries, %.2f GB in %llu segments\n", (unsigned long long)next - 1,
           (double)wal_size(w) / 1e9, (unsigned long long)wal_segment_count(w));
    wal_close(w);
    return 0;
}

static int do_open(const char *dir)
{
    long before = status_kb("VmRSS:");
    struct wal_recovered rec;
    double secs;
    struct wal *w = open_log(dir, &rec, &secs);

    printf("open: %.3f s; %llu entries, %zu runs, %llu segments, %.2f GB; RSS %ld kB before, "
           "%ld kB after (peak %ld kB)\n",
           secs, (unsigned long long)rec.core.last_index, rec.core.n_runs,
           (unsigned long long)wal_segment_count(w), (double)wal_size(w) / 1e9, before,
           status_kb("VmRSS:"), status_kb("VmHWM:"));
    wal_recovered_free(&rec);
    wal_close(w);
    return 0;
}

/* Streams lo..hi back in reads of max_bytes; returns entries and bytes. */
static void stream(struct wal *w, uint64_t lo, uint64_t hi, bool meta, const char *what)
{
    double t0 = now_s(), secs;
    uint64_t bytes = 0, next = lo;
    const struct core_entry *e;
    size_t n;
    int rc;

    while (next <= hi) {
        if ((rc = wal_read(w, next, hi, 1u << 20, meta, &e, &n)) < 0)
            die_rc("read", rc, w);
        for (size_t i = 0; i < n; i++) {
            uint64_t index;

            if (!meta)
                memcpy(&index, e[i].data, 8);
            if (e[i].index != next + i || (!meta && index != next + i)) {
                fprintf(stderr, "entry %llu is wrong\n", (unsigned long long)(next + i));
                exit(1);
            }
            bytes += e[i].len;
        }
        next += n;
    }
    secs = now_s() - t0;
    printf("%-28s %9llu entries in %6.3f s: %10.0f entries/s, %7.1f MB/s of data; RSS %ld kB\n",
           what, (unsigned long long)(hi - lo + 1), secs, (double)(hi - lo + 1) / secs,
           (double)bytes / 1e6 / secs, status_kb("VmRSS:"));
}

static int do_read(const char *dir, uint64_t small)
{
    struct wal_recovered rec;
    double secs, t0;
    struct wal *w = open_log(dir, &rec, &secs);
    uint64_t last = rec.core.last_index, seed = 88172645463325252ull;
    const struct core_entry *e;
    size_t n;
    int rc;

    wal_recovered_free(&rec);
    if (small > last)
        small = last;
    stream(w, 1, small, false, "16-byte entries");
    if (small < last)
        stream(w, small + 1, last, false, "4 KiB entries");
    stream(w, 1, last, true, "all, metadata only");
    t0 = now_s();
    for (int i = 0; i < 10000; i++) {
        uint64_t index;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        index = 1 + seed % last;
        if ((rc = wal_read(w, index, index, 1u << 20, false, &e, &n)) < 0)
            die_rc("read", rc, w);
    }
    printf("10000 random single reads in %.3f s (%.1f us each)\n", now_s() - t0,
           (now_s() - t0) / 10000 * 1e6);
    wal_close(w);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t small = argc > 3 ? strtoull(argv[3], NULL, 10) : 5000000;
    uint64_t big = argc > 4 ? strtoull(argv[4], NULL, 10) : 1000000;

    if (argc < 3) {
        fprintf(stderr, "usage: wal_bench write|open|read DIR [SMALL [BIG]]\n");
        return 2;
    }
    if (strcmp(argv[1], "write") == 0)
        return do_write(argv[2], small, big);
    if (strcmp(argv[1], "open") == 0)
        return do_open(argv[2]);
    if (strcmp(argv[1], "read") == 0)
        return do_read(argv[2], small);
    fprintf(stderr, "unknown phase %s\n", argv[1]);
    return 2;
}
