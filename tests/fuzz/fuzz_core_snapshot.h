/*
 * tests/fuzz/fuzz_core_snapshot.h — the snapshot encoding (documented in
 * replica/core/snapshot.c) as fuzz_core reads and writes it: decoded field
 * by field to check what a core keeps and sends, written to forge ones.
 * Written again from the documentation, independently of snapshot.c.
 */
#ifndef FUZZ_CORE_SNAPSHOT_H
#define FUZZ_CORE_SNAPSHOT_H

#include "fuzz_util.h"

#include "bounds.h"
#include "core/core.h"
#include "validate.h"

#define SNAP_MAGIC   0x434e5352u /* "RSNC" */
#define SNAP_VERSION 1u

struct snap_session {
    uint64_t index, time_ms, epoch, hash, len;
    char cid[CORE_CLIENT_ID_MAX];
};

struct snap_view {
    uint32_t magic, version;
    uint64_t index, epoch, cfg_index, horizon, total, own;
    char config[CORE_CONFIG_TEXT_MAX];
    uint32_t n;
    struct snap_session *sessions; /* malloc'ed; snap_view_free */
    char by[CORE_ID_MAX];
};

struct rd {
    const uint8_t *p;
    size_t left;
    bool ok;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (!r->ok || r->left < n) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t rd_u(struct rd *r, unsigned bytes)
{
    const uint8_t *p = rd_take(r, bytes);
    uint64_t v = 0;
    for (unsigned i = 0; p != NULL && i < bytes; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void rd_str(struct rd *r, char *out, size_t cap)
{
    uint64_t n = rd_u(r, 4);
    const uint8_t *p = n < cap ? rd_take(r, (size_t)n) : NULL;
    if (p == NULL) {
        r->ok = false;
        out[0] = '\0';
        return;
    }
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
}

/* Every field, or false when the bytes do not have the shape. */
static bool snap_parse(const uint8_t *data, size_t len, struct snap_view *v)
{
    struct rd r = {data, len, true};
    memset(v, 0, sizeof(*v));
    v->magic = (uint32_t)rd_u(&r, 4);
    v->version = (uint32_t)rd_u(&r, 4);
    v->index = rd_u(&r, 8);
    v->epoch = rd_u(&r, 8);
    v->cfg_index = rd_u(&r, 8);
    rd_str(&r, v->config, sizeof(v->config));
    v->horizon = rd_u(&r, 8);
    v->n = (uint32_t)rd_u(&r, 4);
    if (!r.ok || v->n > r.left / 44) {
        return false;
    }
    v->sessions = calloc(v->n ? v->n : 1, sizeof(*v->sessions));
    FUZZ_CHECK(v->sessions != NULL, "out of memory");
    for (uint32_t i = 0; i < v->n; i++) {
        struct snap_session *s = &v->sessions[i];
        s->index = rd_u(&r, 8);
        s->time_ms = rd_u(&r, 8);
        s->epoch = rd_u(&r, 8);
        s->hash = rd_u(&r, 8);
        s->len = rd_u(&r, 8);
        rd_str(&r, s->cid, sizeof(s->cid));
    }
    v->total = rd_u(&r, 8);
    rd_str(&r, v->by, sizeof(v->by));
    v->own = rd_u(&r, 8);
    return r.ok && r.left == 0;
}

static void snap_view_free(struct snap_view *v)
{
    free(v->sessions);
    v->sessions = NULL;
}

/* A reason the snapshot is not one a core could keep, or NULL: the rules
 * snapshot.c decodes by (every snapshot a core installs must pass them),
 * and with `own` (one it took itself, or any in an honest run) what the
 * log it stands for makes true besides, requests being at most max_request
 * bytes. */
static const char *snap_insane(const struct snap_view *v, bool own, size_t max_request)
{
    struct core_config cfg;
    if (v->magic != SNAP_MAGIC || v->version != SNAP_VERSION) {
        return "bad magic or version";
    }
    if (v->index == 0 || v->index > LIMIT_COUNTER_MAX || v->epoch == 0 ||
        v->epoch > LIMIT_COUNTER_MAX) {
        return "index or epoch out of range";
    }
    if (v->cfg_index == 0 || v->cfg_index > v->index) {
        return "configuration index outside 1..index";
    }
    if (core_config_decode((const uint8_t *)v->config, strlen(v->config), &cfg) != 0) {
        return "configuration does not decode";
    }
    if (v->horizon == 0 || v->horizon > v->index + 1) {
        return "session horizon outside 1..index + 1";
    }
    uint64_t before = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        const struct snap_session *s = &v->sessions[i];
        if (s->index <= before || s->index < v->horizon || s->index > v->index) {
            return "sessions not ascending within horizon..index";
        }
        if (s->epoch == 0 || s->epoch > v->epoch || s->len > LIMIT_COUNTER_MAX ||
            !validate_client_id(s->cid, strlen(s->cid))) {
            return "a session with a bad epoch, length or client id";
        }
        if (own && s->len > max_request) {
            return "a session longer than any request";
        }
        before = s->index;
    }
    if (v->total > v->index || v->own > v->total) {
        return "counts out of range";
    }
    if (own && v->total < v->n) {
        return "fewer DATA entries than sessions";
    }
    if (!validate_id(v->by)) {
        return "taken by an invalid id";
    }
    return NULL;
}

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

static void w_put(struct wbuf *b, const void *data, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        FUZZ_CHECK(b->p != NULL, "out of memory");
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void w_u(struct wbuf *b, uint64_t v, unsigned bytes)
{
    uint8_t x[8];
    for (unsigned i = 0; i < bytes; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    w_put(b, x, bytes);
}

static void w_str(struct wbuf *b, const char *s, size_t n)
{
    w_u(b, n, 4);
    w_put(b, s, n);
}

#endif
