/*
 * tests/sim/entry.c — log entries as the simulator keeps them: immutable,
 * refcounted copies (a core lends its entries only during a callback), and
 * logs with prefix hashes so log matching between two nodes is one compare.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *sim_realloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct sim_entry *entry_copy(const struct core_entry *e)
{
    const char *cid = e->client_id ? e->client_id : "";
    const char *prim = e->primary ? e->primary : "";
    size_t lc = strlen(cid) + 1, lp = strlen(prim) + 1;
    struct sim_entry *s = sim_realloc(NULL, sizeof(*s) + lc + lp + e->len);
    char *p = (char *)(s + 1);
    memcpy(p, cid, lc);
    memcpy(p + lc, prim, lp);
    if (e->len) {
        memcpy(p + lc + lp, e->data, e->len);
    }
    s->refs = 1;
    s->e = *e;
    s->e.client_id = p;
    s->e.primary = p + lc;
    s->e.data = (const uint8_t *)(p + lc + lp);
    uint64_t h = 1469598103934665603ULL;
    uint64_t nums[3] = {e->index, e->epoch, (uint64_t)e->type};
    h = fnv(h, nums, sizeof(nums));
    h = fnv(h, &e->time_ms, sizeof(e->time_ms));
    h = fnv(h, cid, lc);
    h = fnv(h, prim, lp);
    h = fnv(h, s->e.data, e->len);
    s->hash = mix(h);
    return s;
}

void entry_unref(struct sim_entry *s)
{
    if (s != NULL && --s->refs == 0) {
        free(s);
    }
}

bool entry_same(const struct sim_entry *a, const struct sim_entry *b)
{
    return a->hash == b->hash && a->e.index == b->e.index && a->e.epoch == b->e.epoch &&
           a->e.len == b->e.len && strcmp(a->e.client_id, b->e.client_id) == 0 &&
           (a->e.len == 0 || memcmp(a->e.data, b->e.data, a->e.len) == 0);
}

void simlog_append(struct sim_log *l, struct sim_entry *s)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->at = sim_realloc(l->at, l->cap * sizeof(*l->at));
        l->prefix = sim_realloc(l->prefix, l->cap * sizeof(*l->prefix));
    }
    uint64_t prev = l->len ? l->prefix[l->len - 1] : 0;
    l->at[l->len] = s;
    l->prefix[l->len] = mix(prev * 31 + s->hash);
    l->len++;
}

void simlog_truncate(struct sim_log *l, uint64_t from)
{
    while (from >= 1 && l->len >= from) {
        entry_unref(l->at[--l->len]);
    }
}

void simlog_free(struct sim_log *l)
{
    simlog_truncate(l, 1);
    free(l->at);
    free(l->prefix);
    memset(l, 0, sizeof(*l));
}

void simlog_copy(struct sim_log *dst, const struct sim_log *src)
{
    simlog_truncate(dst, 1);
    for (size_t i = 0; i < src->len; i++) {
        src->at[i]->refs++;
        simlog_append(dst, src->at[i]);
    }
}
