/*
 * tests/sim/net.c — the fake network: the event queue (a binary heap on
 * time, then creation order), deep copies of messages, and what happens to
 * a message between leaving a node and reaching another: latency (FIFO per
 * link like TCP, rarely reordered), loss, duplication, partitions, restarts.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void heap_push(struct cluster *cl, struct sim_event *ev)
{
    if (cl->n_heap == cl->cap_heap) {
        cl->cap_heap = cl->cap_heap ? cl->cap_heap * 2 : 256;
        cl->heap = sim_realloc(cl->heap, cl->cap_heap * sizeof(*cl->heap));
    }
    size_t i = cl->n_heap++;
    while (i > 0 && ev_before(ev, cl->heap[(i - 1) / 2])) {
        cl->heap[i] = cl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    cl->heap[i] = ev;
}

struct sim_event *heap_pop(struct cluster *cl)
{
    struct sim_event *top = cl->heap[0];
    struct sim_event *last = cl->heap[--cl->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cl->n_heap) {
            break;
        }
        if (c + 1 < cl->n_heap && ev_before(cl->heap[c + 1], cl->heap[c])) {
            c++;
        }
        if (!ev_before(cl->heap[c], last)) {
            break;
        }
        cl->heap[i] = cl->heap[c];
        i = c;
    }
    if (cl->n_heap > 0) {
        cl->heap[i] = last;
    }
    return top;
}

struct sim_event *event_new(struct cluster *cl, enum sim_ev_kind kind)
{
    struct sim_event *ev = sim_realloc(NULL, sizeof(*ev));
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->seq = cl->seq++;
    ev->from = -1;
    ev->to = -1;
    return ev;
}

void event_free(struct sim_event *ev)
{
    if (ev == NULL) {
        return;
    }
    if (ev->kind == EV_MSG && ev->msg.type == CORE_MSG_APPEND) {
        for (size_t i = 0; i < ev->msg.append.n_entries; i++) {
            entry_unref(ev->entry_refs[i]);
        }
    }
    free(ev->entries);
    free(ev->entry_refs);
    free(ev->snap_data);
    free(ev->bootstrap);
    free(ev->bootstrap_ids);
    free(ev);
}

/* Schedules a fault-side event (revive, heal, ...) the caller fills in. */
struct sim_event *cluster_event(struct cluster *cl, enum sim_ev_kind kind, int64_t at)
{
    struct sim_event *ev = event_new(cl, kind);
    ev->at = at;
    heap_push(cl, ev);
    return ev;
}

static struct sim_event *msg_clone(struct cluster *cl, const struct sim_event *src)
{
    struct sim_event *ev = event_new(cl, src->kind);
    uint64_t seq = ev->seq;
    *ev = *src;
    ev->seq = seq;
    ev->bootstrap = NULL;
    ev->bootstrap_ids = NULL;
    ev->entries = NULL;
    ev->entry_refs = NULL;
    ev->snap_data = NULL;
    if (src->kind != EV_MSG) {
        return ev;
    }
    if (src->msg.type == CORE_MSG_SNAPSHOT) {
        ev->snap_data = sim_realloc(NULL, src->msg.snapshot.len + 1);
        memcpy(ev->snap_data, src->snap_data, src->msg.snapshot.len);
        ev->msg.snapshot.data = ev->snap_data;
    }
    if (src->msg.type == CORE_MSG_VOTE_REQUEST && src->msg.vote_request.n_bootstrap) {
        unsigned nb = src->msg.vote_request.n_bootstrap;
        ev->bootstrap_ids = sim_realloc(NULL, nb * sizeof(*ev->bootstrap_ids));
        ev->bootstrap = sim_realloc(NULL, nb * sizeof(*ev->bootstrap));
        memcpy(ev->bootstrap_ids, src->bootstrap_ids, nb * sizeof(*ev->bootstrap_ids));
        for (unsigned i = 0; i < nb; i++) {
            ev->bootstrap[i] = ev->bootstrap_ids[i];
        }
        ev->msg.vote_request.bootstrap = ev->bootstrap;
    }
    if (src->msg.type == CORE_MSG_APPEND && src->msg.append.n_entries) {
        size_t ne = src->msg.append.n_entries;
        ev->entries = sim_realloc(NULL, ne * sizeof(*ev->entries));
        ev->entry_refs = sim_realloc(NULL, ne * sizeof(*ev->entry_refs));
        for (size_t i = 0; i < ne; i++) {
            ev->entry_refs[i] = src->entry_refs[i];
            ev->entry_refs[i]->refs++;
            ev->entries[i] = ev->entry_refs[i]->e;
        }
        ev->msg.append.entries = ev->entries;
    }
    return ev;
}

const char *msg_name(enum core_msg_type t)
{
    switch (t) {
    case CORE_MSG_VOTE_REQUEST:
        return "VOTE_REQUEST";
    case CORE_MSG_VOTE_RESPONSE:
        return "VOTE_RESPONSE";
    case CORE_MSG_APPEND:
        return "APPEND";
    case CORE_MSG_APPEND_RESPONSE:
        return "APPEND_RESPONSE";
    case CORE_MSG_TIMEOUT_NOW:
        return "TIMEOUT_NOW";
    case CORE_MSG_SNAPSHOT:
        return "SNAPSHOT";
    }
    return "?";
}

void msg_describe(const struct core_msg *m, char *buf, size_t cap)
{
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST:
        snprintf(buf, cap, "%sVOTE_REQUEST e=%" PRIu64 " last=%" PRIu64 "/%" PRIu64 " boot=%u%s",
                 m->vote_request.pre_vote ? "PRE_" : "", m->epoch, m->vote_request.last_index,
                 m->vote_request.last_epoch, m->vote_request.n_bootstrap,
                 m->vote_request.transfer ? " transfer" : "");
        break;
    case CORE_MSG_VOTE_RESPONSE:
        snprintf(buf, cap, "%sVOTE_RESPONSE e=%" PRIu64 " granted=%d",
                 m->vote_response.pre_vote ? "PRE_" : "", m->epoch, m->vote_response.granted);
        break;
    case CORE_MSG_APPEND:
        snprintf(buf, cap,
                 "APPEND e=%" PRIu64 " prev=%" PRIu64 "/%" PRIu64 " commit=%" PRIu64 " n=%zu",
                 m->epoch, m->append.prev_index, m->append.prev_epoch, m->append.commit_index,
                 m->append.n_entries);
        break;
    case CORE_MSG_APPEND_RESPONSE:
        snprintf(buf, cap, "APPEND_RESPONSE e=%" PRIu64 " ok=%d match=%" PRIu64 " hint=%" PRIu64,
                 m->epoch, m->append_response.success, m->append_response.match_index,
                 m->append_response.hint_index);
        break;
    case CORE_MSG_SNAPSHOT:
        snprintf(buf, cap, "SNAPSHOT e=%" PRIu64 " index=%" PRIu64 "/%" PRIu64 " %zu bytes",
                 m->epoch, m->snapshot.index, m->snapshot.epoch, m->snapshot.len);
        break;
    default:
        snprintf(buf, cap, "%s", msg_name(m->type));
    }
}

bool cluster_connected(const struct cluster *cl, int a, int b)
{
    return cl->nodes[a].group == cl->nodes[b].group;
}

static unsigned drop_rate(const struct cluster *cl)
{
    return cl->p.drop_permille + cl->extra_drop_permille;
}

void release_msg(struct cluster *cl, struct sim_event *ev)
{
    struct sim_node *to = &cl->nodes[ev->to];
    char d[160];
    if (!to->alive || !cluster_connected(cl, ev->from, ev->to) ||
        rng_permille(&cl->rng, drop_rate(cl)) || (cl->filter && cl->filter(cl, ev))) {
        if (cl->verbose) {
            msg_describe(&ev->msg, d, sizeof(d));
            sim_trace(cl, "%s -> %s dropped %s", cl->nodes[ev->from].id, to->id, d);
        }
        event_free(ev);
        return;
    }
    ev->to_inc = to->incarnation;
    int64_t delay = rng_permille(&cl->rng, cl->p.slow_permille)
                        ? rng_between(&cl->rng, cl->p.delay_max, cl->p.slow_max)
                        : rng_between(&cl->rng, cl->p.delay_min, cl->p.delay_max);
    ev->at = cl->now + delay;
    int64_t *last = &cl->link_last[ev->from][ev->to];
    if (!rng_permille(&cl->rng, cl->p.reorder_permille) && ev->at < *last) {
        ev->at = *last; /* TCP keeps order on a connection */
    }
    if (ev->at > *last) {
        *last = ev->at;
    }
    if (rng_permille(&cl->rng, cl->p.dup_permille)) {
        struct sim_event *dup = msg_clone(cl, ev);
        dup->at = ev->at + rng_between(&cl->rng, 0, cl->p.delay_max);
        if (dup->at > *last) {
            *last = dup->at; /* a peer_down notice still comes after it */
        }
        heap_push(cl, dup);
    }
    heap_push(cl, ev);
}

void deliver_msg(struct cluster *cl, struct sim_event *ev)
{
    struct sim_node *to = &cl->nodes[ev->to];
    char d[160] = "";
    if (cl->verbose) {
        msg_describe(&ev->msg, d, sizeof(d));
    }
    if (!to->alive || to->incarnation != ev->to_inc || !cluster_connected(cl, ev->from, ev->to)) {
        sim_trace(cl, "%s <- %s lost %s", to->id, cl->nodes[ev->from].id, d);
        return;
    }
    sim_trace(cl, "%s <- %s %s", to->id, cl->nodes[ev->from].id, d);
    ev->msg.from = cl->nodes[ev->from].id;
    core_recv(to->core, cl->now, &ev->msg);
    node_after_input(cl, to);
}

void deliver_request(struct cluster *cl, struct sim_event *ev)
{
    struct sim_node *to = &cl->nodes[ev->to];
    if (SIM_IS_READ(ev->token)) {
        if (!to->alive) {
            client_on_refused(cl, ev->token);
            return;
        }
        sim_trace(cl, "%s <- client read token %" PRIx64, to->id, ev->token);
        core_read_index(to->core, cl->now, ev->token);
        node_after_input(cl, to);
        return;
    }
    struct sim_attempt *a = &cl->attempts[ev->token - 1];
    if (!to->alive) {
        sim_trace(cl, "client c%d -> %s refused (token %" PRIu64 ")", a->client, to->id, ev->token);
        client_on_refused(cl, ev->token);
        return;
    }
    char cid[64], data[64];
    client_ids(a->client, a->req, cid, sizeof(cid), data, sizeof(data));
    sim_trace(cl, "%s <- client request %s token %" PRIu64, to->id, cid, ev->token);
    core_client_request(to->core, cl->now, ev->token, cid, (const uint8_t *)data, strlen(data),
                        a->seen_index);
    node_after_input(cl, to);
}
