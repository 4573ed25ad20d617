/*
 * tests/sim/membership.c — the operator: membership requests to the cores
 * (core_remove_member, and core_force_config for the one scripted recovery),
 * what follows their answers (a decommissioned node stopped for good), and
 * discovery's listings (core_peer_listed: a stopped or vanished node is no
 * longer listed, which lets the automatic cleanup remove it).
 *
 * A request is an event reaching one node a few ms after it is made, like an
 * API call over a connection: a dead node refuses it, a paused one takes it
 * when it runs again, and a crash before the answer leaves it unanswered.
 * Answers are checked as they leave the node (the checker sees each token
 * answered once, by the node asked, and an OK removal naming an entry that
 * removes the member). Helpers on configurations live here too.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *admin_status_name(int st)
{
    static const char *names[] = {"OK",       "NOT_PRIMARY", "UNKNOWN",   "REJECTED",
                                  "CONFLICT", "NOT_FOUND",   "NO_QUORUM", "BUSY"};
    if (st == -2) {
        return "refused";
    }
    return st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])) ? names[st] : "none";
}

struct sim_admin *admin_get(struct cluster *cl, uint64_t token)
{
    if (token <= SIM_ADMIN_TOKEN || token - SIM_ADMIN_TOKEN > cl->n_admin) {
        return NULL;
    }
    return &cl->admin[token - SIM_ADMIN_TOKEN - 1];
}

static uint64_t admin_new(struct cluster *cl, enum sim_admin_op op, int node, int target,
                          enum sim_admin_after after, int64_t delay)
{
    if (cl->n_admin == cl->cap_admin) {
        cl->cap_admin = cl->cap_admin ? cl->cap_admin * 2 : 16;
        cl->admin = sim_realloc(cl->admin, cl->cap_admin * sizeof(*cl->admin));
    }
    cl->admin[cl->n_admin++] = (struct sim_admin){
        .op = op,
        .node = node,
        .target = target,
        .after = after,
        .status = -1,
        .sent_at = cl->now,
        .answered_at = -1,
    };
    uint64_t token = SIM_ADMIN_TOKEN + cl->n_admin;
    struct sim_event *ev = cluster_event(cl, EV_ADMIN, cl->now + (delay > 0 ? delay : 1));
    ev->to = node;
    ev->token = token;
    return token;
}

/* Ask `node` to remove `target`; `after` says what the operator does next. */
uint64_t admin_remove(struct cluster *cl, int node, int target, enum sim_admin_after after,
                      int64_t delay)
{
    cl->ms.remove_requests++;
    sim_trace(cl, "operator: ask %s to remove %s%s", cl->nodes[node].id, cl->nodes[target].id,
              after == AFTER_RETIRE_ON_OK       ? " (then stop it)"
              : after == AFTER_RETIRE_ON_COMMIT ? " (stop it once removed)"
                                                : "");
    return admin_new(cl, ADMIN_REMOVE, node, target, after, delay);
}

/* UNSAFE recovery: `node` becomes the only voter, every other live node a
 * learner. Scenarios only. */
uint64_t admin_force(struct cluster *cl, int node)
{
    sim_trace(cl, "operator: force the configuration on %s", cl->nodes[node].id);
    return admin_new(cl, ADMIN_FORCE, node, -1, AFTER_NOTHING, 1);
}

void deliver_admin(struct cluster *cl, struct sim_event *ev)
{
    struct sim_admin *a = admin_get(cl, ev->token);
    struct sim_node *n = &cl->nodes[ev->to];
    if (!n->alive) {
        a->status = -2;
        a->answered_at = cl->now;
        sim_trace(cl, "operator -> %s refused", n->id);
        return;
    }
    if (a->op == ADMIN_REMOVE) {
        sim_trace(cl, "%s <- operator: remove %s (token %" PRIu64 ")", n->id,
                  cl->nodes[a->target].id, ev->token);
        core_remove_member(n->core, cl->now, ev->token, cl->nodes[a->target].id);
    } else {
        const char *keep[SIM_MAX_NODES];
        unsigned nk = 0;
        for (unsigned i = 0; i < cl->p.nodes; i++) {
            if ((int)i != ev->to && cl->nodes[i].alive) {
                keep[nk++] = cl->nodes[i].id;
            }
        }
        sim_trace(cl, "%s <- operator: force the configuration, keeping %u", n->id, nk);
        core_force_config(n->core, cl->now, ev->token, keep, nk);
    }
    node_after_input(cl, n);
}

static void retire_soon(struct cluster *cl, int target)
{
    struct sim_event *ev = cluster_event(cl, EV_RETIRE, cl->now + rng_between(&cl->rng, 1, 50));
    ev->to = target;
}

/* The answer leaves node n. */
void admin_on_reply(struct cluster *cl, struct sim_node *n, const struct sim_event *ev)
{
    struct sim_admin *a = admin_get(cl, ev->token);
    const struct core_reply *r = &ev->reply;
    if (a == NULL) {
        sim_fail(cl, "%s answered operator token %" PRIu64 " never given", n->id, ev->token);
        return;
    }
    if (a->node != n->idx) {
        sim_fail(cl, "%s answered operator token %" PRIu64 " that went to %s", n->id, ev->token,
                 cl->nodes[a->node].id);
        return;
    }
    if (++a->replies > 1) {
        sim_fail(cl, "%s answered operator token %" PRIu64 " twice", n->id, ev->token);
        return;
    }
    a->status = (int)r->status;
    a->index = r->index;
    a->epoch = r->epoch;
    a->answered_at = cl->now;
    sim_trace(cl, "operator <- %s: %s (index %" PRIu64 ")", n->id, admin_status_name(a->status),
              r->index);
    if (a->op == ADMIN_FORCE) {
        return;
    }
    switch (r->status) {
    case CORE_REPLY_OK:
        cl->ms.remove_ok++;
        break;
    case CORE_REPLY_NOT_PRIMARY:
    case CORE_REPLY_NOT_FOUND:
    case CORE_REPLY_NO_QUORUM:
    case CORE_REPLY_BUSY:
        cl->ms.remove_refused++;
        return;
    default:
        sim_fail(cl, "%s answered a removal with status %d", n->id, (int)r->status);
        return;
    }
    /* OK: the entry named must remove the member, unless it is gone
     * already (the answer waited for an fsync while a newer primary's
     * entries replaced it: OK means appended, not committed). */
    if (r->index == 0 || r->epoch == 0) {
        sim_fail(cl, "%s answered a removal OK at index %" PRIu64 " epoch %" PRIu64, n->id,
                 r->index, r->epoch);
        return;
    }
    const struct sim_entry *e = r->index <= n->mem.len ? n->mem.at[r->index - 1] : NULL;
    if (e != NULL && e->e.epoch == r->epoch) {
        struct core_config cfg;
        if (e->e.type != CORE_ENTRY_CONFIG || core_config_decode(e->e.data, e->e.len, &cfg) != 0 ||
            config_is_member(&cfg, cl->nodes[a->target].id) ||
            !core_config_removed(&cfg, cl->nodes[a->target].id)) {
            sim_fail(cl,
                     "%s answered the removal of %s OK at index %" PRIu64
                     " but that entry does not remove it",
                     n->id, cl->nodes[a->target].id, r->index);
            return;
        }
    }
    if (a->after == AFTER_RETIRE_ON_OK) {
        a->after = AFTER_NOTHING;
        retire_soon(cl, a->target);
    }
}

/* A committed configuration put `target` on the removed list. */
void admin_on_removed(struct cluster *cl, int target)
{
    for (size_t i = 0; i < cl->n_admin; i++) {
        struct sim_admin *a = &cl->admin[i];
        if (a->target == target && a->after == AFTER_RETIRE_ON_COMMIT) {
            a->after = AFTER_NOTHING;
            retire_soon(cl, target);
        }
    }
}

/* ========================================================================
 * Discovery's listings
 * ====================================================================== */

void cluster_set_listed(struct cluster *cl, int i, bool listed)
{
    struct sim_node *n = &cl->nodes[i];
    if (n->listed == listed) {
        return;
    }
    n->listed = listed;
    if (listed) {
        cl->n_unlisted--;
    } else {
        cl->n_unlisted++;
    }
    sim_trace(cl, "discovery %s %s", listed ? "lists" : "no longer lists", n->id);
    for (unsigned j = 0; j < cl->p.nodes; j++) {
        if ((int)j != i && cl->nodes[j].alive) {
            core_peer_listed(cl->nodes[j].core, n->id, listed);
        }
    }
}

/* Peers a core learns of later (a restart, a message from a node that has
 * just died) start listed: tell it again about those that are not. */
void node_apply_listing(struct cluster *cl, struct sim_node *n)
{
    if (cl->n_unlisted == 0 || n->core == NULL) {
        return;
    }
    for (unsigned j = 0; j < cl->p.nodes; j++) {
        if ((int)j != n->idx && !cl->nodes[j].listed) {
            core_peer_listed(n->core, cl->nodes[j].id, false);
        }
    }
}

/* ========================================================================
 * Configurations
 * ====================================================================== */

void node_config(const struct sim_node *n, struct core_config *cfg, uint64_t *index)
{
    struct core_status st;
    core_get_status(n->core, n->cl->now, &st);
    *cfg = st.config;
    *index = st.config_index;
}

unsigned config_voters(const struct core_config *cfg)
{
    unsigned v = 0;
    for (unsigned i = 0; i < cfg->n; i++) {
        v += cfg->members[i].voter;
    }
    return v;
}

bool config_is_voter(const struct core_config *cfg, const char *id)
{
    const struct core_member *m = core_config_member(cfg, id);
    return m != NULL && m->voter;
}

bool config_is_member(const struct core_config *cfg, const char *id)
{
    return core_config_member(cfg, id) != NULL;
}

/* How many members (added, removed, promoted or demoted) and how many
 * voters (in one and not the other) differ between a and b. */
void config_diff(const struct core_config *a, const struct core_config *b, unsigned *members,
                 unsigned *voters)
{
    *members = *voters = 0;
    for (unsigned i = 0; i < a->n; i++) {
        const struct core_member *m = core_config_member(b, a->members[i].id);
        if (m == NULL) {
            (*members)++;
            *voters += a->members[i].voter;
        } else if (m->voter != a->members[i].voter) {
            (*members)++;
            (*voters)++;
        }
    }
    for (unsigned i = 0; i < b->n; i++) {
        if (core_config_member(a, b->members[i].id) == NULL) {
            (*members)++;
            *voters += b->members[i].voter;
        }
    }
}

void config_describe(const struct core_config *cfg, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < cfg->n && used < cap; i++) {
        used += (size_t)snprintf(buf + used, cap - used, "%s%s%s", used ? " " : "",
                                 cfg->members[i].voter ? "v:" : "l:", cfg->members[i].id);
    }
    for (unsigned i = 0; i < cfg->n_removed && used < cap; i++) {
        used +=
            (size_t)snprintf(buf + used, cap - used, "%sr:%s", used ? " " : "", cfg->removed[i]);
    }
}
