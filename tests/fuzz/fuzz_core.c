/*
 * tests/fuzz/fuzz_core.c — three protocol cores (replica/core) driven by an
 * arbitrary sequence of inputs (fuzz_core_ops.h).
 *
 * The cores r1..r3 send each other real messages, which queue until an op
 * delivers, duplicates, reorders or drops them. Other ops forge messages of
 * every type from any id (the cores', the receiver's own, unknown ones) with
 * arbitrary epochs and indexes up to 2^53 - 1 (snapshots among them: raw
 * bytes, the encoding with fuzzed fields, or a real one re-headed), alter
 * queued messages, tick with a clock that never goes back, send client
 * requests (with fuzzed seen_index), report peers up and down, flush,
 * compact (core_compact), make storage reads or the disk fail, and restart a
 * core from what it persisted (core_open from a summary and the snapshot,
 * as the adapter does; sometimes core_new).
 *
 * Every message travels the way the adapter sends it: codec_from_core,
 * wire_pack, wire_unpack, codec_to_core. So a core only ever receives what
 * the real validation layer lets through, and whatever a core sends must be
 * accepted by that layer on the other side (or the cluster would wedge).
 *
 * Each node's storage is the harness's: the hard state, the log from its
 * first retained index (what a snapshot stands for is gone), the snapshot
 * and the checkpoint, as the recording sink persisted them. The core reads
 * old entries back through its core_store, from that log only; some nodes
 * cache 1 or 600 bytes, so most reads go there.
 *
 * After every input, the core's update is carried out with the production
 * core_update_apply into the recording sink, and confirmed durable at once
 * (core_advance). The sink records what each core does and checks, as it
 * happens and after every op, what a core must guarantee on its own
 * whatever it is told:
 *   - persist_state comes before an epoch or vote is visible in a message
 *     or a client reply;
 *     the durable epoch never goes down; one vote per epoch; the bootstrap
 *     list, once persisted, never changes;
 *   - it never believes in two different primaries in one epoch (seen
 *     through core_primary / core_epoch and its own `elected` events);
 *   - its epoch never goes down; its commit index never goes back and never
 *     exceeds its last index; no truncation at or below the commit index;
 *   - the log as persist_entries describes it is the core's log, with
 *     epochs that never go down nor exceed the current epoch;
 *   - retention: the store is only asked for entries it holds, never one
 *     before the core's first index; core_entry_at is NULL there; the first
 *     index never passes commit + 1; a snapshot it keeps or sends is well
 *     formed (decoded field by field here), at or below its commit index,
 *     of the epoch its log holds there, persisted before it is sent; an
 *     installed one replaces the log; committed DATA entries counted
 *     (processed + synced, checkpoints) equal the snapshot's count plus the
 *     log's;
 *   - each client request is answered at most once; OK only when committed,
 *     on an entry with its id and data; appended only when no entry after
 *     its seen_index has its id (else it is a retry: applied twice);
 *     EXPIRED only when the horizon is past seen_index + 1;
 *   - every message it sends passes the receiver's wire_unpack and codec.
 * While no message was forged or altered (an "honest" run), it also checks
 * the cluster: one primary per epoch, one committed log (every node's
 * commits, every snapshot's index, epoch, sessions and count agree with it).
 * Crashes, assertions and sanitizer reports count as failures too.
 */
#include "fuzz_util.h"

#include <errno.h>
#include <stdarg.h>

#include "bounds.h"
#include "codec.h"
#include "core/core.h"
#include "frame.h"
#include "fuzz_core_ops.h"
#include "fuzz_core_snapshot.h"
#include "validate.h"
#include "wire.h"

#define N_NODES       FUZZ_CORE_NODES
#define MAX_QUEUE     256
#define MAX_TOKENS    4096
#define MAX_SEEN      512
#define MAX_REQUEST   64      /* max_request_bytes */
#define MAX_COMMITTED 1000000 /* indexes the honest committed log tracks */

/* Ids a message can come from or a peer event can name: the three cores,
 * then ids no core has (valid ones: the wire refuses any other). */
static char long_id[CORE_ID_MAX];
static const char *ids[] = {"r1", "r2", "r3", "r4", "x.example:7101", long_id};
#define N_IDS (sizeof(ids) / sizeof(ids[0]))

static char long_cid[CORE_CLIENT_ID_MAX];         /* 127 bytes: the longest valid */
static char too_long_cid[CORE_CLIENT_ID_MAX + 1]; /* 128 bytes */
static const char *client_ids[] = {"c1",        "c2",       "c3",     "",
                                   "bad\x01id", "\xff\xfe", long_cid, too_long_cid};
#define N_CIDS (sizeof(client_ids) / sizeof(client_ids[0]))

struct seen_primary {
    uint64_t epoch;
    char id[CORE_ID_MAX];
};

struct node {
    struct core_sink sink;
    struct core *c;
    int idx;
    struct core_options opts;
    bool may_core_new; /* restart with core_new while the log starts at 1 */
    uint64_t rng;
    /* What it persisted: the state a restart recovers. log[k] is the entry
     * at base + 1 + k (deep copies); entries up to base are gone. */
    struct core_hard_state hs;
    struct core_entry *log;
    size_t n_log;
    size_t cap_log;
    uint64_t base;
    uint8_t *snap; /* the snapshot (NULL: none) */
    size_t snap_len;
    uint64_t snap_index;
    uint64_t snap_epoch;
    uint64_t snap_total; /* DATA entries it stands for */
    struct core_checkpoint cp;
    /* The store: entries lent until the next read (deep copies, so that a
     * use after that is a use after free), reads that are to fail. */
    struct core_entry *lent;
    size_t n_lent;
    unsigned fail_reads;
    bool disk_failed;
    bool compacted; /* core_compact said true: a snapshot must follow */
    /* Checker state. */
    uint64_t max_epoch;
    uint64_t last_commit; /* this incarnation's */
    uint64_t checked;     /* committed entries compared with W.committed */
    struct seen_primary seen[MAX_SEEN];
    unsigned n_seen;
    char traced[200]; /* the state last traced */
};

enum token_kind {
    TOKEN_WRITE,
    TOKEN_READ,
    TOKEN_REMOVE,
};

/* What a call was given, to judge its answer. */
struct token {
    int8_t node;
    uint8_t kind; /* enum token_kind */
    uint8_t replies;
    uint8_t cid; /* writes: index into client_ids */
    size_t len;
    uint64_t hash; /* of the data */
    uint64_t seen; /* seen_index */
};

struct queued {
    int to;
    uint8_t *frame; /* as wire_pack made it */
    size_t len;
};

static struct world {
    struct node n[N_NODES];
    struct queued q[MAX_QUEUE];
    size_t nq;
    int64_t now;
    uint64_t next_token;
    struct token tok[MAX_TOKENS];
    /* Honest run: nothing forged or altered yet. The committed log as the
     * cores committed it (epoch 0: an index nobody could show), and who
     * was elected in which epoch. */
    bool honest;
    struct core_entry *committed;
    size_t n_committed;
    size_t cap_committed;
    struct seen_primary elected[MAX_SEEN];
    unsigned n_elected;
    bool harness_read; /* the harness reads: no read fails */
} W;

/* ========================================================================
 * Helpers
 * ====================================================================== */

static int node_index(const char *id)
{
    for (int i = 0; i < N_NODES; i++) {
        if (strcmp(ids[i], id) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *msg_name(const struct core_msg *m)
{
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST:
        return m->vote_request.pre_vote ? "pre-vote request" : "vote request";
    case CORE_MSG_VOTE_RESPONSE:
        return m->vote_response.pre_vote ? "pre-vote response" : "vote response";
    case CORE_MSG_APPEND:
        return "append";
    case CORE_MSG_APPEND_RESPONSE:
        return "append response";
    case CORE_MSG_TIMEOUT_NOW:
        return "timeout now";
    case CORE_MSG_SNAPSHOT:
        return "snapshot";
    }
    return "?";
}

/* FUZZ_CORE_TRACE=1 in the environment: every op, message, persist and
 * state change on stderr, to read what a failing input does. */
static bool tracing;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace(const char *fmt, ...)
{
    if (!tracing) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%7lld ", (long long)W.now);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *describe(const struct core_msg *m, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "%s epoch %llu", msg_name(m), (unsigned long long)m->epoch);
    size_t used = k > 0 && (size_t)k < cap ? (size_t)k : cap - 1;
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST:
        used += (size_t)snprintf(buf + used, cap - used, " last %llu/%llu boot %u",
                                 (unsigned long long)m->vote_request.last_index,
                                 (unsigned long long)m->vote_request.last_epoch,
                                 m->vote_request.n_bootstrap);
        break;
    case CORE_MSG_VOTE_RESPONSE:
        used += (size_t)snprintf(buf + used, cap - used, " %s",
                                 m->vote_response.granted ? "granted" : "refused");
        break;
    case CORE_MSG_APPEND:
        used += (size_t)snprintf(buf + used, cap - used, " prev %llu/%llu commit %llu entries",
                                 (unsigned long long)m->append.prev_index,
                                 (unsigned long long)m->append.prev_epoch,
                                 (unsigned long long)m->append.commit_index);
        for (size_t i = 0; i < m->append.n_entries && used < cap - 24; i++) {
            used += (size_t)snprintf(buf + used, cap - used, " %llu:%llu",
                                     (unsigned long long)m->append.entries[i].index,
                                     (unsigned long long)m->append.entries[i].epoch);
        }
        break;
    case CORE_MSG_APPEND_RESPONSE:
        snprintf(buf + used, cap - used, " %s match %llu hint %llu",
                 m->append_response.success ? "ok" : "failed",
                 (unsigned long long)m->append_response.match_index,
                 (unsigned long long)m->append_response.hint_index);
        break;
    case CORE_MSG_TIMEOUT_NOW:
        break;
    case CORE_MSG_SNAPSHOT:
        snprintf(buf + used, cap - used, " at %llu/%llu, %zu bytes",
                 (unsigned long long)m->snapshot.index, (unsigned long long)m->snapshot.epoch,
                 m->snapshot.len);
        break;
    }
    return buf;
}

static void entry_copy(struct core_entry *dst, const struct core_entry *src)
{
    *dst = *src;
    dst->client_id = fuzz_strndup(src->client_id, strlen(src->client_id));
    dst->primary = fuzz_strndup(src->primary, strlen(src->primary));
    dst->data = fuzz_dup(src->data, src->len);
}

static void entry_free(struct core_entry *e)
{
    free((void *)e->client_id);
    free((void *)e->primary);
    free((void *)e->data);
}

/* The same hash the core's sessions use (FNV-1a), written again here. */
static uint64_t fnv(const uint8_t *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static bool same_entry(const struct core_entry *a, const struct core_entry *b)
{
    return a->epoch == b->epoch && a->type == b->type && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0) &&
           strcmp(a->client_id, b->client_id) == 0 && strcmp(a->primary, b->primary) == 0 &&
           a->time_ms == b->time_ms;
}

static void note_primary(struct node *n, uint64_t epoch, const char *id, const char *how)
{
    for (unsigned i = 0; i < n->n_seen && i < MAX_SEEN; i++) {
        if (n->seen[i].epoch == epoch) {
            FUZZ_CHECK(strcmp(n->seen[i].id, id) == 0,
                       "%s believes in two primaries in epoch %llu: %s, then %s (%s)", n->opts.id,
                       (unsigned long long)epoch, n->seen[i].id, id, how);
            return;
        }
    }
    struct seen_primary *s = &n->seen[n->n_seen++ % MAX_SEEN];
    s->epoch = epoch;
    snprintf(s->id, sizeof(s->id), "%s", id);
}

/* ========================================================================
 * Persisted logs
 * ====================================================================== */

static uint64_t log_last(const struct node *n)
{
    return n->base + n->n_log;
}

/* The persisted entry at index, or NULL when the log does not hold it. */
static const struct core_entry *log_at(const struct node *n, uint64_t index)
{
    return index > n->base && index <= log_last(n) ? &n->log[index - n->base - 1] : NULL;
}

static void log_push_copy(struct node *n, const struct core_entry *e)
{
    if (n->n_log == n->cap_log) {
        n->cap_log = n->cap_log ? n->cap_log * 2 : 16;
        n->log = realloc(n->log, n->cap_log * sizeof(*n->log));
        FUZZ_CHECK(n->log != NULL, "out of memory");
    }
    entry_copy(&n->log[n->n_log++], e);
}

/* Entries before `before` leave the persisted log. */
static void log_drop_before(struct node *n, uint64_t before)
{
    if (before <= n->base + 1) {
        return;
    }
    size_t k = before - n->base - 1 < n->n_log ? (size_t)(before - n->base - 1) : n->n_log;
    for (size_t i = 0; i < k; i++) {
        entry_free(&n->log[i]);
    }
    memmove(n->log, n->log + k, (n->n_log - k) * sizeof(*n->log));
    n->n_log -= k;
    n->base = before - 1;
}

static void log_clear(struct node *n, uint64_t base)
{
    for (size_t i = 0; i < n->n_log; i++) {
        entry_free(&n->log[i]);
    }
    n->n_log = 0;
    n->base = base;
}

/* The harness's own reads of a core's log (never made to fail). */
static const struct core_entry *entry_at(struct node *n, uint64_t index)
{
    W.harness_read = true;
    const struct core_entry *e = core_entry_at(n->c, index);
    W.harness_read = false;
    return e;
}

/* ========================================================================
 * The honest run's committed log
 * ====================================================================== */

/* The committed entry at index, if the run is honest and it is known. */
static const struct core_entry *committed_at(uint64_t index)
{
    if (!W.honest || index == 0 || index > W.n_committed || W.committed[index - 1].epoch == 0) {
        return NULL;
    }
    return &W.committed[index - 1];
}

/* A node committed e at index: the one committed log agrees. */
static void committed_note(struct node *n, uint64_t index, const struct core_entry *e)
{
    if (index > MAX_COMMITTED) {
        return;
    }
    while (W.n_committed < index) {
        if (W.n_committed == W.cap_committed) {
            W.cap_committed = W.cap_committed ? W.cap_committed * 2 : 64;
            W.committed = realloc(W.committed, W.cap_committed * sizeof(*W.committed));
            FUZZ_CHECK(W.committed != NULL, "out of memory");
        }
        memset(&W.committed[W.n_committed++], 0, sizeof(*W.committed)); /* unknown */
    }
    struct core_entry *c = &W.committed[index - 1];
    if (c->epoch == 0) {
        entry_copy(c, e);
        return;
    }
    FUZZ_CHECK(
        same_entry(c, e),
        "%s commits entry %llu of epoch %llu (%s, \"%s\"), but epoch %llu's (%s, \"%s\") was "
        "committed there",
        n->opts.id, (unsigned long long)index, (unsigned long long)e->epoch, e->primary,
        e->client_id, (unsigned long long)c->epoch, c->primary, c->client_id);
}

/* A snapshot stands for committed entries: its index and epoch, its
 * sessions and its count of DATA entries are the committed log's. */
static void check_snapshot_committed(struct node *n, const struct snap_view *v)
{
    if (!W.honest || v->index > MAX_COMMITTED) {
        return;
    }
    FUZZ_CHECK(v->index <= W.n_committed,
               "%s keeps a snapshot at %llu/%llu, past the committed log (%zu entries)", n->opts.id,
               (unsigned long long)v->index, (unsigned long long)v->epoch, W.n_committed);
    const struct core_entry *at = committed_at(v->index);
    FUZZ_CHECK(at == NULL || at->epoch == v->epoch,
               "%s keeps a snapshot at %llu/%llu, but the entry committed there is of epoch %llu",
               n->opts.id, (unsigned long long)v->index, (unsigned long long)v->epoch,
               (unsigned long long)at->epoch);
    uint64_t total = 0, in_horizon = 0;
    for (uint64_t i = 1; i <= v->index; i++) {
        const struct core_entry *e = committed_at(i);
        if (e == NULL) {
            return; /* not all known: the rest cannot be compared */
        }
        if (e->type == CORE_ENTRY_DATA) {
            total++;
            in_horizon += i >= v->horizon;
        }
    }
    FUZZ_CHECK(v->total == total, "%s's snapshot at %llu counts %llu DATA entries, committed %llu",
               n->opts.id, (unsigned long long)v->index, (unsigned long long)v->total,
               (unsigned long long)total);
    FUZZ_CHECK(v->n == in_horizon,
               "%s's snapshot at %llu holds %u sessions, %llu DATA entries from its horizon %llu",
               n->opts.id, (unsigned long long)v->index, v->n, (unsigned long long)in_horizon,
               (unsigned long long)v->horizon);
    for (uint32_t i = 0; i < v->n; i++) {
        const struct snap_session *s = &v->sessions[i];
        const struct core_entry *e = committed_at(s->index);
        FUZZ_CHECK(e != NULL && e->type == CORE_ENTRY_DATA && strcmp(e->client_id, s->cid) == 0 &&
                       e->epoch == s->epoch && e->len == s->len &&
                       fnv(e->data, e->len) == s->hash && (uint64_t)e->time_ms == s->time_ms,
                   "%s's snapshot at %llu has a session at %llu (\"%.20s\") that is not the "
                   "committed entry's",
                   n->opts.id, (unsigned long long)v->index, (unsigned long long)s->index, s->cid);
    }
}

/* DATA entries 1..upto as the node's storage knows them: the snapshot's
 * count, then its log's. False when it cannot say. */
static bool count_data(const struct node *n, uint64_t upto, uint64_t *count)
{
    if (upto < n->snap_index) {
        return false;
    }
    uint64_t k = n->snap != NULL ? n->snap_total : 0;
    for (uint64_t i = n->snap_index + 1; i <= upto; i++) {
        const struct core_entry *e = log_at(n, i);
        if (e == NULL) {
            return false;
        }
        k += e->type == CORE_ENTRY_DATA;
    }
    *count = k;
    return true;
}

/* ========================================================================
 * The recording io
 * ====================================================================== */

/* Whatever leaves the core must already be durable (core.h's contract). */
static void check_durable_before_send(struct node *n, const struct core_msg *m)
{
    if (n->c == NULL) {
        return;
    }
    struct core_status st;
    core_get_status(n->c, W.now, &st);
    FUZZ_CHECK(st.epoch == n->hs.epoch && strcmp(st.voted_for, n->hs.voted_for) == 0,
               "%s sends this %s in epoch %llu (vote \"%s\") before persisting it (durable: epoch "
               "%llu, vote \"%s\")",
               n->opts.id, msg_name(m), (unsigned long long)st.epoch, st.voted_for,
               (unsigned long long)n->hs.epoch, n->hs.voted_for);
    bool pre = (m->type == CORE_MSG_VOTE_REQUEST && m->vote_request.pre_vote) ||
               (m->type == CORE_MSG_VOTE_RESPONSE && m->vote_response.pre_vote);
    if (!pre) {
        FUZZ_CHECK(m->epoch <= n->hs.epoch, "%s sends a %s in epoch %llu, durable epoch %llu",
                   n->opts.id, msg_name(m), (unsigned long long)m->epoch,
                   (unsigned long long)n->hs.epoch);
    }
    if (m->type == CORE_MSG_SNAPSHOT) {
        /* What it sends is the snapshot it keeps, which is well formed
         * (checked when it was persisted). */
        FUZZ_CHECK(n->snap != NULL && m->snapshot.index == n->snap_index &&
                       m->snapshot.epoch == n->snap_epoch && m->snapshot.len == n->snap_len &&
                       memcmp(m->snapshot.data, n->snap, n->snap_len) == 0,
                   "%s sends a snapshot at %llu/%llu (%zu bytes) that is not the one it persisted "
                   "(%llu/%llu, %zu bytes)",
                   n->opts.id, (unsigned long long)m->snapshot.index,
                   (unsigned long long)m->snapshot.epoch, m->snapshot.len,
                   (unsigned long long)n->snap_index, (unsigned long long)n->snap_epoch,
                   n->snap_len);
        FUZZ_CHECK(m->snapshot.index <= core_commit_index(n->c),
                   "%s sends a snapshot at %llu, commit index %llu", n->opts.id,
                   (unsigned long long)m->snapshot.index,
                   (unsigned long long)core_commit_index(n->c));
    }
}

/* A frame as the adapter would send m from `from`; NULL when the local
 * wire layer refuses what it packed (err says why). */
static uint8_t *encode(const char *from, const struct core_msg *m, size_t *len)
{
    struct codec_out o;
    FUZZ_CHECK(codec_from_core(&o, from, m) == 0, "codec_from_core failed");
    uint8_t *frame = wire_pack(&o.env, len);
    codec_out_release(&o);
    FUZZ_CHECK(frame != NULL, "wire_pack failed");
    return frame;
}

/* What a receiver's wire layer makes of a frame: 1 and the message (free
 * env and scratch afterwards), or 0 when it is refused. */
static int decode(const uint8_t *frame, size_t len, Envelope **env, struct core_msg *m,
                  struct core_entry **scratch, char *err, size_t errlen)
{
    *scratch = NULL;
    *env = wire_unpack(frame + FRAME_HEADER_BYTES, len - FRAME_HEADER_BYTES, err, errlen);
    if (*env == NULL) {
        return 0;
    }
    int rc = codec_to_core(*env, m, scratch, err, errlen);
    if (rc != 1) {
        free(*scratch);
        *scratch = NULL;
        wire_free(*env);
        *env = NULL;
        if (rc == 0) {
            snprintf(err, errlen, "not a core message");
        }
        return 0;
    }
    return 1;
}

static void io_send(struct core_sink *io, const char *to, const struct core_msg *m, bool early)
{
    struct node *n = io->data;
    check_durable_before_send(n, m);
    FUZZ_CHECK(to != NULL && to[0] != '\0' && strlen(to) < CORE_ID_MAX, "send to a bad id");
    FUZZ_CHECK(strcmp(to, n->opts.id) != 0, "%s sends a %s to itself", n->opts.id, msg_name(m));
    FUZZ_CHECK(!early || m->type == CORE_MSG_APPEND, "%s sends a %s early", n->opts.id,
               msg_name(m));

    size_t len;
    uint8_t *frame = encode(n->opts.id, m, &len);
    /* The receiving side must take it, or the cluster wedges on it. */
    Envelope *env;
    struct core_msg back;
    struct core_entry *scratch;
    char err[256];
    FUZZ_CHECK(decode(frame, len, &env, &back, &scratch, err, sizeof(err)) == 1,
               "%s sends this %s (epoch %llu), which every receiver refuses: %s", n->opts.id,
               msg_name(m), (unsigned long long)m->epoch, err);
    free(scratch);
    wire_free(env);

    char what[256];
    trace("  %s -> %s: %s", n->opts.id, to, tracing ? describe(m, what, sizeof(what)) : "");
    int t = node_index(to);
    if (t < 0 || W.nq == MAX_QUEUE) {
        free(frame); /* nobody there, or the network is full: lost */
        return;
    }
    W.q[W.nq++] = (struct queued){t, frame, len};
}

static void io_persist_state(struct core_sink *io, const struct core_hard_state *hs)
{
    struct node *n = io->data;
    FUZZ_CHECK(hs->epoch >= n->hs.epoch, "%s persists epoch %llu after %llu", n->opts.id,
               (unsigned long long)hs->epoch, (unsigned long long)n->hs.epoch);
    if (hs->epoch == n->hs.epoch && n->hs.voted_for[0] != '\0') {
        FUZZ_CHECK(strcmp(hs->voted_for, n->hs.voted_for) == 0,
                   "%s votes twice in epoch %llu: for %s, then for \"%s\"", n->opts.id,
                   (unsigned long long)hs->epoch, n->hs.voted_for, hs->voted_for);
    }
    FUZZ_CHECK(memchr(hs->voted_for, '\0', CORE_ID_MAX) != NULL, "vote not terminated");
    FUZZ_CHECK(hs->n_bootstrap <= CORE_MAX_MEMBERS, "%u bootstrap ids", hs->n_bootstrap);
    if (n->hs.n_bootstrap > 0) {
        bool same = hs->n_bootstrap == n->hs.n_bootstrap;
        for (unsigned i = 0; same && i < hs->n_bootstrap; i++) {
            same = strcmp(hs->bootstrap[i], n->hs.bootstrap[i]) == 0;
        }
        FUZZ_CHECK(same, "%s changes its persisted bootstrap list", n->opts.id);
    }
    n->hs = *hs;
    trace("  %s persists epoch %llu vote \"%s\" bootstrap %u", n->opts.id,
          (unsigned long long)hs->epoch, hs->voted_for, hs->n_bootstrap);
}

static void io_persist_entries(struct core_sink *io, uint64_t truncate_from,
                               const struct core_entry *es, size_t count)
{
    struct node *n = io->data;
    trace("  %s persists %zu entries from %llu (truncate from %llu)", n->opts.id, count,
          count ? (unsigned long long)es[0].index : 0ULL, (unsigned long long)truncate_from);
    if (truncate_from != 0) {
        FUZZ_CHECK(truncate_from > n->base && truncate_from <= log_last(n) + 1,
                   "%s truncates from %llu, its log holds %llu..%llu", n->opts.id,
                   (unsigned long long)truncate_from, (unsigned long long)n->base + 1,
                   (unsigned long long)log_last(n));
        if (n->c != NULL) {
            /* Against the commit index before this op: within one batch the
             * truncation comes first and the commit may move after it. */
            FUZZ_CHECK(truncate_from > n->last_commit,
                       "%s truncates from %llu, at or below its commit index %llu", n->opts.id,
                       (unsigned long long)truncate_from, (unsigned long long)n->last_commit);
        }
        while (log_last(n) >= truncate_from) {
            entry_free(&n->log[--n->n_log]);
        }
    }
    for (size_t i = 0; i < count; i++) {
        FUZZ_CHECK(es[i].index == log_last(n) + 1, "%s persists entry %llu after %llu", n->opts.id,
                   (unsigned long long)es[i].index, (unsigned long long)log_last(n));
        log_push_copy(n, &es[i]);
    }
}

/* A snapshot to keep: taken here (entries before drop_before may go) or
 * installed (the log is replaced and continues after it). */
static void io_persist_snapshot(struct core_sink *io, const struct core_update *u)
{
    struct node *n = io->data;
    uint64_t s = u->snapshot_index;
    trace("  %s persists a snapshot at %llu/%llu (%zu bytes, %s, drop before %llu)", n->opts.id,
          (unsigned long long)s, (unsigned long long)u->snapshot_epoch, u->snapshot_len,
          u->snapshot_reset ? "installed" : "taken", (unsigned long long)u->drop_before);
    struct snap_view v;
    FUZZ_CHECK(snap_parse(u->snapshot_data, u->snapshot_len, &v),
               "%s keeps a snapshot (%zu bytes) that does not decode", n->opts.id, u->snapshot_len);
    const char *why = snap_insane(&v, !u->snapshot_reset || W.honest, MAX_REQUEST);
    FUZZ_CHECK(why == NULL, "%s keeps a snapshot at %llu: %s", n->opts.id, (unsigned long long)s,
               why);
    FUZZ_CHECK(v.index == s && v.epoch == u->snapshot_epoch,
               "%s keeps a snapshot said to be at %llu/%llu that is at %llu/%llu", n->opts.id,
               (unsigned long long)s, (unsigned long long)u->snapshot_epoch,
               (unsigned long long)v.index, (unsigned long long)v.epoch);
    FUZZ_CHECK(s > n->snap_index, "%s keeps a snapshot at %llu after one at %llu", n->opts.id,
               (unsigned long long)s, (unsigned long long)n->snap_index);
    FUZZ_CHECK(n->c != NULL && s <= core_commit_index(n->c),
               "%s keeps a snapshot at %llu, commit index %llu", n->opts.id, (unsigned long long)s,
               n->c ? (unsigned long long)core_commit_index(n->c) : 0ULL);
    if (!u->snapshot_reset) {
        FUZZ_CHECK(n->compacted, "%s takes a snapshot nobody asked for", n->opts.id);
        n->compacted = false;
        FUZZ_CHECK(strcmp(v.by, n->opts.id) == 0, "%s takes a snapshot signed \"%s\"", n->opts.id,
                   v.by);
        const struct core_entry *e = log_at(n, s);
        FUZZ_CHECK(e != NULL && e->epoch == v.epoch,
                   "%s takes a snapshot at %llu/%llu; its log there holds epoch %llu", n->opts.id,
                   (unsigned long long)s, (unsigned long long)v.epoch,
                   e ? (unsigned long long)e->epoch : 0ULL);
        FUZZ_CHECK(u->drop_before >= 1 && u->drop_before <= s + 1 &&
                       u->drop_before == core_first_index(n->c),
                   "%s may drop entries before %llu (snapshot at %llu, first index %llu)",
                   n->opts.id, (unsigned long long)u->drop_before, (unsigned long long)s,
                   (unsigned long long)core_first_index(n->c));
        uint64_t count;
        FUZZ_CHECK(count_data(n, s, &count) && count == v.total,
                   "%s's snapshot at %llu counts %llu DATA entries, its storage %llu", n->opts.id,
                   (unsigned long long)s, (unsigned long long)v.total, (unsigned long long)count);
    } else {
        FUZZ_CHECK(u->drop_before == s + 1, "%s installs a snapshot at %llu, drop before %llu",
                   n->opts.id, (unsigned long long)s, (unsigned long long)u->drop_before);
    }
    check_snapshot_committed(n, &v);
    free(n->snap);
    n->snap = fuzz_dup(u->snapshot_data, u->snapshot_len);
    n->snap_len = u->snapshot_len;
    n->snap_index = s;
    n->snap_epoch = v.epoch;
    n->snap_total = v.total;
    if (u->snapshot_reset) {
        log_clear(n, s);
    } else {
        log_drop_before(n, u->drop_before);
    }
    snap_view_free(&v);
}

static void io_persist_checkpoint(struct core_sink *io, const struct core_checkpoint *cp)
{
    struct node *n = io->data;
    trace("  %s persists checkpoint commit %llu processed %llu synced %llu", n->opts.id,
          (unsigned long long)cp->commit, (unsigned long long)cp->processed,
          (unsigned long long)cp->synced);
    FUZZ_CHECK(n->c != NULL && cp->commit <= core_commit_index(n->c) && cp->commit <= log_last(n),
               "%s checkpoints commit %llu, commit index %llu, log of %llu", n->opts.id,
               (unsigned long long)cp->commit,
               n->c ? (unsigned long long)core_commit_index(n->c) : 0ULL,
               (unsigned long long)log_last(n));
    uint64_t count;
    if (count_data(n, cp->commit, &count)) {
        FUZZ_CHECK(cp->processed + cp->synced == count,
                   "%s checkpoints %llu + %llu DATA entries up to %llu; its storage holds %llu",
                   n->opts.id, (unsigned long long)cp->processed, (unsigned long long)cp->synced,
                   (unsigned long long)cp->commit, (unsigned long long)count);
    }
    n->cp = *cp;
}

/* A write's answer, against what was asked (see the file comment). */
static void check_write_reply(struct node *n, uint64_t token, const struct core_reply *r)
{
    const struct token *t = &W.tok[token];
    const char *cid = client_ids[t->cid];
    bool valid = validate_client_id(cid, strlen(cid)) && t->len <= MAX_REQUEST;
    uint64_t first = core_first_index(n->c);
    const struct core_entry *e = NULL;
    if (r->index >= first && r->index <= core_last_index(n->c)) {
        e = entry_at(n, r->index);
    } else if (r->index < first) {
        e = committed_at(r->index);
    }
    switch (r->status) {
    case CORE_REPLY_OK:
        FUZZ_CHECK(valid, "%s answers OK to an invalid request", n->opts.id);
        FUZZ_CHECK(r->index >= 1 && r->index <= core_commit_index(n->c),
                   "%s answers OK at index %llu, commit index %llu", n->opts.id,
                   (unsigned long long)r->index, (unsigned long long)core_commit_index(n->c));
        FUZZ_CHECK(e != NULL || r->index < first, "%s answers OK at %llu, which it cannot read",
                   n->opts.id, (unsigned long long)r->index);
        if (e != NULL) {
            FUZZ_CHECK(e->epoch == r->epoch, "%s answers OK with the wrong epoch", n->opts.id);
            FUZZ_CHECK(e->type == CORE_ENTRY_DATA && strcmp(e->client_id, cid) == 0 &&
                           e->len == t->len && fnv(e->data, e->len) == t->hash,
                       "%s answers OK at %llu, an entry (\"%.20s\", %zu bytes) that is not this "
                       "request's (\"%.20s\", %zu bytes)",
                       n->opts.id, (unsigned long long)r->index, e->client_id, e->len, cid, t->len);
            FUZZ_CHECK(r->primary[0] == '\0' || strcmp(r->primary, e->primary) == 0,
                       "%s answers OK at %llu as processed by %s, appended by %s", n->opts.id,
                       (unsigned long long)r->index, r->primary, e->primary);
        }
        break;
    case CORE_REPLY_EXPIRED:
        FUZZ_CHECK(t->seen != CORE_SEEN_UNKNOWN && r->index > t->seen + 1,
                   "%s answers EXPIRED (horizon %llu) to a request that saw %llu", n->opts.id,
                   (unsigned long long)r->index, (unsigned long long)t->seen);
        break;
    case CORE_REPLY_CONFLICT:
        FUZZ_CHECK(valid, "%s answers CONFLICT to an invalid request", n->opts.id);
        FUZZ_CHECK(e == NULL || (e->type == CORE_ENTRY_DATA && strcmp(e->client_id, cid) == 0 &&
                                 (e->len != t->len || fnv(e->data, e->len) != t->hash)),
                   "%s answers CONFLICT at %llu, not another write of this id", n->opts.id,
                   (unsigned long long)r->index);
        break;
    case CORE_REPLY_REJECTED:
        FUZZ_CHECK(!valid, "%s rejects a valid request", n->opts.id);
        break;
    case CORE_REPLY_NOT_PRIMARY:
    case CORE_REPLY_UNKNOWN:
        break;
    default:
        FUZZ_CHECK(false, "%s answers a write with status %d", n->opts.id, (int)r->status);
    }
}

static void io_reply(struct core_sink *io, uint64_t token, const struct core_reply *r)
{
    struct node *n = io->data;
    FUZZ_CHECK(token >= 1 && token < W.next_token && W.tok[token].node == n->idx,
               "%s answers token %llu it was never given", n->opts.id, (unsigned long long)token);
    FUZZ_CHECK(W.tok[token].replies++ == 0, "%s answers token %llu twice", n->opts.id,
               (unsigned long long)token);
    FUZZ_CHECK(r->primary != NULL, "reply without a primary string");
    trace("  %s answers %llu: status %d index %llu epoch %llu", n->opts.id,
          (unsigned long long)token, (int)r->status, (unsigned long long)r->index,
          (unsigned long long)r->epoch);
    if (n->c == NULL) {
        return;
    }
    /* Replies leave the process too: durable first (core.h). */
    struct core_status st;
    core_get_status(n->c, W.now, &st);
    FUZZ_CHECK(st.epoch == n->hs.epoch && strcmp(st.voted_for, n->hs.voted_for) == 0 &&
                   r->epoch <= n->hs.epoch,
               "%s answers a client in epoch %llu before persisting epoch %llu", n->opts.id,
               (unsigned long long)r->epoch, (unsigned long long)st.epoch);
    if (r->status == CORE_REPLY_OK && W.tok[token].kind == TOKEN_READ) {
        /* A read's index: committed, and the reader was the primary when it
         * confirmed the read (it may have handed over or stepped down since,
         * within the same batch of inputs: the answer still stands). */
        FUZZ_CHECK(r->index <= core_commit_index(n->c), "%s answers a read at %llu, commit %llu",
                   n->opts.id, (unsigned long long)r->index,
                   (unsigned long long)core_commit_index(n->c));
        FUZZ_CHECK(strcmp(r->primary, n->opts.id) == 0 && r->epoch <= core_epoch(n->c),
                   "%s answers a read as primary '%s' of epoch %llu", n->opts.id, r->primary,
                   (unsigned long long)r->epoch);
    } else if (r->status == CORE_REPLY_OK && W.tok[token].kind == TOKEN_REMOVE) {
        const struct core_entry *e = entry_at(n, r->index);
        FUZZ_CHECK(e != NULL && e->type == CORE_ENTRY_CONFIG && e->epoch == r->epoch,
                   "%s answers a removal OK at %llu, not a configuration of its epoch", n->opts.id,
                   (unsigned long long)r->index);
    } else if (W.tok[token].kind == TOKEN_WRITE) {
        check_write_reply(n, token, r);
    }
}

static void io_event(struct core_sink *io, const struct core_event *ev)
{
    struct node *n = io->data;
    FUZZ_CHECK(memchr(ev->subject, '\0', sizeof(ev->subject)) != NULL &&
                   memchr(ev->detail, '\0', sizeof(ev->detail)) != NULL,
               "event text not terminated");
    trace("  %s event %s %s epoch %llu index %llu", n->opts.id, event_name(ev->type), ev->subject,
          (unsigned long long)ev->epoch, (unsigned long long)ev->index);
    if (ev->type == EVENT_ELECTED) {
        FUZZ_CHECK(strcmp(ev->subject, n->opts.id) == 0, "%s reports %s elected", n->opts.id,
                   ev->subject);
        FUZZ_CHECK(n->c == NULL || ev->epoch == core_epoch(n->c), "elected event epoch");
        note_primary(n, ev->epoch, ev->subject, "its elected event");
        for (unsigned i = 0; W.honest && i < W.n_elected && i < MAX_SEEN; i++) {
            FUZZ_CHECK(W.elected[i].epoch != ev->epoch || strcmp(W.elected[i].id, ev->subject) == 0,
                       "%s and %s are both elected in epoch %llu", W.elected[i].id, ev->subject,
                       (unsigned long long)ev->epoch);
        }
        struct seen_primary *s = &W.elected[W.n_elected++ % MAX_SEEN];
        s->epoch = ev->epoch;
        snprintf(s->id, sizeof(s->id), "%s", ev->subject);
    }
}

/* false while the disk is failing: nothing that follows may leave, and the
 * update is not confirmed. What was handed over is kept (one of the
 * outcomes a real disk allows). */
static bool io_sync(struct core_sink *io)
{
    struct node *n = io->data;
    return !n->disk_failed;
}

static void lent_free(struct node *n)
{
    for (size_t i = 0; i < n->n_lent; i++) {
        entry_free(&n->lent[i]);
    }
    free(n->lent);
    n->lent = NULL;
    n->n_lent = 0;
}

/* The core's reads of entries it no longer caches: only what storage holds,
 * never before the core's first index. Lent as fresh copies, freed at the
 * next read, so a use after that is caught. */
static int store_read(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
                      const struct core_entry **out, size_t *count)
{
    struct node *n = arg;
    FUZZ_CHECK(lo >= 1 && lo <= hi && lo > n->base && hi <= log_last(n),
               "%s's core reads entries %llu..%llu; its storage holds %llu..%llu", n->opts.id,
               (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)n->base + 1,
               (unsigned long long)log_last(n));
    if (n->c != NULL) {
        FUZZ_CHECK(lo >= core_first_index(n->c),
                   "%s's core reads entry %llu, before its first index %llu", n->opts.id,
                   (unsigned long long)lo, (unsigned long long)core_first_index(n->c));
        FUZZ_CHECK(hi <= core_durable_index(n->c),
                   "%s's core reads entries up to %llu, durable only up to %llu", n->opts.id,
                   (unsigned long long)hi, (unsigned long long)core_durable_index(n->c));
    }
    lent_free(n);
    if (!W.harness_read && n->fail_reads > 0) {
        n->fail_reads--;
        trace("  %s's storage fails to read %llu..%llu", n->opts.id, (unsigned long long)lo,
              (unsigned long long)hi);
        return -EIO;
    }
    size_t k = 0, bytes = 0;
    while (lo + k <= hi) {
        const struct core_entry *e = log_at(n, lo + k);
        if (k > 0 && bytes + e->len + CORE_ENTRY_OVERHEAD > max_bytes) {
            break;
        }
        bytes += e->len + CORE_ENTRY_OVERHEAD;
        k++;
    }
    n->lent = malloc(k * sizeof(*n->lent));
    FUZZ_CHECK(n->lent != NULL, "out of memory");
    for (size_t i = 0; i < k; i++) {
        entry_copy(&n->lent[i], log_at(n, lo + i));
        if (meta_only) {
            free((void *)n->lent[i].data);
            n->lent[i].data = NULL;
        }
    }
    n->n_lent = k;
    *out = n->lent;
    *count = k;
    return 0;
}

static uint64_t io_random(void *arg)
{
    struct node *n = arg;
    uint64_t z = (n->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t io_wall_clock(void *arg)
{
    return 1700000000000 + W.now;
}

/* Carry out what the last input made necessary, and confirm it durable. */
static void drain(struct node *n)
{
    if (n->c != NULL) {
        core_run_updates(n->c, W.now, &n->sink);
    }
}

/* ========================================================================
 * The checks after every op
 * ====================================================================== */

static void check_node(struct node *n)
{
    struct core *c = n->c;
    uint64_t epoch = core_epoch(c), commit = core_commit_index(c), last = core_last_index(c);
    uint64_t first = core_first_index(c);
    FUZZ_CHECK(epoch >= n->max_epoch, "%s's epoch went down from %llu to %llu", n->opts.id,
               (unsigned long long)n->max_epoch, (unsigned long long)epoch);
    n->max_epoch = epoch;
    FUZZ_CHECK(commit >= n->last_commit, "%s's commit index went back from %llu to %llu",
               n->opts.id, (unsigned long long)n->last_commit, (unsigned long long)commit);
    n->last_commit = commit;
    FUZZ_CHECK(commit <= last, "%s commits %llu with a log of %llu", n->opts.id,
               (unsigned long long)commit, (unsigned long long)last);

    const char *primary = core_primary(c);
    FUZZ_CHECK(strlen(primary) < CORE_ID_MAX, "primary id too long");
    if (primary[0] != '\0') {
        note_primary(n, epoch, primary, "core_primary");
    }
    if (core_role(c) == CORE_PRIMARY) {
        FUZZ_CHECK(strcmp(primary, n->opts.id) == 0, "%s is primary but names %s", n->opts.id,
                   primary);
    }

    struct core_status st;
    core_get_status(c, W.now, &st);
    FUZZ_CHECK(st.epoch == n->hs.epoch && strcmp(st.voted_for, n->hs.voted_for) == 0,
               "%s holds epoch %llu vote \"%s\", persisted epoch %llu vote \"%s\"", n->opts.id,
               (unsigned long long)st.epoch, st.voted_for, (unsigned long long)n->hs.epoch,
               n->hs.voted_for);
    FUZZ_CHECK(st.last_index == last && st.commit_index == commit, "status disagrees");
    FUZZ_CHECK(st.n_peers <= CORE_MAX_MEMBERS, "%u peers", st.n_peers);

    /* Retention: what the core holds is what storage holds. */
    FUZZ_CHECK(!n->compacted, "%s's core_compact said true, and no snapshot was persisted",
               n->opts.id);
    FUZZ_CHECK(first <= commit + 1, "%s's first index %llu is past its commit index %llu + 1",
               n->opts.id, (unsigned long long)first, (unsigned long long)commit);
    FUZZ_CHECK(first > n->base, "%s's first index is %llu, its storage dropped up to %llu",
               n->opts.id, (unsigned long long)first, (unsigned long long)n->base);
    FUZZ_CHECK(n->snap_index <= commit && n->base <= n->snap_index,
               "%s keeps a snapshot at %llu, commit %llu, storage dropped up to %llu", n->opts.id,
               (unsigned long long)n->snap_index, (unsigned long long)commit,
               (unsigned long long)n->base);

    /* The persisted log is the core's log. */
    FUZZ_CHECK(last == log_last(n), "%s holds %llu entries, persisted %llu", n->opts.id,
               (unsigned long long)last, (unsigned long long)log_last(n));
    uint64_t prev = first == n->snap_index + 1 ? n->snap_epoch : 0;
    for (uint64_t i = first; i <= last; i++) {
        const struct core_entry *e = entry_at(n, i);
        const struct core_entry *p = log_at(n, i);
        FUZZ_CHECK(e != NULL && e->index == i, "%s: entry %llu missing", n->opts.id,
                   (unsigned long long)i);
        FUZZ_CHECK(e->epoch == p->epoch && e->type == p->type && e->len == p->len,
                   "%s: entry %llu differs from what it persisted", n->opts.id,
                   (unsigned long long)i);
        FUZZ_CHECK(e->epoch >= prev,
                   "%s's log goes down in epoch: entry %llu of epoch %llu after epoch %llu",
                   n->opts.id, (unsigned long long)i, (unsigned long long)e->epoch,
                   (unsigned long long)prev);
        FUZZ_CHECK(e->epoch <= epoch, "%s holds entry %llu of epoch %llu in epoch %llu", n->opts.id,
                   (unsigned long long)i, (unsigned long long)e->epoch, (unsigned long long)epoch);
        prev = e->epoch;
    }
    /* Below the first index nothing is read, from memory or storage
     * (store_read fails the run if asked). */
    FUZZ_CHECK(first <= 1 || entry_at(n, first - 1) == NULL, "%s: entry %llu below its first index",
               n->opts.id, (unsigned long long)first - 1);
    FUZZ_CHECK(entry_at(n, 0) == NULL && entry_at(n, last + 1) == NULL,
               "core_entry_at outside the log");

    /* Committed DATA entries counted as its storage has them. */
    uint64_t count;
    if (count_data(n, commit, &count)) {
        FUZZ_CHECK(
            st.processed + st.synced == count,
            "%s counts %llu + %llu committed DATA entries up to %llu; its storage holds %llu",
            n->opts.id, (unsigned long long)st.processed, (unsigned long long)st.synced,
            (unsigned long long)commit, (unsigned long long)count);
    }

    /* Every DATA entry from the session horizon on has its id remembered
     * (below the first index, only the honest run's committed log says). */
    uint64_t ids_from = st.session_horizon, n_ids = 0;
    for (uint64_t i = ids_from; i < first && i <= W.n_committed && W.honest; i++) {
        const struct core_entry *e = committed_at(i);
        n_ids += e != NULL && e->type == CORE_ENTRY_DATA && e->client_id[0] != '\0';
    }
    for (uint64_t i = ids_from > first ? ids_from : first; i <= last; i++) {
        const struct core_entry *e = entry_at(n, i);
        n_ids += e->type == CORE_ENTRY_DATA && e->client_id[0] != '\0';
    }
    FUZZ_CHECK(st.sessions >= n_ids,
               "%s remembers %u client ids, but its log has %llu DATA entries from its session "
               "horizon %llu",
               n->opts.id, st.sessions, (unsigned long long)n_ids, (unsigned long long)ids_from);

    /* One committed log for the cluster. */
    if (W.honest && commit <= MAX_COMMITTED) {
        for (uint64_t i = n->checked + 1; i <= commit; i++) {
            if (i >= first) {
                committed_note(n, i, entry_at(n, i));
            } else if (i == n->snap_index) {
                const struct core_entry *k = committed_at(i);
                FUZZ_CHECK(i <= W.n_committed && (k == NULL || k->epoch == n->snap_epoch),
                           "%s commits %llu by a snapshot of epoch %llu, not the committed entry",
                           n->opts.id, (unsigned long long)i, (unsigned long long)n->snap_epoch);
            }
        }
    }
    if (commit > n->checked) {
        n->checked = commit;
    }
}

/* Every check comes after the cores' updates have been carried out, as an
 * adapter does at the end of its loop iteration. */
static void check_all(void)
{
    for (int i = 0; i < N_NODES; i++) {
        drain(&W.n[i]);
    }
    for (int i = 0; i < N_NODES; i++) {
        check_node(&W.n[i]);
        if (tracing) { /* each node's state, when it changed */
            struct core *c = W.n[i].c;
            char now[200];
            snprintf(
                now, sizeof(now), "%s epoch %llu primary \"%s\" first %llu last %llu commit %llu",
                role_name((enum role)core_role(c)), (unsigned long long)core_epoch(c),
                core_primary(c), (unsigned long long)core_first_index(c),
                (unsigned long long)core_last_index(c), (unsigned long long)core_commit_index(c));
            if (strcmp(now, W.n[i].traced) != 0) {
                trace("   %s is %s", ids[i], now);
                snprintf(W.n[i].traced, sizeof(W.n[i].traced), "%s", now);
            }
        }
    }
}

/* ========================================================================
 * Life cycle
 * ====================================================================== */

/* From what it persisted: core_open from a summary of the log (epoch runs,
 * CONFIG indexes), the checkpoint and the snapshot, like the adapter;
 * core_new from the entries while the log starts at 1, if the seed says. */
static void node_start(struct node *n)
{
    W.harness_read = true; /* recovery's reads do not fail: that is not the point here */
    if (n->may_core_new && n->base == 0 && n->snap == NULL) {
        n->c = core_new(&n->opts, &n->hs, n->log, n->n_log, W.now);
    } else {
        size_t cap = n->n_log ? n->n_log : 1;
        struct core_epoch_run *runs = malloc(cap * sizeof(*runs));
        uint64_t *cfgs = malloc(cap * sizeof(*cfgs));
        FUZZ_CHECK(runs != NULL && cfgs != NULL, "out of memory");
        struct core_recovered r = {.hs = n->hs,
                                   .last_index = log_last(n),
                                   .runs = runs,
                                   .config_indexes = cfgs,
                                   .checkpoint = n->cp,
                                   .snapshot = n->snap,
                                   .snapshot_len = n->snap_len};
        for (size_t k = 0; k < n->n_log; k++) {
            const struct core_entry *e = &n->log[k];
            uint64_t index = n->base + 1 + k;
            if (r.n_runs == 0 || runs[r.n_runs - 1].epoch != e->epoch) {
                runs[r.n_runs++] = (struct core_epoch_run){index, e->epoch};
            }
            if (e->type == CORE_ENTRY_CONFIG) {
                cfgs[r.n_config++] = index;
            }
        }
        n->c = core_open(&n->opts, &r, W.now);
        free(runs);
        free(cfgs);
    }
    W.harness_read = false;
    /* Which id was primary in an epoch is memory, not durable state: with
     * honest peers there is only one to remember, and a forger speaking as
     * a member across a restart is for peer authentication to stop. */
    n->n_seen = 0;
    FUZZ_CHECK(n->c != NULL, "core_open failed for %s (log %llu..%llu, snapshot at %llu)",
               n->opts.id, (unsigned long long)n->base + 1, (unsigned long long)log_last(n),
               (unsigned long long)n->snap_index);
    FUZZ_CHECK(core_last_index(n->c) == log_last(n), "%s restarts with %llu entries of %llu",
               n->opts.id, (unsigned long long)core_last_index(n->c),
               (unsigned long long)log_last(n));
    n->last_commit = core_commit_index(n->c);
    n->disk_failed = false; /* the disk came back while it was down */
    n->compacted = false;
}

static void node_stop(struct node *n)
{
    core_free(n->c); /* a crash: pending requests are never answered */
    n->c = NULL;
    lent_free(n);
}

static void world_init(uint64_t seed)
{
    static const size_t caches[] = {0, 1, 600, 0};
    static const unsigned session_max[] = {0, 1, 3, 8};
    unsigned o = FUZZ_SEED_OPTIONS(seed);
    memset(&W, 0, sizeof(W));
    W.next_token = 1;
    W.honest = true;
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &W.n[i];
        n->idx = i;
        n->rng = seed ^ (0x1000193ULL * (uint64_t)(i + 1));
        n->sink = (struct core_sink){
            .data = n,
            .persist_state = io_persist_state,
            .persist_entries = io_persist_entries,
            .persist_checkpoint = io_persist_checkpoint,
            .persist_snapshot = io_persist_snapshot,
            .sync = io_sync,
            .send = io_send,
            .reply = io_reply,
            .event = io_event,
        };
        n->opts = (struct core_options){
            .id = ids[i],
            .heartbeat_ms = 50,
            .election_min_ms = 300,
            .election_max_ms = 600,
            .initial_size = 3,
            .max_append_bytes = 200, /* several Appends to catch up */
            .max_request_bytes = MAX_REQUEST,
            .random = io_random,
            .wall_clock = io_wall_clock,
            .arg = n,
            .store = {.arg = n, .read = store_read},
            .cache_bytes = caches[(o >> (2 * i)) & 3],
            .session_max = session_max[(o >> 6) & 3],
            .session_ttl_ms = (o >> 8) & 1 ? 700 : 0,
        };
        n->may_core_new = (o >> 9) & 1;
        node_start(n);
    }
    /* Discovery found everyone: the bootstrap list can form. */
    for (int i = 0; i < N_NODES; i++) {
        for (int j = 0; j < N_NODES; j++) {
            if (i != j) {
                core_peer_up(W.n[i].c, W.now, ids[j]);
                drain(&W.n[i]);
            }
        }
    }
}

static void world_free(void)
{
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &W.n[i];
        node_stop(n);
        log_clear(n, 0);
        free(n->log);
        free(n->snap);
    }
    for (size_t i = 0; i < W.nq; i++) {
        free(W.q[i].frame);
    }
    for (size_t i = 0; i < W.n_committed; i++) {
        if (W.committed[i].epoch != 0) {
            entry_free(&W.committed[i]);
        }
    }
    free(W.committed);
    memset(&W, 0, sizeof(W));
}

/* ========================================================================
 * Delivery
 * ====================================================================== */

/* Hand a frame to node `to` as its adapter would. */
static void deliver_frame(int to, const uint8_t *frame, size_t len)
{
    Envelope *env;
    struct core_msg m;
    struct core_entry *scratch;
    char err[256];
    if (decode(frame, len, &env, &m, &scratch, err, sizeof(err))) {
        char what[256];
        trace(" %s <- %s: %s", ids[to], m.from, tracing ? describe(&m, what, sizeof(what)) : "");
        core_recv(W.n[to].c, W.now, &m);
        free(scratch);
        wire_free(env);
    } else {
        trace(" %s refuses a message: %s", ids[to], err);
    }
}

/* A message no core sent: the run is no longer honest. */
static void deliver_msg(int to, const char *from, const struct core_msg *m)
{
    size_t len;
    uint8_t *frame = encode(from, m, &len);
    W.honest = false;
    deliver_frame(to, frame, len);
    free(frame);
}

static struct queued queue_take(size_t i)
{
    struct queued q = W.q[i];
    memmove(&W.q[i], &W.q[i + 1], (W.nq - i - 1) * sizeof(W.q[0]));
    W.nq--;
    return q;
}

/* ========================================================================
 * Generating fields
 * ====================================================================== */

/* A counter near ref, at the wire's limit, small, or anything. */
static uint64_t gen_counter(struct fuzz_in *in, uint64_t ref)
{
    uint8_t mode = in_u8(in);
    switch (mode % 8) {
    case 0:
        return 0;
    case 1:
        return ref;
    case 2:
        return ref + 1;
    case 3:
        return ref ? ref - 1 : 0;
    case 4:
        return ref + (mode >> 3);
    case 5:
        return LIMIT_COUNTER_MAX - (mode >> 3);
    case 6:
        return in_u8(in);
    default:
        return in_u64(in) & ((1ULL << 54) - 1); /* half of them past the limit */
    }
}

static uint64_t epoch_at(struct node *n, uint64_t index)
{
    if (index != 0 && index == n->snap_index) {
        return n->snap_epoch;
    }
    const struct core_entry *e = entry_at(n, index);
    return e ? e->epoch : 0;
}

/* Storage for one forged message's strings, entries and snapshot. */
struct forged {
    struct core_entry entries[4];
    char config[4][CORE_MAX_MEMBERS * (CORE_ID_MAX + 3) + 1];
    const char *boot[CORE_MAX_MEMBERS];
    struct wbuf snap; /* free snap.p afterwards */
};

static size_t gen_config(struct fuzz_in *in, char *buf, size_t cap)
{
    struct core_config cfg = {.n = 0};
    uint8_t mask = in_u8(in), voters = in_u8(in), removed = in_u8(in);
    for (unsigned i = 0; i < N_IDS; i++) {
        if (mask & (1u << i)) {
            snprintf(cfg.members[cfg.n].id, CORE_ID_MAX, "%s", ids[i]);
            cfg.members[cfg.n++].voter = (voters >> i) & 1;
        } else if (removed & (1u << i)) {
            snprintf(cfg.removed[cfg.n_removed++], CORE_ID_MAX, "%s", ids[i]);
        }
    }
    return core_config_encode(&cfg, buf, cap);
}

/* One byte flipped, the bytes cut short, or one more byte. */
static void damage(struct fuzz_in *in, struct wbuf *b)
{
    uint8_t how = in_u8(in);
    size_t at = b->len ? in_u16(in) % b->len : 0;
    if (how % 3 == 0 && b->len > 0) {
        b->p[at] ^= (uint8_t)(in_u8(in) | 1);
    } else if (how % 3 == 1) {
        b->len = at;
    } else {
        w_u(b, in_u8(in), 1);
    }
}

/* A snapshot's bytes for a message at index/epoch: raw bytes, the encoding
 * with every field fuzzed (near what a real one holds), the same damaged,
 * or a node's real snapshot (perhaps under its own header). */
static void gen_snapshot(struct fuzz_in *in, struct core_msg *m, struct forged *f)
{
    struct wbuf *b = &f->snap;
    uint8_t mode = in_u8(in);
    const struct node *src = &W.n[(mode >> 2) % N_NODES];
    b->len = 0;
    if (mode % 4 == 0) {
        const uint8_t *raw;
        size_t k = in_bytes(in, in_u8(in) % 96, &raw);
        w_put(b, raw, k);
    } else if (mode % 4 == 3 && src->snap != NULL) {
        w_put(b, src->snap, src->snap_len);
        if (in_bool(in)) {
            m->snapshot.index = src->snap_index;
            m->snapshot.epoch = src->snap_epoch;
        }
    } else {
        uint64_t s = in_bool(in) ? m->snapshot.index : gen_counter(in, m->snapshot.index);
        uint64_t e = in_bool(in) ? m->snapshot.epoch : gen_counter(in, m->snapshot.epoch);
        w_u(b, SNAP_MAGIC, 4);
        w_u(b, SNAP_VERSION, 4);
        w_u(b, s, 8);
        w_u(b, e, 8);
        w_u(b, gen_counter(in, 1), 8); /* configuration index */
        char cfg[CORE_MAX_MEMBERS * (CORE_ID_MAX + 3) + 1];
        size_t cl = gen_config(in, cfg, sizeof(cfg));
        w_str(b, cfg, cl);
        uint64_t horizon = gen_counter(in, 1);
        w_u(b, horizon, 8);
        unsigned ns = in_u8(in) % 4;
        w_u(b, ns, 4);
        uint64_t index = horizon;
        for (unsigned i = 0; i < ns; i++) {
            index = in_bool(in) ? index + in_u8(in) % 3 : gen_counter(in, index);
            const char *cid = client_ids[in_u8(in) % N_CIDS];
            w_u(b, index, 8);
            w_u(b, in_u32(in), 8);                   /* time */
            w_u(b, gen_counter(in, e), 8);           /* epoch */
            w_u(b, fnv((const uint8_t *)"a", 1), 8); /* hash */
            w_u(b, gen_counter(in, 1), 8);           /* data length */
            w_str(b, cid, strlen(cid));
        }
        w_u(b, gen_counter(in, ns), 8); /* DATA entries */
        const char *by = ids[in_u8(in) % N_IDS];
        w_str(b, by, strlen(by));
        w_u(b, gen_counter(in, 0), 8); /* its own */
        if (mode % 4 == 2) {
            damage(in, b);
        }
    }
    m->snapshot.data = b->p;
    m->snapshot.len = b->len;
}

static void gen_message(struct fuzz_in *in, struct node *to, struct core_msg *m, struct forged *f)
{
    uint64_t epoch = core_epoch(to->c), last = core_last_index(to->c);
    memset(m, 0, sizeof(*m));
    m->type = (enum core_msg_type)(in_u8(in) % 6);
    m->epoch = gen_counter(in, epoch);
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST: {
        m->vote_request.last_index = gen_counter(in, last);
        m->vote_request.last_epoch = gen_counter(in, epoch_at(to, last));
        m->vote_request.pre_vote = in_bool(in);
        uint8_t boot = in_u8(in);
        unsigned n = 0;
        if (boot & 1) { /* the list the cores form, or any ids */
            for (unsigned i = 0; i < N_IDS; i++) {
                if (boot & 2 ? i < N_NODES : (boot >> 2) & (1u << i)) {
                    f->boot[n++] = ids[i];
                }
            }
        }
        m->vote_request.n_bootstrap = n;
        m->vote_request.bootstrap = f->boot;
        break;
    }
    case CORE_MSG_VOTE_RESPONSE:
        m->vote_response.granted = in_bool(in);
        m->vote_response.pre_vote = in_bool(in);
        break;
    case CORE_MSG_APPEND: {
        uint64_t prev = gen_counter(in, last);
        m->append.prev_index = prev;
        m->append.prev_epoch = gen_counter(in, epoch_at(to, prev));
        m->append.commit_index = gen_counter(in, last);
        size_t n = in_u8(in) % 5;
        for (size_t i = 0; i < n && i < 4; i++) {
            struct core_entry *e = &f->entries[i];
            memset(e, 0, sizeof(*e));
            e->index = prev + i + 1;
            e->epoch = gen_counter(in, m->epoch);
            e->type = (enum core_entry_type)(in_u8(in) % 3);
            e->time_ms = (int64_t)in_u32(in);
            e->primary = ids[in_u8(in) % N_IDS];
            e->client_id = "";
            if (e->type == CORE_ENTRY_DATA) {
                e->client_id = client_ids[in_u8(in) % 3];
                e->len = in_bytes(in, in_u8(in) % 16, &e->data);
            } else if (e->type == CORE_ENTRY_CONFIG) {
                e->len = gen_config(in, f->config[i], sizeof(f->config[i]));
                e->data = (const uint8_t *)f->config[i];
            }
        }
        m->append.n_entries = n < 4 ? n : 4;
        m->append.entries = f->entries;
        break;
    }
    case CORE_MSG_APPEND_RESPONSE:
        m->append_response.success = in_bool(in);
        m->append_response.match_index = gen_counter(in, last);
        m->append_response.hint_index = gen_counter(in, last + 1);
        m->append_response.round = in_u8(in) % 4; /* small: near the primary's rounds */
        break;
    case CORE_MSG_TIMEOUT_NOW:
        break;
    case CORE_MSG_SNAPSHOT: {
        uint64_t s = gen_counter(in, in_bool(in) ? core_commit_index(to->c) : last);
        m->snapshot.index = s;
        m->snapshot.epoch = gen_counter(in, in_bool(in) ? epoch_at(to, s) : m->epoch);
        gen_snapshot(in, m, f);
        break;
    }
    }
}

/* Change one field of a message (whose strings live in its envelope; a
 * snapshot's bytes are copied into scratch first). */
static void mutate(struct fuzz_in *in, struct core_msg *m, const char **from, struct wbuf *scratch)
{
    uint8_t field = in_u8(in) % 6;
    switch (field) {
    case 0:
        m->epoch = gen_counter(in, m->epoch);
        return;
    case 1:
        *from = ids[in_u8(in) % N_IDS];
        return;
    case 2: /* flip the message's flag */
        if (m->type == CORE_MSG_VOTE_REQUEST) {
            m->vote_request.pre_vote = !m->vote_request.pre_vote;
        } else if (m->type == CORE_MSG_VOTE_RESPONSE) {
            m->vote_response.granted = !m->vote_response.granted;
        } else if (m->type == CORE_MSG_APPEND_RESPONSE) {
            m->append_response.success = !m->append_response.success;
        }
        return;
    default:
        break;
    }
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST:
        if (field == 3) {
            m->vote_request.last_index = gen_counter(in, m->vote_request.last_index);
        } else {
            m->vote_request.last_epoch = gen_counter(in, m->vote_request.last_epoch);
        }
        break;
    case CORE_MSG_VOTE_RESPONSE:
        m->vote_response.pre_vote = !m->vote_response.pre_vote;
        break;
    case CORE_MSG_APPEND:
        if (field == 3) {
            m->append.commit_index = gen_counter(in, m->append.commit_index);
        } else if (field == 4) {
            m->append.prev_epoch = gen_counter(in, m->append.prev_epoch);
        } else {
            m->append.n_entries = m->append.n_entries ? m->append.n_entries - 1 : 0;
        }
        break;
    case CORE_MSG_APPEND_RESPONSE:
        if (field == 3) {
            m->append_response.match_index = gen_counter(in, m->append_response.match_index);
        } else {
            m->append_response.hint_index = gen_counter(in, m->append_response.hint_index);
        }
        break;
    case CORE_MSG_TIMEOUT_NOW:
        break;
    case CORE_MSG_SNAPSHOT:
        if (field == 3) {
            m->snapshot.index = gen_counter(in, m->snapshot.index);
        } else if (field == 4) {
            m->snapshot.epoch = gen_counter(in, m->snapshot.epoch);
        } else {
            scratch->len = 0;
            w_put(scratch, m->snapshot.data, m->snapshot.len);
            damage(in, scratch);
            m->snapshot.data = scratch->p;
            m->snapshot.len = scratch->len;
        }
        break;
    }
}

/* ========================================================================
 * The op loop
 * ====================================================================== */

/* A token for a call to node n, or 0 when they ran out. */
static uint64_t new_token(struct node *n, enum token_kind kind)
{
    if (W.next_token >= MAX_TOKENS) {
        return 0;
    }
    uint64_t token = W.next_token++;
    W.tok[token] = (struct token){.node = (int8_t)n->idx, .kind = (uint8_t)kind};
    return token;
}

/* What the client had seen before it first sent the request: unknown,
 * near the log's end, small, or anything. */
static uint64_t gen_seen(struct fuzz_in *in, struct node *n)
{
    uint8_t mode = in_u8(in);
    uint64_t last = core_last_index(n->c), back = mode >> 2;
    switch (mode % 4) {
    case 0:
        return CORE_SEEN_UNKNOWN;
    case 1:
        return last > back ? last - back : 0;
    case 2:
        return back;
    default:
        return gen_counter(in, last);
    }
}

/* A request appended as a new entry at `index`: the client said it had
 * seen seen_index before it first sent it, so an earlier write of the
 * same id after that would be this one applied twice. (An id can be
 * written again when the client cannot say: CORE_SEEN_UNKNOWN.) */
static void check_new_write(struct node *n, uint64_t token, uint64_t index)
{
    const struct token *t = &W.tok[token];
    const char *cid = client_ids[t->cid];
    const struct core_entry *e = entry_at(n, index);
    FUZZ_CHECK(e != NULL && e->type == CORE_ENTRY_DATA && strcmp(e->client_id, cid) == 0 &&
                   e->len == t->len && fnv(e->data, e->len) == t->hash,
               "%s appends entry %llu for request %llu, not that request", n->opts.id,
               (unsigned long long)index, (unsigned long long)token);
    if (t->seen == CORE_SEEN_UNKNOWN) {
        return;
    }
    uint64_t first = core_first_index(n->c);
    for (uint64_t i = t->seen + 1; i < first && i <= W.n_committed; i++) {
        const struct core_entry *d = committed_at(i);
        FUZZ_CHECK(d == NULL || d->type != CORE_ENTRY_DATA || strcmp(d->client_id, cid) != 0,
                   "%s appends \"%.20s\" (seen %llu) at %llu, already committed at %llu",
                   n->opts.id, cid, (unsigned long long)t->seen, (unsigned long long)index,
                   (unsigned long long)i);
    }
    for (uint64_t i = t->seen + 1 > first ? t->seen + 1 : first; i < index; i++) {
        const struct core_entry *d = entry_at(n, i);
        FUZZ_CHECK(d == NULL || d->type != CORE_ENTRY_DATA || strcmp(d->client_id, cid) != 0,
                   "%s appends \"%.20s\" (seen %llu) at %llu, already in its log at %llu",
                   n->opts.id, cid, (unsigned long long)t->seen, (unsigned long long)index,
                   (unsigned long long)i);
    }
}

static void client_request(struct fuzz_in *in, struct node *n)
{
    uint8_t cid = in_u8(in) % N_CIDS;
    const uint8_t *data = (const uint8_t *)"a";
    size_t len = 1;
    switch (in_u8(in) % 4) {
    case 0:
        break;
    case 1:
        data = (const uint8_t *)"b";
        break;
    case 2:
        len = 0;
        break;
    default:
        len = in_bytes(in, in_u8(in) % 80, &data); /* max_request_bytes is 64 */
        break;
    }
    uint64_t seen = gen_seen(in, n);
    uint64_t token = new_token(n, TOKEN_WRITE);
    if (token == 0) {
        return;
    }
    W.tok[token].cid = cid;
    W.tok[token].len = len;
    W.tok[token].hash = fnv(data, len);
    W.tok[token].seen = seen;
    trace(" %s <- client request %llu id \"%.20s\" (%zu bytes) seen %lld", n->opts.id,
          (unsigned long long)token, client_ids[cid], len,
          seen == CORE_SEEN_UNKNOWN ? -1LL : (long long)seen);
    uint8_t *copy = fuzz_dup(data, len);
    uint64_t last = core_last_index(n->c);
    core_client_request(n->c, W.now, token, client_ids[cid], copy, len, seen);
    free(copy);
    if (core_last_index(n->c) != last) {
        FUZZ_CHECK(core_last_index(n->c) == last + 1, "%s appends %llu entries for one request",
                   n->opts.id, (unsigned long long)(core_last_index(n->c) - last));
        check_new_write(n, token, last + 1);
    }
}

/* How many of the newest entries compaction keeps. */
static uint64_t gen_keep(struct fuzz_in *in)
{
    uint8_t mode = in_u8(in);
    switch (mode % 4) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return mode >> 2;
    default:
        return gen_counter(in, 8);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (long_id[0] == '\0') {
        memset(long_id, 'l', CORE_ID_MAX - 1);
        memset(long_cid, 'k', CORE_CLIENT_ID_MAX - 1);
        memset(too_long_cid, 'k', CORE_CLIENT_ID_MAX);
    }
    static int trace_env = -1;
    if (trace_env < 0) {
        trace_env = getenv("FUZZ_CORE_TRACE") != NULL;
    }
    tracing = trace_env;
    struct fuzz_in in = {data, size};
    world_init(in_u64(&in));
    check_all();

    while (in.left > 0) {
        uint8_t opb = in_u8(&in);
        enum fuzz_core_op op = (enum fuzz_core_op)((opb & 0x7f) % FOP_COUNT);
        static const char *const op_names[] = {"tick",
                                               "tick to deadline",
                                               "deliver",
                                               "deliver all",
                                               "duplicate",
                                               "drop",
                                               "forge",
                                               "mutate",
                                               "client request",
                                               "peer up",
                                               "peer down",
                                               "flush",
                                               "restart",
                                               "read",
                                               "remove member",
                                               "listed",
                                               "compact",
                                               "store fail",
                                               "disk"};
        trace("op %s%s", op_names[op], opb & FOP_FLUSH_BIT ? " (then flush)" : "");
        struct node *n = NULL;
        switch (op) {
        case FOP_TICK:
            n = &W.n[in_u8(&in) % N_NODES];
            W.now += in_u16(&in) % 1024;
            core_tick(n->c, W.now);
            break;
        case FOP_TICK_DEADLINE: {
            n = &W.n[in_u8(&in) % N_NODES];
            int64_t d = core_next_deadline(n->c);
            if (d > W.now) {
                W.now = d;
            }
            core_tick(n->c, W.now);
            break;
        }
        case FOP_DELIVER:
        case FOP_DUPLICATE:
        case FOP_DROP: {
            uint8_t i = in_u8(&in);
            if (W.nq == 0) {
                break;
            }
            size_t k = i % W.nq;
            n = &W.n[W.q[k].to];
            if (op == FOP_DUPLICATE) {
                /* Copied first: delivering may queue more and move it. */
                uint8_t *copy = fuzz_dup(W.q[k].frame, W.q[k].len);
                size_t len = W.q[k].len;
                deliver_frame(n->idx, copy, len);
                free(copy);
                break;
            }
            struct queued q = queue_take(k);
            if (op == FOP_DELIVER) {
                deliver_frame(q.to, q.frame, q.len);
            }
            free(q.frame);
            break;
        }
        case FOP_DELIVER_ALL: {
            size_t count = W.nq;
            for (size_t i = 0; i < count && W.nq > 0; i++) {
                struct queued q = queue_take(0);
                deliver_frame(q.to, q.frame, q.len);
                free(q.frame);
                core_flush(W.n[q.to].c, W.now);
                check_all();
            }
            break;
        }
        case FOP_FORGE: {
            n = &W.n[in_u8(&in) % N_NODES];
            const char *from = ids[in_u8(&in) % N_IDS];
            struct core_msg m;
            struct forged f;
            f.snap = (struct wbuf){0};
            gen_message(&in, n, &m, &f);
            deliver_msg(n->idx, from, &m);
            free(f.snap.p);
            break;
        }
        case FOP_MUTATE: {
            uint8_t i = in_u8(&in);
            if (W.nq == 0) {
                break;
            }
            struct queued q = W.q[i % W.nq];
            n = &W.n[q.to];
            Envelope *env;
            struct core_msg m;
            struct core_entry *scratch;
            char err[256];
            uint8_t *copy = fuzz_dup(q.frame, q.len);
            if (decode(copy, q.len, &env, &m, &scratch, err, sizeof(err))) {
                const char *from = env->from;
                struct wbuf snap = {0};
                mutate(&in, &m, &from, &snap);
                deliver_msg(n->idx, from, &m);
                free(snap.p);
                free(scratch);
                wire_free(env);
            }
            free(copy);
            break;
        }
        case FOP_CLIENT:
            n = &W.n[in_u8(&in) % N_NODES];
            client_request(&in, n);
            break;
        case FOP_PEER_UP:
        case FOP_PEER_DOWN: {
            n = &W.n[in_u8(&in) % N_NODES];
            const char *id = ids[in_u8(&in) % N_IDS];
            if (op == FOP_PEER_UP) {
                core_peer_up(n->c, W.now, id);
            } else {
                core_peer_down(n->c, W.now, id);
            }
            break;
        }
        case FOP_FLUSH:
            n = &W.n[in_u8(&in) % N_NODES];
            core_flush(n->c, W.now);
            break;
        case FOP_RESTART:
            n = &W.n[in_u8(&in) % N_NODES];
            node_stop(n);
            node_start(n);
            break;
        case FOP_READ: {
            n = &W.n[in_u8(&in) % N_NODES];
            uint64_t token = new_token(n, TOKEN_READ);
            if (token != 0) {
                core_read_index(n->c, W.now, token);
            }
            break;
        }
        case FOP_REMOVE: {
            n = &W.n[in_u8(&in) % N_NODES];
            const char *id = ids[in_u8(&in) % N_IDS];
            uint64_t token = new_token(n, TOKEN_REMOVE);
            if (token != 0) {
                core_remove_member(n->c, W.now, token, id);
            }
            break;
        }
        case FOP_LISTED: {
            n = &W.n[in_u8(&in) % N_NODES];
            const char *id = ids[in_u8(&in) % N_IDS];
            core_peer_listed(n->c, id, in_bool(&in));
            break;
        }
        case FOP_COMPACT: {
            n = &W.n[in_u8(&in) % N_NODES];
            uint64_t keep = gen_keep(&in);
            n->compacted = core_compact(n->c, W.now, keep);
            trace(" %s compacts keeping %llu: %s", n->opts.id, (unsigned long long)keep,
                  n->compacted ? "snapshot taken" : "nothing new");
            break;
        }
        case FOP_STORE_FAIL:
            n = &W.n[in_u8(&in) % N_NODES];
            n->fail_reads = in_u8(&in) % 4;
            break;
        case FOP_DISK:
            n = &W.n[in_u8(&in) % N_NODES];
            if (in_bool(&in)) {
                n->disk_failed = true;
                core_storage_failed(n->c, W.now, "fuzz: disk full");
            } else {
                n->disk_failed = false; /* what was handed over is now written */
                core_storage_resumed(n->c, W.now);
            }
            break;
        case FOP_COUNT:
            break;
        }
        if (n != NULL && (opb & FOP_FLUSH_BIT)) {
            core_flush(n->c, W.now);
        }
        check_all();
    }
    world_free();
    return 0;
}
