/*
 * common/wire.c — see wire.h.
 *
 * wire_unpack is the wire's one validation layer: after protobuf-c has
 * parsed the bytes, every field is checked against its domain (bounds.h,
 * validate.h) before any handler sees the message. Receivers still check
 * what only they can know (an index past their own log).
 */
#include "wire.h"
#include "bounds.h"
#include "frame.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wire_init(Envelope *env, const char *from, uint64_t epoch)
{
    replicacao__envelope__init(env);
    env->version = REPLICACAO__VERSION__PROTOCOL_VERSION;
    env->from = (char *)from;
    env->epoch = epoch;
}

uint8_t *wire_pack(const Envelope *env, size_t *frame_len)
{
    size_t n = replicacao__envelope__get_packed_size(env);
    uint8_t *buf = malloc(FRAME_HEADER_BYTES + n);
    if (buf == NULL) {
        return NULL;
    }
    frame_put_header(buf, (uint32_t)n);
    replicacao__envelope__pack(env, buf + FRAME_HEADER_BYTES);
    *frame_len = FRAME_HEADER_BYTES + n;
    return buf;
}

/* ========================================================================
 * Validation
 * ====================================================================== */

/* Every (nested) message: no unknown field, and every string well-formed
 * UTF-8, as proto3 requires and protobuf-c does not check, and bounded.
 * Walking the descriptors covers fields added to the schema later. */
static const char *strings_valid(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* The protocol version pins the schema: a field it does not have is
     * garbage (protobuf-c would even keep one numbered 0, which it then
     * cannot pack into anything it reads back). */
    if (m->n_unknown_fields > 0) {
        return "a field this protocol version does not have";
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        const char *member = (const char *)m + f->offset;
        size_t n = 1;
        void *const *items = (void *const *)member;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(void *const *const *)member;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* Only the member the oneof holds is set. */
            if (*(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id) {
                continue;
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (items[k] == NULL) {
                continue;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                const char *why = strings_valid(items[k]);
                if (why != NULL) {
                    return why;
                }
                continue;
            }
            const char *s = items[k];
            size_t len = strlen(s);
            if (len >= LIMIT_TEXT_BYTES) {
                return "a string field is too long";
            }
            if (!utf8_valid((const uint8_t *)s, len)) {
                return "a string field is not valid UTF-8";
            }
        }
    }
    return NULL;
}

static bool counter_ok(uint64_t v)
{
    return v <= LIMIT_COUNTER_MAX;
}

static bool id_or_empty(const char *s)
{
    return s[0] == '\0' || validate_id(s);
}

static const char *entry_invalid(const Replicacao__Entry *e)
{
    if (!counter_ok(e->index) || e->index == 0 || !counter_ok(e->epoch) || e->epoch == 0) {
        return "entry index or epoch out of range";
    }
    switch (e->type) {
    case REPLICACAO__ENTRY_TYPE__ENTRY_DATA:
        if (!validate_client_id(e->client_id, strlen(e->client_id))) {
            return "entry with an invalid client id";
        }
        break;
    case REPLICACAO__ENTRY_TYPE__ENTRY_NOOP:
    case REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG:
        if (e->client_id[0] != '\0') {
            return "no-op or configuration entry with a client id";
        }
        break;
    default:
        return "entry of an unknown type";
    }
    return validate_id(e->primary) ? NULL : "entry with an invalid primary id";
}

/* A histogram that means something: a bounded number of increasing
 * bounds, as many cumulative counts, none falling or above the total.
 * NULL (not sent) is fine. */
static bool histogram_ok(const Replicacao__Histogram *h)
{
    if (h == NULL) {
        return true;
    }
    if (h->n_bounds_us > LIMIT_HISTOGRAM_BUCKETS || h->n_counts != h->n_bounds_us ||
        !counter_ok(h->count) || !counter_ok(h->sum_us)) {
        return false;
    }
    for (size_t i = 0; i < h->n_bounds_us; i++) {
        if (!counter_ok(h->bounds_us[i]) || (i > 0 && h->bounds_us[i] <= h->bounds_us[i - 1]) ||
            h->counts[i] > h->count || (i > 0 && h->counts[i] < h->counts[i - 1])) {
            return false;
        }
    }
    return true;
}

/* A fault rule within the fault lab's bounds; NaN fails every comparison,
 * so it is refused with the rest. */
static bool fault_rule_ok(const Replicacao__FaultRule *r)
{
    return validate_id(r->peer) && counter_ok(r->fault_id) && r->loss >= 0.0 && r->loss <= 1.0 &&
           r->delay_ms <= LIMIT_FAULT_DELAY_MS && r->expires_in_ms <= LIMIT_FAULT_LIFE_MS;
}

static const char *fault_rules_invalid(Replicacao__FaultRule *const *rules, size_t n)
{
    if (n > LIMIT_FAULT_RULES) {
        return "more fault rules than the limit";
    }
    for (size_t i = 0; i < n; i++) {
        if (!fault_rule_ok(rules[i])) {
            return "fault rule with an invalid peer, loss, delay or expiry";
        }
    }
    return NULL;
}

/* Explicit timeouts (heartbeat < election min < election max), or a slow
 * motion factor over the replica's own flags; never both, never neither. */
static const char *timing_invalid(const Replicacao__SetTiming *t)
{
    if (t->heartbeat_ms != 0) {
        return t->slow_motion == 0 && t->heartbeat_ms < t->election_min_ms &&
                       t->election_min_ms < t->election_max_ms &&
                       t->election_max_ms <= LIMIT_RUNTIME_TIMING_MS
                   ? NULL
                   : "set timing with timeouts out of order or range";
    }
    return t->election_min_ms == 0 && t->election_max_ms == 0 && t->slow_motion >= 1 &&
                   t->slow_motion <= LIMIT_SLOW_MOTION
               ? NULL
               : "set timing with neither timeouts nor a slow motion factor in range";
}

static const char *body_invalid(const Envelope *env)
{
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_HELLO: {
        const Replicacao__Hello *h = env->hello;
        if (h->kind != REPLICACAO__HELLO__KIND__REPLICA &&
            h->kind != REPLICACAO__HELLO__KIND__CLIENT) {
            return "hello of an unknown kind";
        }
        if (!validate_text(h->name, strlen(h->name), LIMIT_NAME_BYTES) ||
            !validate_text(h->address, strlen(h->address), LIMIT_NAME_BYTES) ||
            !id_or_empty(h->cluster_id)) {
            return "hello with an invalid name, address or cluster id";
        }
        if (h->nonce.len != 0 && h->nonce.len != AUTH_NONCE_BYTES) {
            return "hello with a nonce of the wrong size";
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_AUTH: {
        const Replicacao__Auth *a = env->auth;
        bool member =
            a->member_key.len == AUTH_KEY_BYTES && a->signature.len == AUTH_SIGNATURE_BYTES;
        bool client = a->member_key.len == 0 && a->signature.len == 0;
        if (a->proof.len != AUTH_PROOF_BYTES || !(member || client)) {
            return "auth with a proof, key or signature of the wrong size";
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST: {
        const Replicacao__VoteRequest *v = env->vote_request;
        if (!counter_ok(v->last_index) || !counter_ok(v->last_epoch)) {
            return "vote request with an index or epoch out of range";
        }
        if (v->n_bootstrap > LIMIT_MEMBERS) {
            return "bootstrap list longer than the member limit";
        }
        for (size_t i = 0; i < v->n_bootstrap; i++) {
            if (!validate_id(v->bootstrap[i])) {
                return "bootstrap list with an invalid id";
            }
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_APPEND: {
        const Replicacao__Append *a = env->append;
        if (!counter_ok(a->prev_index) || !counter_ok(a->prev_epoch) ||
            !counter_ok(a->commit_index) || !counter_ok(a->round)) {
            return "append with an index or epoch out of range";
        }
        for (size_t i = 0; i < a->n_entries; i++) {
            const char *why = entry_invalid(a->entries[i]);
            if (why != NULL) {
                return why;
            }
            /* A log's epochs never go down, and none is later than the
             * epoch of the primary that sends it. */
            uint64_t before = i == 0 ? a->prev_epoch : a->entries[i - 1]->epoch;
            if (a->entries[i]->index != a->prev_index + i + 1 ||
                a->entries[i]->epoch > env->epoch || a->entries[i]->epoch < before) {
                return "append entries not consecutive, going back in epoch, or from a later "
                       "epoch than the sender's";
            }
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_INSTALL_SNAPSHOT: {
        const Replicacao__InstallSnapshot *s = env->install_snapshot;
        return s->index > 0 && counter_ok(s->index) && s->epoch > 0 && s->epoch <= env->epoch
                   ? NULL
                   : "install snapshot with an index or epoch out of range";
    }
    case REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE: {
        const Replicacao__AppendResponse *r = env->append_response;
        return counter_ok(r->match_index) && counter_ok(r->hint_index) && counter_ok(r->round)
                   ? NULL
                   : "append response with an index out of range";
    }
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST: {
        const Replicacao__ClientRequest *r = env->client_request;
        if (!validate_client_id(r->client_id, strlen(r->client_id))) {
            return "client request with an invalid client id";
        }
        return counter_ok(r->seen_index) ? NULL : "client request with seen_index out of range";
    }
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
        return id_or_empty(env->client_reply->primary) ? NULL : "client reply with an invalid id";
    case REPLICACAO__ENVELOPE__BODY_READ_REQUEST: {
        const Replicacao__ReadRequest *r = env->read_request;
        bool known = r->filter == REPLICACAO__READ_REQUEST__FILTER__ALL ||
                     r->filter == REPLICACAO__READ_REQUEST__FILTER__PROCESSED ||
                     r->filter == REPLICACAO__READ_REQUEST__FILTER__SYNCED;
        bool level = r->consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE ||
                     r->consistency == REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE;
        return known && level ? NULL : "read request with an unknown filter or consistency";
    }
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY: {
        const Replicacao__ReadReply *r = env->read_reply;
        if (!counter_ok(r->commit_index) || !id_or_empty(r->primary)) {
            return "read reply with an index or primary out of range";
        }
        for (size_t i = 0; i < r->n_entries; i++) {
            const char *why = entry_invalid(r->entries[i]);
            if (why != NULL) {
                return why;
            }
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_STATUS: {
        const Replicacao__Status *s = env->status;
        if (!validate_id(s->id) || !id_or_empty(s->primary) || !id_or_empty(s->voted_for) ||
            s->n_peers > LIMIT_MEMBERS || !counter_ok(s->last_index) ||
            !counter_ok(s->commit_index) || !counter_ok(s->epoch)) {
            return "status with an invalid id, index or peer list";
        }
        for (size_t i = 0; i < s->n_peers; i++) {
            if (!validate_id(s->peers[i]->id) || !counter_ok(s->peers[i]->match_index) ||
                !histogram_ok(s->peers[i]->round_trip)) {
                return "status with an invalid peer";
            }
        }
        if (!histogram_ok(s->wal_fsync) || !counter_ok(s->pending_requests)) {
            return "status with an invalid fsync histogram or pending count";
        }
        if (fault_rules_invalid(s->faults, s->n_faults) != NULL ||
            s->paused_ms > LIMIT_FAULT_PAUSE_MS || !counter_ok(s->pause_fault_id) ||
            s->heartbeat_ms > LIMIT_RUNTIME_TIMING_MS ||
            s->election_min_ms > LIMIT_RUNTIME_TIMING_MS ||
            s->election_max_ms > LIMIT_RUNTIME_TIMING_MS) {
            return "status with invalid fault rules or timing";
        }
        if (!id_or_empty(s->cluster_id) || s->n_members > LIMIT_MEMBERS ||
            s->n_removed > LIMIT_MEMBERS || !counter_ok(s->config_index)) {
            return "status with an invalid configuration";
        }
        for (size_t i = 0; i < s->n_members; i++) {
            if (!validate_id(s->members[i]->id)) {
                return "status with an invalid member";
            }
        }
        for (size_t i = 0; i < s->n_removed; i++) {
            if (!validate_id(s->removed[i])) {
                return "status with an invalid removed id";
            }
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_EVENT: {
        const Replicacao__Event *e = env->event;
        return id_or_empty(e->replica) && id_or_empty(e->subject) && counter_ok(e->epoch) &&
                       counter_ok(e->index)
                   ? NULL
                   : "event with an invalid id, index or epoch";
    }
    case REPLICACAO__ENVELOPE__BODY_REMOVE_MEMBER:
        return validate_id(env->remove_member->id) ? NULL : "remove member with an invalid id";
    case REPLICACAO__ENVELOPE__BODY_FORCE_CONFIG: {
        const Replicacao__ForceConfig *f = env->force_config;
        if (f->n_keep >= LIMIT_MEMBERS) {
            return "force config with more replicas than the member limit";
        }
        for (size_t i = 0; i < f->n_keep; i++) {
            if (!validate_id(f->keep[i])) {
                return "force config with an invalid id";
            }
        }
        return NULL;
    }
    case REPLICACAO__ENVELOPE__BODY_SET_FAULTS: {
        const Replicacao__SetFaults *f = env->set_faults;
        if (f->pause_ms > LIMIT_FAULT_PAUSE_MS || !counter_ok(f->pause_fault_id)) {
            return "set faults with a pause out of range";
        }
        return fault_rules_invalid(f->rules, f->n_rules);
    }
    case REPLICACAO__ENVELOPE__BODY_SET_TIMING:
        return timing_invalid(env->set_timing);
    case REPLICACAO__ENVELOPE__BODY_TRAFFIC: {
        const Replicacao__Traffic *t = env->traffic;
        if (t->n_items > LIMIT_TRAFFIC_ITEMS) {
            return "traffic with more items than the limit";
        }
        for (size_t i = 0; i < t->n_items; i++) {
            const Replicacao__TrafficItem *it = t->items[i];
            if (!validate_id(it->to) || !counter_ok(it->epoch) || !counter_ok(it->bytes) ||
                !validate_text(it->type, strlen(it->type), LIMIT_ID_BYTES) || it->type[0] == '\0') {
                return "traffic item with an invalid type, peer, epoch or size";
            }
        }
        return NULL;
    }
    default:
        return NULL; /* status request, subscribe, fail, error: nothing beyond strings */
    }
}

const char *wire_validate(const Envelope *env)
{
    if (env->version != REPLICACAO__VERSION__PROTOCOL_VERSION) {
        return "wrong protocol version";
    }
    if (env->body_case == REPLICACAO__ENVELOPE__BODY__NOT_SET) {
        return "unknown or missing message type";
    }
    const char *why = strings_valid(&env->base);
    if (why != NULL) {
        return why;
    }
    if (!id_or_empty(env->from)) {
        return "invalid sender id";
    }
    if (!counter_ok(env->epoch)) {
        return "epoch out of range";
    }
    return body_invalid(env);
}

Envelope *wire_unpack_in(struct arena *a, const uint8_t *payload, size_t len, char *err,
                         size_t errlen)
{
    ProtobufCAllocator in_arena;
    if (a != NULL) {
        in_arena = arena_protobuf(a);
    }
    Envelope *env = replicacao__envelope__unpack(a ? &in_arena : NULL, len, payload);
    if (env == NULL) {
        snprintf(err, errlen, "malformed protobuf (%zu bytes)", len);
        return NULL;
    }
    const char *why = wire_validate(env);
    if (why != NULL) {
        snprintf(err, errlen, "%s (version %u, body %s)", why, env->version, wire_body_name(env));
        if (a == NULL) {
            replicacao__envelope__free_unpacked(env, NULL);
        }
        return NULL;
    }
    return env;
}

Envelope *wire_unpack(const uint8_t *payload, size_t len, char *err, size_t errlen)
{
    return wire_unpack_in(NULL, payload, len, err, errlen);
}

void wire_free(Envelope *env)
{
    if (env != NULL) {
        replicacao__envelope__free_unpacked(env, NULL);
    }
}

const char *wire_body_name(const Envelope *env)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &replicacao__envelope__descriptor, (unsigned)env->body_case);
    return f ? f->name : "none";
}
