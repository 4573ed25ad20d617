/*
 * tests/fuzz/fuzz_core.c — three protocol cores (replica/core) driven by an
 * arbitrary sequence of inputs (fuzz_core_ops.h).
 *
 * The cores r1..r3 send each other real messages, which queue until an op
 * delivers, duplicates, reorders or drops them. Other ops forge messages of
 * every type from any id (the cores', the receiver's own, unknown ones) with
 * arbitrary epochs and indexes up to 2^53 - 1, alter queued messages, tick
 * with a clock that never goes back, send client requests, report peers up
 * and down, flush, and restart a core from what it persisted.
 *
 * Every message travels the way the adapter sends it: codec_from_core,
 * wire_pack, wire_unpack, codec_to_core. So a core only ever receives what
 * the real validation layer lets through, and whatever a core sends must be
 * accepted by that layer on the other side (or the cluster would wedge).
 *
 * After every input, the core's update is carried out with the production
 * core_update_apply into a recording sink, and confirmed durable at once
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
 *   - each client request is answered at most once; OK only when committed;
 *   - every message it sends passes the receiver's wire_unpack and codec.
 * Crashes, assertions and sanitizer reports count as failures too.
 */
#include "fuzz_util.h"

#include <stdarg.h>

#include "bounds.h"
#include "codec.h"
#include "core/core.h"
#include "frame.h"
#include "fuzz_core_ops.h"
#include "validate.h"
#include "wire.h"

#define N_NODES    FUZZ_CORE_NODES
#define MAX_QUEUE  256
#define MAX_TOKENS 4096
#define MAX_SEEN   512

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
    uint64_t rng;
    /* What it persisted: the state a restart recovers. */
    struct core_hard_state hs;
    struct core_entry *log; /* deep copies */
    size_t n_log;
    size_t cap_log;
    /* Checker state. */
    uint64_t max_epoch;
    uint64_t last_commit; /* this incarnation's */
    struct seen_primary seen[MAX_SEEN];
    unsigned n_seen;
    char traced[200]; /* the state last traced */
};

enum token_kind {
    TOKEN_WRITE,
    TOKEN_READ,
    TOKEN_REMOVE,
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
    uint8_t replies[MAX_TOKENS];
    int8_t token_node[MAX_TOKENS];
    uint8_t token_kind[MAX_TOKENS]; /* what the token asked for (enum token_kind) */
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
        FUZZ_CHECK(truncate_from <= n->n_log + 1, "%s truncates from %llu, log of %zu", n->opts.id,
                   (unsigned long long)truncate_from, n->n_log);
        if (n->c != NULL) {
            /* Against the commit index before this op: within one batch the
             * truncation comes first and the commit may move after it. */
            FUZZ_CHECK(truncate_from > n->last_commit,
                       "%s truncates from %llu, at or below its commit index %llu", n->opts.id,
                       (unsigned long long)truncate_from, (unsigned long long)n->last_commit);
        }
        while (n->n_log >= truncate_from) {
            entry_free(&n->log[--n->n_log]);
        }
    }
    for (size_t i = 0; i < count; i++) {
        FUZZ_CHECK(es[i].index == n->n_log + 1, "%s persists entry %llu after %zu", n->opts.id,
                   (unsigned long long)es[i].index, n->n_log);
        if (n->n_log == n->cap_log) {
            n->cap_log = n->cap_log ? n->cap_log * 2 : 16;
            n->log = realloc(n->log, n->cap_log * sizeof(*n->log));
            FUZZ_CHECK(n->log != NULL, "out of memory");
        }
        entry_copy(&n->log[n->n_log++], &es[i]);
    }
}

static void io_reply(struct core_sink *io, uint64_t token, const struct core_reply *r)
{
    struct node *n = io->data;
    FUZZ_CHECK(token >= 1 && token < W.next_token && W.token_node[token] == n->idx,
               "%s answers token %llu it was never given", n->opts.id, (unsigned long long)token);
    FUZZ_CHECK(W.replies[token]++ == 0, "%s answers token %llu twice", n->opts.id,
               (unsigned long long)token);
    FUZZ_CHECK(r->primary != NULL, "reply without a primary string");
    if (n->c != NULL) {
        /* Replies leave the process too: durable first (core.h). */
        struct core_status st;
        core_get_status(n->c, W.now, &st);
        FUZZ_CHECK(st.epoch == n->hs.epoch && strcmp(st.voted_for, n->hs.voted_for) == 0 &&
                       r->epoch <= n->hs.epoch,
                   "%s answers a client in epoch %llu before persisting epoch %llu", n->opts.id,
                   (unsigned long long)r->epoch, (unsigned long long)st.epoch);
    }
    if (r->status == CORE_REPLY_OK && n->c != NULL && W.token_kind[token] == TOKEN_READ) {
        /* A read's index: committed, and the reader was the primary when it
         * confirmed the read (it may have handed over or stepped down since,
         * within the same batch of inputs: the answer still stands). */
        FUZZ_CHECK(r->index <= core_commit_index(n->c), "%s answers a read at %llu, commit %llu",
                   n->opts.id, (unsigned long long)r->index,
                   (unsigned long long)core_commit_index(n->c));
        FUZZ_CHECK(strcmp(r->primary, n->opts.id) == 0 && r->epoch <= core_epoch(n->c),
                   "%s answers a read as primary '%s' of epoch %llu", n->opts.id, r->primary,
                   (unsigned long long)r->epoch);
    } else if (r->status == CORE_REPLY_OK && n->c != NULL && W.token_kind[token] == TOKEN_REMOVE) {
        const struct core_entry *e = core_entry_at(n->c, r->index);
        FUZZ_CHECK(e != NULL && e->type == CORE_ENTRY_CONFIG && e->epoch == r->epoch,
                   "%s answers a removal OK at %llu, not a configuration of its epoch", n->opts.id,
                   (unsigned long long)r->index);
    } else if (r->status == CORE_REPLY_OK && n->c != NULL) {
        FUZZ_CHECK(r->index >= 1 && r->index <= core_commit_index(n->c),
                   "%s answers OK at index %llu, commit index %llu", n->opts.id,
                   (unsigned long long)r->index, (unsigned long long)core_commit_index(n->c));
        const struct core_entry *e = core_entry_at(n->c, r->index);
        FUZZ_CHECK(e != NULL && e->epoch == r->epoch, "%s answers OK with the wrong epoch",
                   n->opts.id);
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
    }
}

static bool io_sync(struct core_sink *io)
{
    return true;
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

    /* The persisted log is the core's log. */
    FUZZ_CHECK(last == n->n_log, "%s holds %llu entries, persisted %zu", n->opts.id,
               (unsigned long long)last, n->n_log);
    uint64_t prev = 0;
    for (uint64_t i = 1; i <= last; i++) {
        const struct core_entry *e = core_entry_at(c, i);
        FUZZ_CHECK(e != NULL && e->index == i, "%s: entry %llu missing", n->opts.id,
                   (unsigned long long)i);
        FUZZ_CHECK(e->epoch == n->log[i - 1].epoch && e->type == n->log[i - 1].type &&
                       e->len == n->log[i - 1].len,
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
    FUZZ_CHECK(core_entry_at(c, 0) == NULL && core_entry_at(c, last + 1) == NULL,
               "core_entry_at outside the log");
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
            snprintf(now, sizeof(now), "%s epoch %llu primary \"%s\" last %llu commit %llu",
                     role_name((enum role)core_role(c)), (unsigned long long)core_epoch(c),
                     core_primary(c), (unsigned long long)core_last_index(c),
                     (unsigned long long)core_commit_index(c));
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

static void node_start(struct node *n)
{
    n->c = core_new(&n->opts, &n->hs, n->log, n->n_log, W.now);
    /* Which id was primary in an epoch is memory, not durable state: with
     * honest peers there is only one to remember, and a forger speaking as
     * a member across a restart is for peer authentication to stop. */
    n->n_seen = 0;
    FUZZ_CHECK(n->c != NULL, "core_new failed for %s", n->opts.id);
    n->last_commit = 0;
}

static void node_stop(struct node *n)
{
    core_free(n->c); /* a crash: pending requests are never answered */
    n->c = NULL;
}

static void world_init(uint64_t seed)
{
    memset(&W, 0, sizeof(W));
    W.next_token = 1;
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &W.n[i];
        n->idx = i;
        n->rng = seed ^ (0x1000193ULL * (uint64_t)(i + 1));
        n->sink = (struct core_sink){
            .data = n,
            .persist_state = io_persist_state,
            .persist_entries = io_persist_entries,
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
            .max_request_bytes = 64,
            .random = io_random,
            .wall_clock = io_wall_clock,
            .arg = n,
        };
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
        for (size_t k = 0; k < n->n_log; k++) {
            entry_free(&n->log[k]);
        }
        free(n->log);
    }
    for (size_t i = 0; i < W.nq; i++) {
        free(W.q[i].frame);
    }
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

static void deliver_msg(int to, const char *from, const struct core_msg *m)
{
    size_t len;
    uint8_t *frame = encode(from, m, &len);
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

static uint64_t epoch_at(struct core *c, uint64_t index)
{
    const struct core_entry *e = core_entry_at(c, index);
    return e ? e->epoch : 0;
}

/* Storage for one forged message's strings and entries. */
struct forged {
    struct core_entry entries[4];
    char config[4][CORE_MAX_MEMBERS * (CORE_ID_MAX + 3) + 1];
    const char *boot[CORE_MAX_MEMBERS];
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

static void gen_message(struct fuzz_in *in, struct core *to, struct core_msg *m, struct forged *f)
{
    uint64_t epoch = core_epoch(to), last = core_last_index(to);
    memset(m, 0, sizeof(*m));
    m->type = (enum core_msg_type)(in_u8(in) % 5);
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
    }
}

/* Change one field of a message (whose strings live in its envelope). */
static void mutate(struct fuzz_in *in, struct core_msg *m, const char **from)
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
    W.token_node[token] = (int8_t)n->idx;
    W.token_kind[token] = (uint8_t)kind;
    return token;
}

static void client_request(struct fuzz_in *in, struct node *n)
{
    const char *cid = client_ids[in_u8(in) % N_CIDS];
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
    uint64_t token = new_token(n, TOKEN_WRITE);
    if (token == 0) {
        return;
    }
    trace(" %s <- client request %llu id \"%.20s\" (%zu bytes)", n->opts.id,
          (unsigned long long)token, cid, len);
    uint8_t *copy = fuzz_dup(data, len);
    core_client_request(n->c, W.now, token, cid, copy, len, CORE_SEEN_UNKNOWN);
    free(copy);
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
        static const char *const op_names[] = {"tick",           "tick to deadline",
                                               "deliver",        "deliver all",
                                               "duplicate",      "drop",
                                               "forge",          "mutate",
                                               "client request", "peer up",
                                               "peer down",      "flush",
                                               "restart",        "read",
                                               "remove member",  "listed"};
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
            gen_message(&in, n->c, &m, &f);
            deliver_msg(n->idx, from, &m);
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
                mutate(&in, &m, &from);
                deliver_msg(n->idx, from, &m);
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
