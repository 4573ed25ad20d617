/*
 * replica/core/reads.c — linearizable reads without writing to the log
 * (ReadIndex, dissertation 6.4). A read is safe to answer from the primary's
 * log up to its commit index once two things are known:
 *   - that commit index covers everything acknowledged before the read:
 *     true once the primary has committed an entry of its own epoch (until
 *     then a new primary's commit index may lag its predecessor's);
 *   - it was still the primary after the read arrived: a majority of voters
 *     answered a heartbeat sent after that moment.
 * Reads that arrive together share one heartbeat round: each Append carries
 * the primary's current round and every answer echoes it back.
 */
#include "internal.h"

#include <stdlib.h>

void core_read_index(struct core *c, int64_t now, uint64_t token)
{
    (void)now;
    if (c->role != CORE_PRIMARY || handing_over(c)) {
        out_reply(c, token, CORE_REPLY_NOT_PRIMARY, 0, c->hs.epoch,
                  c->role == CORE_PRIMARY ? "" : c->primary, "not primary");
        return;
    }
    if (c->n_reads == c->cap_reads) {
        size_t cap = c->cap_reads ? c->cap_reads * 2 : 64;
        struct pending_read *r = realloc(c->reads, cap * sizeof(*r));
        if (r == NULL) {
            out_reply(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
            return;
        }
        c->reads = r;
        c->cap_reads = cap;
    }
    c->reads[c->n_reads++] = (struct pending_read){.token = token};
    c->round_wanted = true;
}

/* At a flush: the reads that arrived since the last round get a new one,
 * and every member a heartbeat that carries it. */
void reads_start_round(struct core *c)
{
    if (!c->round_wanted || c->role != CORE_PRIMARY || c->commit < c->epoch_start_index) {
        return; /* advance_commit asks again once our epoch's entry commits */
    }
    c->round_wanted = false;
    bool unassigned = false;
    for (size_t i = 0; i < c->n_reads; i++) {
        unassigned |= c->reads[i].round == 0;
    }
    if (!unassigned) {
        return;
    }
    c->round++;
    for (size_t i = 0; i < c->n_reads; i++) {
        if (c->reads[i].round == 0) {
            c->reads[i].round = c->round;
            c->reads[i].index = c->commit;
        }
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        c->peers[i].need_send = true;
    }
    reads_confirm(c); /* a lone voter confirms its own round */
}

void reads_confirm(struct core *c)
{
    if (c->n_reads == 0) {
        return;
    }
    uint64_t confirmed = majority_round(c);
    size_t kept = 0;
    for (size_t i = 0; i < c->n_reads; i++) {
        struct pending_read *r = &c->reads[i];
        if (r->round != 0 && r->round <= confirmed) {
            out_reply(c, r->token, CORE_REPLY_OK, r->index, c->hs.epoch, c->id, NULL);
        } else {
            c->reads[kept++] = *r;
        }
    }
    c->n_reads = kept;
}

void reads_fail(struct core *c)
{
    for (size_t i = 0; i < c->n_reads; i++) {
        out_reply(c, c->reads[i].token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->primary,
                  "primary changed before the read was confirmed; retry");
    }
    c->n_reads = 0;
    c->round_wanted = false;
}
