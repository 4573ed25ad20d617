/*
 * tests/sim/client.c — simulated clients, the coordinator's stand-in.
 *
 * Each client has at most one request outstanding, sends it to the node it
 * believes is primary, follows NOT_PRIMARY hints, and retries the SAME client
 * id after UNKNOWN, a refused connection or a reply that does not come in
 * time. Retrying the same id is what exercises guarantee 3 (a retried request
 * is applied once): an earlier attempt may have committed after all.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void client_ids(int k, uint64_t req, char *cid, size_t cid_cap, char *data, size_t data_cap)
{
    snprintf(cid, cid_cap, "c%d-%" PRIu64, k, req);
    snprintf(data, data_cap, "v%d-%" PRIu64, k, req);
}

bool client_parse_id(const char *cid, int *k, uint64_t *req)
{
    char *end;
    if (cid[0] != 'c') {
        return false;
    }
    long kk = strtol(cid + 1, &end, 10);
    if (end == cid + 1 || *end != '-' || kk < 0 || kk >= SIM_MAX_CLIENTS) {
        return false;
    }
    const char *r = end + 1;
    unsigned long long rr = strtoull(r, &end, 10);
    if (end == r || *end != '\0' || rr == 0) {
        return false;
    }
    *k = (int)kk;
    *req = rr;
    return true;
}

void client_init(struct cluster *cl, int k)
{
    struct sim_client *c = &cl->clients[k];
    memset(c, 0, sizeof(*c));
    c->target = (int)rng_between(&cl->rng, 0, cl->p.nodes - 1);
    c->next_action = SIM_NEVER;
}

void client_free(struct sim_client *c)
{
    free(c->committed_at);
    free(c->expired);
    c->committed_at = NULL;
}

bool clients_idle(const struct cluster *cl)
{
    for (unsigned k = 0; k < cl->p.clients; k++) {
        if (cl->clients[k].busy) {
            return false;
        }
    }
    return true;
}

static int random_node(struct cluster *cl)
{
    return (int)rng_between(&cl->rng, 0, cl->p.nodes - 1);
}

uint64_t client_send(struct cluster *cl, int k, int node)
{
    struct sim_client *c = &cl->clients[k];
    if (cl->n_attempts == cl->cap_attempts) {
        cl->cap_attempts = cl->cap_attempts ? cl->cap_attempts * 2 : 64;
        cl->attempts = realloc(cl->attempts, cl->cap_attempts * sizeof(*cl->attempts));
        if (cl->attempts == NULL) {
            abort();
        }
    }
    cl->attempts[cl->n_attempts++] = (struct sim_attempt){
        .client = k, .req = c->req, .node = node, .status = -1, .seen_index = c->seen_index};
    uint64_t token = cl->n_attempts;
    c->last_token = token;
    c->target = node;
    struct sim_event *ev = cluster_event(cl, EV_CLIENT_REQ, cl->now + rng_between(&cl->rng, 1, 5));
    ev->to = node;
    ev->token = token;
    sim_trace(cl, "client c%d sends c%d-%" PRIu64 " to %s (token %" PRIu64 ")", k, k, c->req,
              cl->nodes[node].id, token);
    if (!c->manual) {
        c->next_action = cl->now + cl->p.client_timeout_ms;
    }
    return token;
}

/* A linearizable read attempt to `node`. */
static void client_send_read(struct cluster *cl, int k, int node)
{
    struct sim_client *c = &cl->clients[k];
    c->target = node;
    struct sim_event *ev = cluster_event(cl, EV_CLIENT_REQ, cl->now + rng_between(&cl->rng, 1, 5));
    ev->to = node;
    ev->token = SIM_READ_TOKEN | (uint64_t)k << 32 | c->read_seq;
    sim_trace(cl, "client c%d reads (floor %" PRIu64 ") at %s", k, c->read_floor,
              cl->nodes[node].id);
    c->next_action = cl->now + cl->p.client_timeout_ms;
}

/* The client's timer: start the next request, or retry the current one. */
void client_act(struct cluster *cl, int k)
{
    struct sim_client *c = &cl->clients[k];
    c->next_action = SIM_NEVER;
    if (!c->busy) {
        if (c->stopped || c->manual) {
            return;
        }
        c->busy = true;
        if (cl->p.read_permille && rng_permille(&cl->rng, cl->p.read_permille)) {
            /* What any client was told is committed before this read began
             * must be in what it returns. */
            c->reading = true;
            c->read_seq++;
            c->read_floor = cl->max_acked_index;
            client_send_read(cl, k, c->target);
            return;
        }
        c->req++;
        /* Any acknowledged index is in the log for good, so the request,
         * if ever appended, lands after it: what lets a primary refuse a
         * retry whose session expired instead of applying it twice. */
        c->seen_index = cl->max_acked_index;
        client_send(cl, k, c->target);
        return;
    }
    if (c->reading) {
        client_send_read(cl, k, random_node(cl));
        return;
    }
    if (!cl->attempts[c->last_token - 1].seen) {
        /* A timeout with no answer at all: the node may be gone or cut off. */
        c->target = random_node(cl);
    }
    client_send(cl, k, c->target);
}

/* Not served: try where the answer points at once, or elsewhere shortly. */
static void follow_hint(struct cluster *cl, struct sim_client *c, const struct core_reply *r,
                        int from)
{
    int hint = r->primary[0] ? cluster_node_index(cl, r->primary) : -1;
    if (hint >= 0 && hint != from) {
        c->target = hint;
        c->next_action = cl->now + 1;
    } else {
        c->target = random_node(cl);
        c->next_action = cl->now + rng_between(&cl->rng, 20, 100);
    }
}

static void client_on_read_reply(struct cluster *cl, const struct sim_event *ev)
{
    int k = (int)((ev->token >> 32) & 0xff);
    struct sim_client *c = &cl->clients[k];
    const struct core_reply *r = &ev->reply;
    if (!c->busy || !c->reading || (ev->token & 0xffffffffULL) != (c->read_seq & 0xffffffffULL)) {
        return; /* an answer to a read already settled */
    }
    sim_trace(cl, "client c%d <- %s: read status %d index %" PRIu64 " (floor %" PRIu64 ")", k,
              cl->nodes[ev->from].id, (int)r->status, r->index, c->read_floor);
    if (r->status == CORE_REPLY_OK) {
        if (r->index < c->read_floor) {
            sim_fail(cl,
                     "stale linearizable read: %s answered c%d at index %" PRIu64 ", below %" PRIu64
                     " acknowledged before the read began",
                     cl->nodes[ev->from].id, k, r->index, c->read_floor);
        }
        c->busy = false;
        c->reading = false;
        cl->reads_ok++;
        c->next_action =
            c->stopped ? SIM_NEVER : cl->now + rng_between(&cl->rng, 0, cl->p.think_max_ms);
        return;
    }
    follow_hint(cl, c, r, ev->from);
}

void client_on_reply(struct cluster *cl, const struct sim_event *ev)
{
    if (SIM_IS_READ(ev->token)) {
        client_on_read_reply(cl, ev);
        return;
    }
    struct sim_attempt *a = &cl->attempts[ev->token - 1];
    struct sim_client *c = &cl->clients[a->client];
    const struct core_reply *r = &ev->reply;
    a->seen = true;
    static const char *names[] = {"OK", "NOT_PRIMARY", "UNKNOWN", "REJECTED"};
    sim_trace(cl, "client c%d <- %s: %s for c%d-%" PRIu64 " index %" PRIu64 " primary '%s'",
              a->client, cl->nodes[ev->from].id,
              r->status <= CORE_REPLY_REJECTED ? names[r->status] : "?", a->client, a->req,
              r->index, r->primary);
    if (!c->busy || c->reading || a->req != c->req) {
        return; /* an answer to something already settled (a read may be out now) */
    }
    if (r->status == CORE_REPLY_OK) {
        /* Any attempt's OK settles the request: they share the client id. */
        c->busy = false;
        cl->acked++;
        if (r->index > cl->max_acked_index) {
            cl->max_acked_index = r->index;
        }
        c->next_action = c->stopped || c->manual
                             ? SIM_NEVER
                             : cl->now + rng_between(&cl->rng, 0, cl->p.think_max_ms);
        return;
    }
    if (r->status == CORE_REPLY_EXPIRED) {
        /* Its session expired: it may or may not have been applied, and
         * will not be applied again. The client moves on. */
        c->busy = false;
        cl->expired++;
        if (c->n_expired == c->cap_expired) {
            c->cap_expired = c->cap_expired ? c->cap_expired * 2 : 16;
            c->expired = sim_realloc(c->expired, c->cap_expired * sizeof(*c->expired));
        }
        c->expired[c->n_expired++] = c->req;
        c->next_action = c->stopped || c->manual
                             ? SIM_NEVER
                             : cl->now + rng_between(&cl->rng, 0, cl->p.think_max_ms);
        return;
    }
    if (ev->token != c->last_token || c->manual) {
        return; /* a newer attempt is already under way */
    }
    follow_hint(cl, c, r, ev->from);
}

void client_on_refused(struct cluster *cl, uint64_t token)
{
    if (SIM_IS_READ(token)) {
        struct sim_client *c = &cl->clients[(token >> 32) & 0xff];
        if (c->busy && c->reading) {
            c->target = random_node(cl);
            c->next_action = cl->now + rng_between(&cl->rng, 5, 20);
        }
        return;
    }
    struct sim_attempt *a = &cl->attempts[token - 1];
    struct sim_client *c = &cl->clients[a->client];
    if (!c->busy || c->reading || token != c->last_token || c->manual) {
        return;
    }
    c->target = random_node(cl);
    c->next_action = cl->now + rng_between(&cl->rng, 5, 20);
}
