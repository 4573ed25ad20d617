/*
 * replica/net/traffic.c — see traffic.h.
 */
#include "traffic.h"

#include <stdio.h>
#include <string.h>

/* What the item says beyond type and peer: entries carried, pre-vote,
 * granted or accepted. */
static void describe(const Envelope *env, uint32_t *entries, bool *pre_vote, bool *granted)
{
    *entries = 0;
    *pre_vote = *granted = false;
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST:
        *pre_vote = env->vote_request->pre_vote;
        break;
    case REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE:
        *pre_vote = env->vote_response->pre_vote;
        *granted = env->vote_response->granted;
        break;
    case REPLICACAO__ENVELOPE__BODY_APPEND:
        *entries = (uint32_t)env->append->n_entries;
        break;
    case REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE:
        *granted = env->append_response->success;
        break;
    default:
        break;
    }
}

void traffic_note(struct traffic *t, const Envelope *env, const char *to, int64_t wall_ms)
{
    const char *type = wire_body_name(env);
    uint32_t entries;
    bool pre_vote, granted;
    describe(env, &entries, &pre_vote, &granted);
    uint64_t bytes = replicacao__envelope__get_packed_size(env);
    struct traffic_item *it = NULL;
    for (size_t i = 0; !t->every && i < t->n && it == NULL; i++) {
        if (strcmp(t->items[i].type, type) == 0 && strcmp(t->items[i].to, to) == 0 &&
            t->items[i].pre_vote == pre_vote) {
            it = &t->items[i];
        }
    }
    if (it == NULL) {
        if (t->n >= LIMIT_TRAFFIC_ITEMS) {
            t->dropped++;
            return;
        }
        it = &t->items[t->n++];
        memset(it, 0, sizeof(*it));
        snprintf(it->type, sizeof(it->type), "%s", type);
        snprintf(it->to, sizeof(it->to), "%s", to);
        it->time_ms = wall_ms;
        it->pre_vote = pre_vote;
    }
    it->count++;
    it->bytes += bytes;
    it->entries += entries;
    it->granted = granted;
    if (env->epoch > it->epoch) {
        it->epoch = env->epoch;
    }
}

bool traffic_take(struct traffic *t, Replicacao__Traffic *pb, Replicacao__TrafficItem *items,
                  Replicacao__TrafficItem **ptrs, struct traffic_item *keep)
{
    if (t->n == 0 && t->dropped == 0) {
        return false;
    }
    replicacao__traffic__init(pb);
    memcpy(keep, t->items, t->n * sizeof(*keep)); /* the strings outlive the reset */
    for (size_t i = 0; i < t->n; i++) {
        replicacao__traffic_item__init(&items[i]);
        items[i].type = keep[i].type;
        items[i].to = keep[i].to;
        items[i].epoch = keep[i].epoch;
        items[i].bytes = keep[i].bytes;
        items[i].count = keep[i].count;
        items[i].time_ms = keep[i].time_ms;
        items[i].entries = keep[i].entries;
        items[i].pre_vote = keep[i].pre_vote;
        items[i].granted = keep[i].granted;
        ptrs[i] = &items[i];
    }
    pb->n_items = t->n;
    pb->items = ptrs;
    pb->dropped = t->dropped;
    t->n = 0;
    t->dropped = 0;
    return true;
}
