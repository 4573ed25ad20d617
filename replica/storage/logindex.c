/*
 * replica/storage/logindex.c — the in-memory sparse index of a log kept on
 * disk (see logindex.h for what a point promises).
 */
#include "storage/logindex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for one more element of size `size` in *arr. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    p = realloc(*arr, ncap * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

void ix_init(struct log_index *ix, uint64_t first)
{
    memset(ix, 0, sizeof *ix);
    ix->first = first;
    ix->last = first - 1;
    ix->need_point = true;
}

void ix_free(struct log_index *ix)
{
    free(ix->points);
    free(ix->runs);
    free(ix->configs);
    memset(ix, 0, sizeof *ix);
}

int ix_add_entry(struct log_index *ix, uint64_t index, uint64_t epoch, enum core_entry_type type,
                 uint64_t seq, uint64_t offset)
{
    bool point = ix->need_point || (index - 1) % IX_POINT_EVERY == 0 || ix->n_points == 0;
    bool run = ix->n_runs == 0 || ix->runs[ix->n_runs - 1].epoch != epoch;
    bool config = type == CORE_ENTRY_CONFIG;

    /* Room first, so that a failure leaves the index as it was. */
    if ((point && grow((void **)&ix->points, &ix->cap_points, ix->n_points, sizeof *ix->points)) ||
        (run && grow((void **)&ix->runs, &ix->cap_runs, ix->n_runs, sizeof *ix->runs)) ||
        (config && grow((void **)&ix->configs, &ix->cap_configs, ix->n_configs, 8)))
        return -ENOMEM;
    if (point)
        ix->points[ix->n_points++] = (struct ix_point){index, seq, offset};
    if (run)
        ix->runs[ix->n_runs++] = (struct core_epoch_run){index, epoch};
    if (config)
        ix->configs[ix->n_configs++] = index;
    if (ix->first > ix->last)
        ix->first = index;
    ix->last = index;
    ix->need_point = false;
    return 0;
}

void ix_cut(struct log_index *ix, uint64_t from)
{
    if (from > ix->last)
        return;
    while (ix->n_points > 0 && ix->points[ix->n_points - 1].index >= from)
        ix->n_points--;
    while (ix->n_runs > 0 && ix->runs[ix->n_runs - 1].first_index >= from)
        ix->n_runs--;
    while (ix->n_configs > 0 && ix->configs[ix->n_configs - 1] >= from)
        ix->n_configs--;
    ix->last = from - 1;
    if (from < ix->first)
        ix->first = from;
    ix->need_point = true;
}

void ix_segment_start(struct log_index *ix)
{
    ix->need_point = true;
}

uint64_t ix_last_epoch(const struct log_index *ix)
{
    return ix->n_runs > 0 && ix->last >= ix->first ? ix->runs[ix->n_runs - 1].epoch : 0;
}

size_t ix_find(const struct log_index *ix, uint64_t index)
{
    size_t lo = 0, hi = ix->n_points; /* the answer is in [lo, hi) */

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (ix->points[mid].index <= index)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* First position in points[] of segment seq or later. */
static size_t first_point_of(const struct log_index *ix, uint64_t seq)
{
    size_t lo = 0, hi = ix->n_points;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ix->points[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Copies the runs and config indexes of entries first..last of ix. */
static int copy_tail(const struct log_index *ix, struct log_index *out)
{
    size_t r = ix->n_runs, c = ix->n_configs;

    while (r > 0 && ix->runs[r - 1].first_index > out->first)
        r--;
    while (c > 0 && ix->configs[c - 1] >= out->first)
        c--;
    /* r - 1 is the run holding out->first. */
    for (size_t i = r > 0 ? r - 1 : 0; i < ix->n_runs; i++) {
        if (grow((void **)&out->runs, &out->cap_runs, out->n_runs, sizeof *out->runs))
            return -ENOMEM;
        out->runs[out->n_runs] = ix->runs[i];
        if (out->runs[out->n_runs].first_index < out->first)
            out->runs[out->n_runs].first_index = out->first;
        out->n_runs++;
    }
    for (size_t i = c; i < ix->n_configs; i++) {
        if (grow((void **)&out->configs, &out->cap_configs, out->n_configs, 8))
            return -ENOMEM;
        out->configs[out->n_configs++] = ix->configs[i];
    }
    return 0;
}

int ix_slice(const struct log_index *ix, uint64_t seq, struct log_index *out)
{
    size_t p = first_point_of(ix, seq);

    ix_init(out, ix->last + 1);
    out->need_point = ix->need_point;
    if (p == ix->n_points)
        return 0; /* no live entry in it (yet) */
    out->first = ix->points[p].index;
    out->last = ix->last;
    for (size_t i = p; i < ix->n_points; i++) {
        if (grow((void **)&out->points, &out->cap_points, out->n_points, sizeof *out->points))
            goto err_nomem;
        out->points[out->n_points++] = ix->points[i];
    }
    if (copy_tail(ix, out) < 0)
        goto err_nomem;
    return 0;

err_nomem:
    ix_free(out);
    return -ENOMEM;
}

void ix_slice_counts(const struct log_index *ix, uint64_t seq, size_t *points, size_t *runs,
                     size_t *configs)
{
    size_t p = first_point_of(ix, seq), r = ix->n_runs, c = ix->n_configs;
    uint64_t first;

    *points = *runs = *configs = 0;
    if (p == ix->n_points)
        return;
    first = ix->points[p].index;
    while (r > 1 && ix->runs[r - 1].first_index > first)
        r--;
    while (c > 0 && ix->configs[c - 1] >= first)
        c--;
    *points = ix->n_points - p;
    *runs = r > 0 ? ix->n_runs - (r - 1) : 0;
    *configs = ix->n_configs - c;
}

bool ix_segment_live(const struct log_index *ix, uint64_t seq, uint64_t *lo, uint64_t *hi)
{
    size_t p = first_point_of(ix, seq), q = first_point_of(ix, seq + 1);

    if (p == q)
        return false;
    *lo = ix->points[p].index;
    *hi = q < ix->n_points ? ix->points[q].index - 1 : ix->last;
    return true;
}

size_t ix_run_at(const struct log_index *ix, uint64_t index)
{
    size_t lo = 0, hi = ix->n_runs;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (ix->runs[mid].first_index <= index)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

uint64_t ix_epoch_at(const struct log_index *ix, uint64_t index)
{
    if (index < ix->first || index > ix->last || ix->n_runs == 0)
        return 0;
    return ix->runs[ix_run_at(ix, index)].epoch;
}

size_t ix_config_from(const struct log_index *ix, uint64_t index)
{
    size_t lo = 0, hi = ix->n_configs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ix->configs[mid] < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ix_append(struct log_index *ix, const struct log_index *slice, uint64_t min_truncate)
{
    size_t skip_run;

    if (min_truncate > 0)
        ix_cut(ix, min_truncate);
    if (slice->last < slice->first) {
        ix->need_point = true;
        return 0;
    }
    skip_run = ix->n_runs > 0 && ix->last >= ix->first &&
               ix->runs[ix->n_runs - 1].epoch == slice->runs[0].epoch;
    for (size_t i = 0; i < slice->n_points; i++) {
        if (grow((void **)&ix->points, &ix->cap_points, ix->n_points, sizeof *ix->points))
            return -ENOMEM;
        ix->points[ix->n_points++] = slice->points[i];
    }
    for (size_t i = skip_run; i < slice->n_runs; i++) {
        if (grow((void **)&ix->runs, &ix->cap_runs, ix->n_runs, sizeof *ix->runs))
            return -ENOMEM;
        ix->runs[ix->n_runs++] = slice->runs[i];
    }
    for (size_t i = 0; i < slice->n_configs; i++) {
        if (grow((void **)&ix->configs, &ix->cap_configs, ix->n_configs, 8))
            return -ENOMEM;
        ix->configs[ix->n_configs++] = slice->configs[i];
    }
    if (ix->first > ix->last)
        ix->first = slice->first;
    ix->last = slice->last;
    ix->need_point = true;
    return 0;
}

void ix_forget_before(struct log_index *ix, uint64_t seq)
{
    size_t p = first_point_of(ix, seq), r = 0, c = 0;

    memmove(ix->points, ix->points + p, (ix->n_points - p) * sizeof *ix->points);
    ix->n_points -= p;
    ix->first = ix->n_points > 0 ? ix->points[0].index : ix->last + 1;
    while (r + 1 < ix->n_runs && ix->runs[r + 1].first_index <= ix->first)
        r++;
    if (ix->first > ix->last)
        r = ix->n_runs;
    memmove(ix->runs, ix->runs + r, (ix->n_runs - r) * sizeof *ix->runs);
    ix->n_runs -= r;
    if (ix->n_runs > 0 && ix->runs[0].first_index < ix->first)
        ix->runs[0].first_index = ix->first;
    while (c < ix->n_configs && ix->configs[c] < ix->first)
        c++;
    memmove(ix->configs, ix->configs + c, (ix->n_configs - c) * sizeof *ix->configs);
    ix->n_configs -= c;
}
