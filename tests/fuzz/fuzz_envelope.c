/*
 * tests/fuzz/fuzz_envelope.c — wire_unpack (common/wire.c) on arbitrary
 * payload bytes.
 *
 * A refusal must come with a reason. An accepted envelope must hold only
 * what the validators allow: every string well-formed UTF-8, every id
 * (sender, bootstrap list, entry primaries, status ids) a valid replica id
 * or, where the protocol allows none, empty, client ids valid client ids,
 * counters within 2^53 - 1, append entries consecutive. And it must survive
 * a round trip: wire_pack, then wire_unpack again accepts it, and packing
 * that gives the same bytes.
 */
#include "fuzz_util.h"

#include "bounds.h"
#include "frame.h"
#include "validate.h"
#include "wire.h"

/* ------------------------------------------------------------------------
 * Every string of every nested message is well-formed UTF-8. Written from
 * the descriptors, so fields added to the schema are covered too.
 * ------------------------------------------------------------------------ */

static void check_strings(const ProtobufCMessage *m, const char *path)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
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
            if (*(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id) {
                continue;
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (items[k] == NULL) {
                continue;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                check_strings(items[k], f->name);
                continue;
            }
            const char *s = items[k];
            FUZZ_CHECK(utf8_valid((const uint8_t *)s, strlen(s)),
                       "accepted %s.%s that is not valid UTF-8", path, f->name);
        }
    }
}

/* ------------------------------------------------------------------------
 * Field domains.
 * ------------------------------------------------------------------------ */

#define COUNTER(v, what)                                                                           \
    FUZZ_CHECK((v) <= LIMIT_COUNTER_MAX, "accepted %s %llu above 2^53 - 1", what,                  \
               (unsigned long long)(v))

static void check_id(const char *s, const char *what)
{
    FUZZ_CHECK(validate_id(s), "accepted %s \"%s\" that fails validate_id", what, s);
}

static void check_id_or_empty(const char *s, const char *what)
{
    FUZZ_CHECK(s[0] == '\0' || validate_id(s), "accepted %s \"%s\" that fails validate_id", what,
               s);
}

static void check_entry(const Replicacao__Entry *e)
{
    COUNTER(e->index, "entry index");
    COUNTER(e->epoch, "entry epoch");
    FUZZ_CHECK(e->index >= 1, "accepted an entry with index 0");
    FUZZ_CHECK(e->type == REPLICACAO__ENTRY_TYPE__ENTRY_DATA ||
                   e->type == REPLICACAO__ENTRY_TYPE__ENTRY_NOOP ||
                   e->type == REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG,
               "accepted an entry of type %d", (int)e->type);
    if (e->type == REPLICACAO__ENTRY_TYPE__ENTRY_DATA) {
        FUZZ_CHECK(validate_client_id(e->client_id, strlen(e->client_id)),
                   "accepted a data entry with client id \"%s\"", e->client_id);
    }
    check_id(e->primary, "entry primary");
}

static void check_fields(const Envelope *env)
{
    FUZZ_CHECK(env->version == REPLICACAO__VERSION__PROTOCOL_VERSION, "accepted version %u",
               env->version);
    FUZZ_CHECK(env->body_case != REPLICACAO__ENVELOPE__BODY__NOT_SET, "accepted an empty body");
    FUZZ_CHECK(env->from != NULL && strlen(env->from) < LIMIT_ID_BYTES, "sender id too long");
    check_id_or_empty(env->from, "sender");
    COUNTER(env->epoch, "epoch");
    check_strings(&env->base, "Envelope");

    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST: {
        const Replicacao__VoteRequest *v = env->vote_request;
        COUNTER(v->last_index, "vote last_index");
        COUNTER(v->last_epoch, "vote last_epoch");
        FUZZ_CHECK(v->n_bootstrap <= LIMIT_MEMBERS, "accepted %zu bootstrap ids", v->n_bootstrap);
        for (size_t i = 0; i < v->n_bootstrap; i++) {
            check_id(v->bootstrap[i], "bootstrap id");
        }
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_APPEND: {
        const Replicacao__Append *a = env->append;
        COUNTER(a->prev_index, "prev_index");
        COUNTER(a->prev_epoch, "prev_epoch");
        COUNTER(a->commit_index, "commit_index");
        for (size_t i = 0; i < a->n_entries; i++) {
            check_entry(a->entries[i]);
            FUZZ_CHECK(a->entries[i]->index == a->prev_index + i + 1,
                       "accepted entry %zu with index %llu after prev_index %llu", i,
                       (unsigned long long)a->entries[i]->index, (unsigned long long)a->prev_index);
        }
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE:
        COUNTER(env->append_response->match_index, "match_index");
        COUNTER(env->append_response->hint_index, "hint_index");
        break;
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST: {
        const char *cid = env->client_request->client_id;
        FUZZ_CHECK(validate_client_id(cid, strlen(cid)), "accepted client request id \"%s\"", cid);
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
        check_id_or_empty(env->client_reply->primary, "client reply primary");
        break;
    case REPLICACAO__ENVELOPE__BODY_HELLO: {
        const Replicacao__Hello *h = env->hello;
        FUZZ_CHECK(validate_text(h->name, strlen(h->name), LIMIT_NAME_BYTES),
                   "accepted hello name \"%s\"", h->name);
        FUZZ_CHECK(validate_text(h->address, strlen(h->address), LIMIT_NAME_BYTES),
                   "accepted hello address \"%s\"", h->address);
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_STATUS: {
        const Replicacao__Status *s = env->status;
        check_id(s->id, "status id");
        check_id_or_empty(s->primary, "status primary");
        check_id_or_empty(s->voted_for, "status voted_for");
        COUNTER(s->epoch, "status epoch");
        COUNTER(s->last_index, "status last_index");
        COUNTER(s->commit_index, "status commit_index");
        FUZZ_CHECK(s->n_peers <= LIMIT_MEMBERS, "accepted %zu peers", s->n_peers);
        for (size_t i = 0; i < s->n_peers; i++) {
            check_id(s->peers[i]->id, "status peer id");
            COUNTER(s->peers[i]->match_index, "peer match_index");
        }
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_EVENT:
        check_id_or_empty(env->event->replica, "event replica");
        check_id_or_empty(env->event->subject, "event subject");
        COUNTER(env->event->epoch, "event epoch");
        COUNTER(env->event->index, "event index");
        break;
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
        COUNTER(env->read_reply->commit_index, "read reply commit_index");
        for (size_t i = 0; i < env->read_reply->n_entries; i++) {
            check_entry(env->read_reply->entries[i]);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    memset(err, 0x55, sizeof(err));
    /* An exact-size copy: a read past the payload is caught. */
    uint8_t *payload = fuzz_dup(data, size);
    Envelope *env = wire_unpack(payload, size, err, sizeof(err));
    free(payload);
    if (env == NULL) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0',
                   "refused without a reason");
        return 0;
    }
    check_fields(env);

    /* Round trip: what we accepted, packed, is accepted again and equal. */
    size_t len1 = 0, len2 = 0;
    uint8_t *frame1 = wire_pack(env, &len1);
    FUZZ_CHECK(frame1 != NULL && len1 >= FRAME_HEADER_BYTES, "wire_pack failed");
    uint8_t h[FRAME_HEADER_BYTES];
    frame_put_header(h, (uint32_t)(len1 - FRAME_HEADER_BYTES));
    FUZZ_CHECK(memcmp(h, frame1, FRAME_HEADER_BYTES) == 0, "frame header does not match length");
    Envelope *env2 =
        wire_unpack(frame1 + FRAME_HEADER_BYTES, len1 - FRAME_HEADER_BYTES, err, sizeof(err));
    FUZZ_CHECK(env2 != NULL, "re-packed envelope (%s) refused: %s", wire_body_name(env), err);
    FUZZ_CHECK(env2->body_case == env->body_case && env2->epoch == env->epoch &&
                   strcmp(env2->from, env->from) == 0,
               "re-packed envelope differs in header fields");
    uint8_t *frame2 = wire_pack(env2, &len2);
    FUZZ_CHECK(frame2 != NULL, "wire_pack failed");
    FUZZ_CHECK(len1 == len2 && memcmp(frame1, frame2, len1) == 0,
               "pack(unpack(pack(x))) differs from pack(x) (%zu vs %zu bytes)", len2, len1);
    free(frame1);
    free(frame2);
    wire_free(env2);
    wire_free(env);
    return 0;
}
