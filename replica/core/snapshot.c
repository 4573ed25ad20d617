/*
 * replica/core/snapshot.c — what stands for the entries that retention
 * dropped (dissertation 5.1, in its smallest form: the state machine here
 * is the log itself, so a snapshot holds only what the core needs of the
 * prefix it replaces).
 *
 * A snapshot at index S (always a commit index) holds: S and its epoch;
 * the configuration in force at S and its entry's index; the client
 * sessions of entries up to S and the horizon; the number of DATA entries
 * up to S, and how many of them the replica that took it appended itself
 * (which becomes its "processed" count, and everybody else's "synced").
 *
 * A replica keeps its latest snapshot encoded in memory: it is what it
 * sends a peer whose next entry it no longer holds (InstallSnapshot), and
 * what storage writes next to the log. Snapshots come from the network too,
 * so decoding checks every length and value, and refuses rather than
 * trusts.
 *
 * Encoding, little-endian: u32 magic "RSNC", u32 version 1, u64 index,
 * u64 epoch, u64 config index, str config text, u64 session horizon, u32 n,
 * n x (u64 index, u64 time_ms, u64 epoch, u64 data hash, u64 data length,
 * str client id), u64 data entries, str taken by, u64 taken by's own.
 * str = u32 length + bytes.
 */
#include "internal.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_MAGIC   0x434e5352u /* "RSNC" */
#define SNAP_VERSION 1u

/* ========================================================================
 * Encoding
 * ====================================================================== */

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

struct cursor {
    const uint8_t *p;
    size_t left;
    bool ok;
};

static const uint8_t *take(struct cursor *c, size_t n)
{
    if (!c->ok || c->left < n) {
        c->ok = false;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint32_t take_u32(struct cursor *c)
{
    const uint8_t *p = take(c, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static uint64_t take_u64(struct cursor *c)
{
    uint64_t lo = take_u32(c);
    return lo | (uint64_t)take_u32(c) << 32;
}

/* A string into out (cap bytes with the NUL); false when it does not fit. */
static bool take_str(struct cursor *c, char *out, size_t cap)
{
    uint32_t n = take_u32(c);
    const uint8_t *p = n < cap ? take(c, n) : NULL;
    if (p == NULL) {
        c->ok = false;
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* The configuration in force at index s: the newest CONFIG entry at or
 * below it still in the log, or the previous snapshot's. */
static bool config_at(struct core *c, uint64_t s, struct core_config *cfg, uint64_t *index)
{
    for (size_t k = c->n_cfg_entries; k > 0; k--) {
        uint64_t i = c->cfg_entries[k - 1];
        if (i > s) {
            continue;
        }
        const struct core_entry *e = log_entry(c, i);
        if (e != NULL && core_config_decode(e->data, e->len, cfg) == 0) {
            *index = i;
            return true;
        }
    }
    if (c->snap_cfg_index != 0) {
        *cfg = c->snap_cfg;
        *index = c->snap_cfg_index;
        return true;
    }
    return false;
}

/* Encode the snapshot at the commit index into c->snap. 0, or -1 when
 * there is nothing new to take or memory ran out. */
int snap_take(struct core *c)
{
    uint64_t s = c->commit < c->durable ? c->commit : c->durable;
    if (s == 0 || s <= c->snap_index || s != c->commit) {
        return -1; /* counts are only known exactly at the commit index */
    }
    struct core_config cfg;
    uint64_t cfg_index = 0;
    if (!config_at(c, s, &cfg, &cfg_index)) {
        return -1; /* no configuration yet: nothing worth compacting */
    }
    if (sessions_hash_upto(c, s) != 0) {
        return -1; /* storage could not read them: not this time */
    }
    char *text = malloc(CORE_CONFIG_TEXT_MAX);
    if (text == NULL) {
        return -1;
    }
    core_config_encode(&cfg, text, CORE_CONFIG_TEXT_MAX);
    struct buf b = {0};
    put_u32(&b, SNAP_MAGIC);
    put_u32(&b, SNAP_VERSION);
    uint64_t epoch = epoch_at(c, s);
    put_u64(&b, s);
    put_u64(&b, epoch);
    put_u64(&b, cfg_index);
    put_str(&b, text);
    free(text);
    /* Ids forgotten after s (the table moved on) are known again to a
     * replica that installs this: it notes every entry after s itself. */
    put_u64(&b, c->session_horizon < s + 1 ? c->session_horizon : s + 1);
    uint32_t n = 0;
    for (size_t i = 0; i < c->sessions_len; i++) {
        n += session_at(c, i)->index <= s;
    }
    put_u32(&b, n);
    for (size_t i = 0; i < c->sessions_len; i++) {
        const struct session *ss = session_at(c, i);
        if (ss->index <= s) {
            put_u64(&b, ss->index);
            put_u64(&b, (uint64_t)ss->time_ms);
            put_u64(&b, ss->epoch);
            put_u64(&b, ss->data_hash);
            put_u64(&b, ss->data_len);
            put_str(&b, ss->key);
        }
    }
    put_u64(&b, c->processed + c->synced);
    put_str(&b, c->id);
    put_u64(&b, c->processed);
    if (b.failed) {
        free(b.p);
        return -1;
    }
    free(c->snap);
    c->snap = b.p;
    c->snap_len = b.len;
    c->snap_index = s;
    c->snap_epoch = epoch;
    c->snap_cfg = cfg;
    c->snap_cfg_index = cfg_index;
    return 0;
}

/* ========================================================================
 * Decoding
 * ====================================================================== */

/* Check a snapshot and, with `apply`, make it the core's: its sessions
 * replace the table, its counts the core's, its configuration stands in
 * for CONFIG entries the log no longer has. 0, or -1 when it is malformed
 * (nothing changed). */
int snap_load(struct core *c, const uint8_t *data, size_t len, bool apply)
{
    struct cursor cur = {data, len, true};
    struct core_config cfg;
    char *text = malloc(CORE_CONFIG_TEXT_MAX);
    if (text == NULL) {
        return -1;
    }
    bool ok = take_u32(&cur) == SNAP_MAGIC && take_u32(&cur) == SNAP_VERSION;
    uint64_t s = take_u64(&cur), epoch = take_u64(&cur), cfg_index = take_u64(&cur);
    ok = ok && cur.ok && s > 0 && s <= LIMIT_COUNTER_MAX && epoch > 0 &&
         epoch <= LIMIT_COUNTER_MAX && cfg_index > 0 && cfg_index <= s &&
         take_str(&cur, text, CORE_CONFIG_TEXT_MAX) &&
         core_config_decode((const uint8_t *)text, strlen(text), &cfg) == 0;
    free(text);
    uint64_t horizon = take_u64(&cur);
    uint32_t n = take_u32(&cur);
    ok = ok && cur.ok && horizon >= 1 && horizon <= s + 1 && n <= (uint32_t)-1 / 64 &&
         (size_t)n * 44 <= cur.left;
    /* Sessions: ascending indexes in [horizon, s], valid client ids. */
    const uint8_t *sessions = cur.p;
    uint64_t before = 0;
    for (uint32_t i = 0; ok && i < n; i++) {
        char key[CORE_CLIENT_ID_MAX];
        uint64_t index = take_u64(&cur);
        take_u64(&cur);
        uint64_t e = take_u64(&cur);
        take_u64(&cur);
        uint64_t dlen = take_u64(&cur);
        ok = take_str(&cur, key, sizeof(key)) && validate_client_id(key, strlen(key)) &&
             index > before && index >= horizon && index <= s && e > 0 && e <= epoch &&
             dlen <= LIMIT_COUNTER_MAX;
        before = index;
    }
    uint64_t total = take_u64(&cur);
    char by[CORE_ID_MAX];
    ok = ok && take_str(&cur, by, sizeof(by)) && validate_id(by);
    uint64_t own = take_u64(&cur);
    ok = ok && cur.ok && cur.left == 0 && total <= s && own <= total && n <= total;
    if (!ok) {
        return -1;
    }
    if (!apply) {
        return 0;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, data, len);
    free(c->snap);
    c->snap = copy;
    c->snap_len = len;
    c->snap_index = s;
    c->snap_epoch = epoch;
    c->snap_cfg = cfg;
    c->snap_cfg_index = cfg_index;
    /* Another's snapshot says only how many its taker appended. What this
     * replica appended and counted before is in the prefix the snapshot
     * replaces, unless it was never committed (a deposed primary's last
     * few), so its count stands, within the total. */
    bool mine = strcmp(by, c->id) == 0;
    c->processed = mine ? own : c->processed < total ? c->processed : total;
    c->synced = total - c->processed;
    sessions_reset(c, horizon);
    cur = (struct cursor){sessions, (size_t)(data + len - sessions), true};
    for (uint32_t i = 0; i < n; i++) {
        char key[CORE_CLIENT_ID_MAX];
        struct session ss = {.key = key};
        ss.index = take_u64(&cur);
        ss.time_ms = (int64_t)take_u64(&cur);
        ss.epoch = take_u64(&cur);
        ss.data_hash = take_u64(&cur);
        ss.data_len = take_u64(&cur);
        ss.hashed = true;
        take_str(&cur, key, sizeof(key));
        session_note(c, &ss);
    }
    return 0;
}

/* Whether data is a well-formed snapshot at index, epoch (the message's
 * header must say what the snapshot says). */
int snap_check(const uint8_t *data, size_t len, uint64_t index, uint64_t epoch)
{
    struct cursor cur = {data, len, true};
    if (take_u32(&cur) != SNAP_MAGIC || take_u32(&cur) != SNAP_VERSION || take_u64(&cur) != index ||
        take_u64(&cur) != epoch) {
        return -1;
    }
    return snap_load(NULL, data, len, false);
}

void snap_free(struct core *c)
{
    free(c->snap);
    c->snap = NULL;
    c->snap_len = 0;
}
