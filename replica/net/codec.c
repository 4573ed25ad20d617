/*
 * replica/net/codec.c — see codec.h.
 */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void codec_entry_to_pb(const struct core_entry *e, Replicacao__Entry *pb)
{
    replicacao__entry__init(pb);
    pb->index = e->index;
    pb->epoch = e->epoch;
    pb->type = (Replicacao__EntryType)e->type;
    pb->client_id = (char *)(e->client_id ? e->client_id : "");
    pb->primary = (char *)(e->primary ? e->primary : "");
    pb->data.data = (uint8_t *)e->data;
    pb->data.len = e->len;
    pb->time_ms = e->time_ms;
}

int codec_from_core(struct codec_out *o, const char *self, const struct core_msg *m)
{
    memset(o, 0, sizeof(*o));
    wire_init(&o->env, self, m->epoch);
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST: {
        Replicacao__VoteRequest *v = &o->body.vote_request;
        replicacao__vote_request__init(v);
        v->last_index = m->vote_request.last_index;
        v->last_epoch = m->vote_request.last_epoch;
        v->pre_vote = m->vote_request.pre_vote;
        v->transfer = m->vote_request.transfer;
        v->n_bootstrap = m->vote_request.n_bootstrap;
        v->bootstrap = (char **)m->vote_request.bootstrap;
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
        o->env.vote_request = v;
        break;
    }
    case CORE_MSG_VOTE_RESPONSE: {
        Replicacao__VoteResponse *v = &o->body.vote_response;
        replicacao__vote_response__init(v);
        v->granted = m->vote_response.granted;
        v->pre_vote = m->vote_response.pre_vote;
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE;
        o->env.vote_response = v;
        break;
    }
    case CORE_MSG_APPEND: {
        Replicacao__Append *a = &o->body.append;
        replicacao__append__init(a);
        a->prev_index = m->append.prev_index;
        a->prev_epoch = m->append.prev_epoch;
        a->commit_index = m->append.commit_index;
        a->round = m->append.round;
        size_t n = m->append.n_entries;
        if (n > 0) {
            o->entries = malloc(n * sizeof(*o->entries));
            o->entry_ptrs = malloc(n * sizeof(*o->entry_ptrs));
            if (o->entries == NULL || o->entry_ptrs == NULL) {
                codec_out_release(o);
                return -1;
            }
            for (size_t i = 0; i < n; i++) {
                codec_entry_to_pb(&m->append.entries[i], &o->entries[i]);
                o->entry_ptrs[i] = &o->entries[i];
            }
        }
        a->n_entries = n;
        a->entries = o->entry_ptrs;
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
        o->env.append = a;
        break;
    }
    case CORE_MSG_APPEND_RESPONSE: {
        Replicacao__AppendResponse *a = &o->body.append_response;
        replicacao__append_response__init(a);
        a->success = m->append_response.success;
        a->match_index = m->append_response.match_index;
        a->hint_index = m->append_response.hint_index;
        a->round = m->append_response.round;
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE;
        o->env.append_response = a;
        break;
    }
    case CORE_MSG_TIMEOUT_NOW:
        replicacao__timeout_now__init(&o->body.timeout_now);
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_TIMEOUT_NOW;
        o->env.timeout_now = &o->body.timeout_now;
        break;
    case CORE_MSG_SNAPSHOT: {
        Replicacao__InstallSnapshot *s = &o->body.install_snapshot;
        replicacao__install_snapshot__init(s);
        s->index = m->snapshot.index;
        s->epoch = m->snapshot.epoch;
        s->data.data = (uint8_t *)m->snapshot.data;
        s->data.len = m->snapshot.len;
        o->env.body_case = REPLICACAO__ENVELOPE__BODY_INSTALL_SNAPSHOT;
        o->env.install_snapshot = s;
        break;
    }
    }
    return 0;
}

void codec_out_release(struct codec_out *o)
{
    free(o->entries);
    free(o->entry_ptrs);
    o->entries = NULL;
    o->entry_ptrs = NULL;
}

int codec_to_core(const Envelope *env, struct core_msg *m, struct core_entry **scratch, char *err,
                  size_t errlen)
{
    memset(m, 0, sizeof(*m));
    *scratch = NULL;
    m->from = env->from;
    m->epoch = env->epoch;
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST: {
        const Replicacao__VoteRequest *v = env->vote_request;
        m->type = CORE_MSG_VOTE_REQUEST;
        m->vote_request.last_index = v->last_index;
        m->vote_request.last_epoch = v->last_epoch;
        m->vote_request.pre_vote = v->pre_vote;
        m->vote_request.transfer = v->transfer;
        /* wire_unpack checked the list's length and ids. */
        m->vote_request.n_bootstrap = (unsigned)v->n_bootstrap;
        m->vote_request.bootstrap = (const char *const *)v->bootstrap;
        return 1;
    }
    case REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE:
        m->type = CORE_MSG_VOTE_RESPONSE;
        m->vote_response.granted = env->vote_response->granted;
        m->vote_response.pre_vote = env->vote_response->pre_vote;
        return 1;
    case REPLICACAO__ENVELOPE__BODY_APPEND: {
        const Replicacao__Append *a = env->append;
        m->type = CORE_MSG_APPEND;
        m->append.prev_index = a->prev_index;
        m->append.prev_epoch = a->prev_epoch;
        m->append.commit_index = a->commit_index;
        m->append.round = a->round;
        if (a->n_entries > 0) {
            struct core_entry *es = calloc(a->n_entries, sizeof(*es));
            if (es == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            for (size_t i = 0; i < a->n_entries; i++) {
                /* wire_unpack checked each field; what is left is the
                 * payload of a configuration entry, which only the core's
                 * codec can read. */
                const Replicacao__Entry *pe = a->entries[i];
                struct core_config cfg;
                if (pe->type == REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG &&
                    core_config_decode(pe->data.data, pe->data.len, &cfg) != 0) {
                    free(es);
                    snprintf(err, errlen, "undecodable configuration in entry %llu",
                             (unsigned long long)pe->index);
                    return -1;
                }
                es[i].index = pe->index;
                es[i].epoch = pe->epoch;
                es[i].type = (enum core_entry_type)pe->type;
                es[i].time_ms = pe->time_ms;
                es[i].client_id = pe->client_id;
                es[i].primary = pe->primary;
                es[i].data = pe->data.data;
                es[i].len = pe->data.len;
            }
            *scratch = es;
        }
        m->append.n_entries = a->n_entries;
        m->append.entries = *scratch;
        return 1;
    }
    case REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE:
        m->type = CORE_MSG_APPEND_RESPONSE;
        m->append_response.success = env->append_response->success;
        m->append_response.match_index = env->append_response->match_index;
        m->append_response.hint_index = env->append_response->hint_index;
        m->append_response.round = env->append_response->round;
        return 1;
    case REPLICACAO__ENVELOPE__BODY_TIMEOUT_NOW:
        m->type = CORE_MSG_TIMEOUT_NOW;
        return 1;
    case REPLICACAO__ENVELOPE__BODY_INSTALL_SNAPSHOT:
        m->type = CORE_MSG_SNAPSHOT;
        m->snapshot.index = env->install_snapshot->index;
        m->snapshot.epoch = env->install_snapshot->epoch;
        m->snapshot.data = env->install_snapshot->data.data;
        m->snapshot.len = env->install_snapshot->data.len;
        return 1;
    default:
        return 0;
    }
}
