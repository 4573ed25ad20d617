/*
 * tests/unit/test_wire.c — Envelopes in and out of frames (common/wire.c).
 *
 * Every message type in the Envelope's oneof goes through the same path a
 * real connection uses (wire_pack, the frame reader, wire_unpack) and must
 * come out with the same fields. The rest checks what every receiver relies
 * on wire_unpack to refuse before a message reaches the protocol: bytes that
 * are not protobuf, another protocol version, a message type this build does
 * not know, no body at all, an over-long sender id. Leaks on the refusal
 * paths are caught by LeakSanitizer in the sanitizer build.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "frame.h"
#include "wire.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Binary data with zero bytes in the middle and at both ends: a bytes field
 * that was handled as a C string anywhere would come back short. */
static const uint8_t BINARY[] = {0x00, 0x01, 0x00, 0xFF, 0x7F, 0x80, 0x00, 0x00, 0x2A, 0x00};

/* Which body types a round trip has covered; checked by the last test. */
static bool tripped[64];

/* Through a frame, as over a socket: the frame is fed in two pieces so the
 * reader has to put it back together. Returns the unpacked envelope after
 * checking what every envelope carries. */
static Envelope *trip(const Envelope *in, const char *body_name)
{
    size_t frame_len = 0;
    uint8_t *frame = wire_pack(in, &frame_len);
    struct frame_reader r;
    const uint8_t *payload;
    size_t len;
    char err[160] = "";

    assert_non_null(frame);
    assert_int_equal(frame_len, FRAME_HEADER_BYTES + replicacao__envelope__get_packed_size(in));
    frame_reader_init(&r, 0);
    assert_int_equal(frame_reader_feed(&r, frame, frame_len / 2), 0);
    assert_int_equal(frame_reader_feed(&r, frame + frame_len / 2, frame_len - frame_len / 2), 0);
    assert_int_equal(frame_reader_next(&r, &payload, &len), FRAME_READY);
    assert_int_equal(len, frame_len - FRAME_HEADER_BYTES);
    Envelope *out = wire_unpack(payload, len, err, sizeof err);
    if (out == NULL) {
        fail_msg("wire_unpack refused a packed %s: %s", body_name, err);
    }
    assert_int_equal(frame_reader_next(&r, &payload, &len), FRAME_NEED_MORE);
    frame_reader_free(&r);
    free(frame);

    assert_int_equal(out->version, REPLICACAO__VERSION__PROTOCOL_VERSION);
    assert_string_equal(out->from, in->from);
    assert_int_equal(out->epoch, in->epoch);
    assert_int_equal(out->body_case, in->body_case);
    assert_string_equal(wire_body_name(out), body_name);
    assert_true((unsigned)in->body_case < sizeof tripped / sizeof tripped[0]);
    tripped[in->body_case] = true;
    return out;
}

/* wire_unpack must refuse: NULL, and a reason a log line can show. */
static void expect_refused(const uint8_t *payload, size_t len, const char *reason_part)
{
    char err[160];

    memset(err, 0, sizeof err);
    Envelope *env = wire_unpack(payload, len, err, sizeof err);
    if (env != NULL) {
        wire_free(env);
        fail_msg("accepted %zu bytes that should have been refused", len);
    }
    assert_true(strlen(err) > 0);
    if (reason_part != NULL && strstr(err, reason_part) == NULL) {
        fail_msg("reason \"%s\" does not mention \"%s\"", err, reason_part);
    }
}

/* Packs env with protobuf-c directly (no frame header), for tests that feed
 * wire_unpack a payload they then cut or alter. */
static uint8_t *pack_payload(const Envelope *env, size_t *len)
{
    *len = replicacao__envelope__get_packed_size(env);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(replicacao__envelope__pack(env, buf), *len);
    return buf;
}

/* A well-formed message whose fields are out of their domain. */
static void expect_envelope_refused(const Envelope *env, const char *reason_part)
{
    size_t len;
    uint8_t *buf = pack_payload(env, &len);
    expect_refused(buf, len, reason_part);
    free(buf);
}

static void assert_bytes_equal(ProtobufCBinaryData got, const uint8_t *want, size_t len)
{
    assert_int_equal(got.len, len);
    if (len > 0) {
        assert_memory_equal(got.data, want, len);
    }
}

static void entry_make(Replicacao__Entry *e, uint64_t index, Replicacao__EntryType type,
                       const char *client, const uint8_t *data, size_t len)
{
    replicacao__entry__init(e);
    e->index = index;
    e->epoch = 7;
    e->type = type;
    e->client_id = (char *)client;
    e->primary = "replica-b.example.org";
    e->data.data = (uint8_t *)data;
    e->data.len = len;
    e->time_ms = -1234567890123; /* negative survives: int64, not uint64 */
}

static void assert_entry_equal(const Replicacao__Entry *got, const Replicacao__Entry *want)
{
    assert_int_equal(got->index, want->index);
    assert_int_equal(got->epoch, want->epoch);
    assert_int_equal(got->type, want->type);
    assert_string_equal(got->client_id, want->client_id);
    assert_string_equal(got->primary, want->primary);
    assert_bytes_equal(got->data, want->data.data, want->data.len);
    assert_int_equal(got->time_ms, want->time_ms);
}

/* ------------------------------------------------------------------------
 * Round trips, one per body type
 * ------------------------------------------------------------------------ */

static void test_trip_hello(void **state)
{
    Envelope env;
    Replicacao__Hello h;

    wire_init(&env, "replica-a.example.org", 3);
    replicacao__hello__init(&h);
    h.name = "replica-a.example.org";
    h.address = "10.0.0.1:7400";
    h.kind = REPLICACAO__HELLO__KIND__CLIENT;
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;

    Envelope *out = trip(&env, "hello");
    assert_string_equal(out->hello->name, h.name);
    assert_string_equal(out->hello->address, h.address);
    assert_int_equal(out->hello->kind, REPLICACAO__HELLO__KIND__CLIENT);
    wire_free(out);
}

static void test_trip_vote_request(void **state)
{
    Envelope env;
    Replicacao__VoteRequest v;
    char *boot[] = {"r1", "r2", "replica-three.example.org"};

    wire_init(&env, "r1", LIMIT_COUNTER_MAX);
    replicacao__vote_request__init(&v);
    v.last_index = LIMIT_COUNTER_MAX - 1;
    v.last_epoch = 1ull << 40;
    v.pre_vote = true;
    v.n_bootstrap = 3;
    v.bootstrap = boot;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env.vote_request = &v;

    Envelope *out = trip(&env, "vote_request");
    assert_int_equal(out->vote_request->last_index, v.last_index);
    assert_int_equal(out->vote_request->last_epoch, v.last_epoch);
    assert_true(out->vote_request->pre_vote);
    assert_int_equal(out->vote_request->n_bootstrap, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(out->vote_request->bootstrap[i], boot[i]);
    }
    wire_free(out);

    /* Outside bootstrap the list is empty and must stay so. */
    v.n_bootstrap = 0;
    v.bootstrap = NULL;
    v.pre_vote = false;
    out = trip(&env, "vote_request");
    assert_int_equal(out->vote_request->n_bootstrap, 0);
    assert_false(out->vote_request->pre_vote);
    wire_free(out);

    /* Past 2^53 - 1 an epoch or index is garbage, not a big number. */
    env.epoch = LIMIT_COUNTER_MAX + 1;
    expect_envelope_refused(&env, "epoch out of range");
    env.epoch = 1;
    v.last_index = UINT64_MAX;
    expect_envelope_refused(&env, "out of range");
    v.last_index = 1;
    char *newline[] = {"r1", "r2\nv r9"};
    v.n_bootstrap = 2;
    v.bootstrap = newline;
    expect_envelope_refused(&env, "invalid id");
}

static void test_trip_vote_response(void **state)
{
    Envelope env;
    Replicacao__VoteResponse v;

    wire_init(&env, "r2", 9);
    replicacao__vote_response__init(&v);
    v.granted = true;
    v.pre_vote = true;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE;
    env.vote_response = &v;

    Envelope *out = trip(&env, "vote_response");
    assert_true(out->vote_response->granted);
    assert_true(out->vote_response->pre_vote);
    wire_free(out);

    /* All defaults: proto3 sends no bytes for the body, yet the body must
     * still be there (a refusal is a vote too). */
    v.granted = false;
    v.pre_vote = false;
    out = trip(&env, "vote_response");
    assert_false(out->vote_response->granted);
    assert_false(out->vote_response->pre_vote);
    wire_free(out);
}

static void test_trip_append(void **state)
{
    Envelope env;
    Replicacao__Append a;
    Replicacao__Entry e[3];
    Replicacao__Entry *ep[3] = {&e[0], &e[1], &e[2]};
    static const uint8_t cfg[] = {0x0A, 0x00, 0x12};

    wire_init(&env, "r1", 7);
    replicacao__append__init(&a);
    a.prev_index = 41;
    a.prev_epoch = 6;
    a.commit_index = 40;
    entry_make(&e[0], 42, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "client-1:17", BINARY, sizeof BINARY);
    entry_make(&e[1], 43, REPLICACAO__ENTRY_TYPE__ENTRY_NOOP, "", NULL, 0);
    entry_make(&e[2], 44, REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG, "", cfg, sizeof cfg);
    a.n_entries = 3;
    a.entries = ep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &a;

    Envelope *out = trip(&env, "append");
    assert_int_equal(out->append->prev_index, 41);
    assert_int_equal(out->append->prev_epoch, 6);
    assert_int_equal(out->append->commit_index, 40);
    assert_int_equal(out->append->n_entries, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_entry_equal(out->append->entries[i], &e[i]);
    }
    wire_free(out);

    /* A heartbeat: no entries. */
    a.n_entries = 0;
    a.entries = NULL;
    out = trip(&env, "append");
    assert_int_equal(out->append->n_entries, 0);
    assert_int_equal(out->append->commit_index, 40);
    wire_free(out);
}

/* An Append of many entries unpacked into an arena, as the transport does:
 * identical to the heap unpack, aligned, and the arena's memory reused
 * message after message, the oversized chunk given back. */
static void test_unpack_in_arena(void **state)
{
    (void)state;
    enum { N = 3000 };
    static Replicacao__Entry e[N];
    static Replicacao__Entry *ep[N];
    static uint8_t data[100];
    memset(data, 'x', sizeof data);
    Envelope env;
    Replicacao__Append a;
    wire_init(&env, "r1", 7);
    replicacao__append__init(&a);
    a.prev_index = 9;
    a.prev_epoch = 7;
    for (size_t i = 0; i < N; i++) {
        entry_make(&e[i], 10 + i, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "client-1:17", data,
                   1 + i % sizeof data);
        ep[i] = &e[i];
    }
    a.n_entries = N;
    a.entries = ep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &a;
    size_t frame_len = 0;
    uint8_t *frame = wire_pack(&env, &frame_len);
    assert_non_null(frame);
    const uint8_t *payload = frame + FRAME_HEADER_BYTES;
    size_t len = frame_len - FRAME_HEADER_BYTES;

    struct arena arena = {.keep_max = 256 * 1024};
    char err[160] = "";
    for (int round = 0; round < 3; round++) {
        Envelope *out = wire_unpack_in(&arena, payload, len, err, sizeof err);
        assert_non_null(out);
        assert_int_equal(out->append->n_entries, N);
        for (size_t i = 0; i < N; i++) {
            assert_entry_equal(out->append->entries[i], &e[i]);
            assert_int_equal((uintptr_t)out->append->entries[i] % _Alignof(max_align_t), 0);
        }
        assert_true(arena.peak > len);
        arena_reset(&arena);
        assert_int_equal(arena.peak, 0);
    }
    /* A refused message leaves nothing to free. */
    assert_null(wire_unpack_in(&arena, (const uint8_t *)"\xff\xff", 2, err, sizeof err));
    arena_reset(&arena);
    /* Small allocations after a reset fit the one chunk kept. */
    void *p = arena_alloc(&arena, 1);
    void *q = arena_alloc(&arena, 1);
    assert_non_null(p);
    assert_int_equal((uint8_t *)q - (uint8_t *)p, _Alignof(max_align_t));
    assert_null(arena_alloc(&arena, SIZE_MAX));
    arena_free(&arena);
    free(frame);
}

static void test_trip_append_response(void **state)
{
    Envelope env;
    Replicacao__AppendResponse a;

    wire_init(&env, "r3", 7);
    replicacao__append_response__init(&a);
    a.success = false;
    a.match_index = 0;
    a.hint_index = 12;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE;
    env.append_response = &a;

    Envelope *out = trip(&env, "append_response");
    assert_false(out->append_response->success);
    assert_int_equal(out->append_response->match_index, 0);
    assert_int_equal(out->append_response->hint_index, 12);
    wire_free(out);

    a.success = true;
    a.match_index = LIMIT_COUNTER_MAX;
    a.hint_index = 0;
    out = trip(&env, "append_response");
    assert_true(out->append_response->success);
    assert_int_equal(out->append_response->match_index, LIMIT_COUNTER_MAX);
    wire_free(out);

    a.match_index = UINT64_MAX;
    expect_envelope_refused(&env, "out of range");
}

static void test_trip_client_request(void **state)
{
    Envelope env;
    Replicacao__ClientRequest c;

    wire_init(&env, "replctl", 0);
    replicacao__client_request__init(&c);
    c.call_id = 77;
    c.client_id = "client-1:17";
    c.data.data = (uint8_t *)BINARY;
    c.data.len = sizeof BINARY;
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &c;

    Envelope *out = trip(&env, "client_request");
    assert_int_equal(out->client_request->call_id, 77);
    assert_string_equal(out->client_request->client_id, "client-1:17");
    assert_bytes_equal(out->client_request->data, BINARY, sizeof BINARY);
    wire_free(out);
}

static void test_trip_client_reply(void **state)
{
    Envelope env;
    Replicacao__ClientReply c;

    wire_init(&env, "r2", 8);
    replicacao__client_reply__init(&c);
    c.call_id = 77;
    c.status = REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY;
    c.index = 100;
    c.epoch = 8;
    c.primary = "r1";
    c.primary_address = "[::1]:7401";
    c.message = "not the primary; try r1";
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY;
    env.client_reply = &c;

    Envelope *out = trip(&env, "client_reply");
    assert_int_equal(out->client_reply->call_id, 77);
    assert_int_equal(out->client_reply->status, REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY);
    assert_int_equal(out->client_reply->index, 100);
    assert_int_equal(out->client_reply->epoch, 8);
    assert_string_equal(out->client_reply->primary, "r1");
    assert_string_equal(out->client_reply->primary_address, "[::1]:7401");
    assert_string_equal(out->client_reply->message, c.message);
    wire_free(out);
}

static void test_trip_status_request(void **state)
{
    Envelope env;
    Replicacao__StatusRequest s;

    wire_init(&env, "coordinator", 0);
    replicacao__status_request__init(&s);
    s.call_id = 5;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &s;

    Envelope *out = trip(&env, "status_request");
    assert_int_equal(out->status_request->call_id, 5);
    wire_free(out);
}

static void test_trip_status(void **state)
{
    Envelope env;
    Replicacao__Status s;
    Replicacao__PeerStatus p[2];
    Replicacao__PeerStatus *pp[2] = {&p[0], &p[1]};

    wire_init(&env, "r1", 8);
    replicacao__status__init(&s);
    s.call_id = 5;
    s.id = "r1";
    s.name = "replica-a.example.org";
    s.address = "10.0.0.1:7400";
    s.role = "primary";
    s.epoch = 8;
    s.primary = "r1";
    s.last_index = 120;
    s.commit_index = 119;
    s.processed = 60;
    s.synced = 59;
    s.heartbeat_age_ms = -1;
    s.uptime_ms = 86400000;
    s.voter = true;
    s.voted_for = "r1";
    for (int i = 0; i < 2; i++) {
        replicacao__peer_status__init(&p[i]);
        p[i].voter = i == 0;
        p[i].connected = i == 0;
        p[i].match_index = 119 - (uint64_t)i * 100;
    }
    p[0].id = "r2";
    p[0].name = "replica-b";
    p[0].address = "10.0.0.2:7400";
    p[0].last_seen_ms = 12;
    p[1].id = "r3";
    p[1].name = "replica-c";
    p[1].address = "10.0.0.3:7400";
    p[1].last_seen_ms = -1; /* never seen */
    s.n_peers = 2;
    s.peers = pp;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS;
    env.status = &s;

    Envelope *out = trip(&env, "status");
    const Replicacao__Status *o = out->status;
    assert_int_equal(o->call_id, 5);
    assert_string_equal(o->id, "r1");
    assert_string_equal(o->name, s.name);
    assert_string_equal(o->address, s.address);
    assert_string_equal(o->role, "primary");
    assert_int_equal(o->epoch, 8);
    assert_string_equal(o->primary, "r1");
    assert_int_equal(o->last_index, 120);
    assert_int_equal(o->commit_index, 119);
    assert_int_equal(o->processed, 60);
    assert_int_equal(o->synced, 59);
    assert_int_equal(o->heartbeat_age_ms, -1);
    assert_int_equal(o->uptime_ms, 86400000);
    assert_true(o->voter);
    assert_string_equal(o->voted_for, "r1");
    assert_int_equal(o->n_peers, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(o->peers[i]->id, p[i].id);
        assert_string_equal(o->peers[i]->name, p[i].name);
        assert_string_equal(o->peers[i]->address, p[i].address);
        assert_int_equal(o->peers[i]->voter, p[i].voter);
        assert_int_equal(o->peers[i]->connected, p[i].connected);
        assert_int_equal(o->peers[i]->match_index, p[i].match_index);
        assert_int_equal(o->peers[i]->last_seen_ms, p[i].last_seen_ms);
    }
    wire_free(out);
}

static void test_trip_subscribe(void **state)
{
    Envelope env;
    Replicacao__Subscribe s;

    wire_init(&env, "coordinator", 0);
    replicacao__subscribe__init(&s);
    s.call_id = 1;
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &s;

    Envelope *out = trip(&env, "subscribe");
    assert_int_equal(out->subscribe->call_id, 1);
    wire_free(out);
}

static void test_trip_event(void **state)
{
    Envelope env;
    Replicacao__Event e;

    wire_init(&env, "r1", 8);
    replicacao__event__init(&e);
    e.type = "elected";
    e.replica = "r1";
    e.subject = "r1";
    e.epoch = 8;
    e.index = 121;
    e.time_ms = 1700000000000;
    e.detail = "3 of 3 votes";
    env.body_case = REPLICACAO__ENVELOPE__BODY_EVENT;
    env.event = &e;

    Envelope *out = trip(&env, "event");
    assert_string_equal(out->event->type, "elected");
    assert_string_equal(out->event->replica, "r1");
    assert_string_equal(out->event->subject, "r1");
    assert_int_equal(out->event->epoch, 8);
    assert_int_equal(out->event->index, 121);
    assert_int_equal(out->event->time_ms, 1700000000000);
    assert_string_equal(out->event->detail, "3 of 3 votes");
    wire_free(out);
}

static void test_trip_read_request(void **state)
{
    Envelope env;
    Replicacao__ReadRequest r;

    wire_init(&env, "replctl", 0);
    replicacao__read_request__init(&r);
    r.call_id = 9;
    r.after = 100;
    r.limit = UINT32_MAX;
    r.filter = REPLICACAO__READ_REQUEST__FILTER__SYNCED;
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REQUEST;
    env.read_request = &r;

    Envelope *out = trip(&env, "read_request");
    assert_int_equal(out->read_request->call_id, 9);
    assert_int_equal(out->read_request->after, 100);
    assert_int_equal(out->read_request->limit, UINT32_MAX);
    assert_int_equal(out->read_request->filter, REPLICACAO__READ_REQUEST__FILTER__SYNCED);
    wire_free(out);
}

static void test_trip_read_reply(void **state)
{
    Envelope env;
    Replicacao__ReadReply r;
    Replicacao__Entry e[2];
    Replicacao__Entry *ep[2] = {&e[0], &e[1]};

    wire_init(&env, "r1", 8);
    replicacao__read_reply__init(&r);
    r.call_id = 9;
    r.commit_index = 200;
    r.total = 150;
    entry_make(&e[0], 101, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "c:1", BINARY, sizeof BINARY);
    entry_make(&e[1], 102, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "c:2", BINARY + 1, 3);
    r.n_entries = 2;
    r.entries = ep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REPLY;
    env.read_reply = &r;

    Envelope *out = trip(&env, "read_reply");
    assert_int_equal(out->read_reply->call_id, 9);
    assert_int_equal(out->read_reply->commit_index, 200);
    assert_int_equal(out->read_reply->total, 150);
    assert_int_equal(out->read_reply->n_entries, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_entry_equal(out->read_reply->entries[i], &e[i]);
    }
    wire_free(out);
}

static void test_trip_fail(void **state)
{
    Envelope env;
    Replicacao__Fail f;

    wire_init(&env, "coordinator", 0);
    replicacao__fail__init(&f);
    f.reason = "simulated crash from the dashboard";
    env.body_case = REPLICACAO__ENVELOPE__BODY_FAIL;
    env.fail = &f;

    Envelope *out = trip(&env, "fail");
    assert_string_equal(out->fail->reason, f.reason);
    wire_free(out);
}

static void test_trip_error(void **state)
{
    Envelope env;
    Replicacao__Error e;

    wire_init(&env, "r1", 8);
    replicacao__error__init(&e);
    e.message = "unknown call";
    env.body_case = REPLICACAO__ENVELOPE__BODY_ERROR;
    env.error = &e;

    Envelope *out = trip(&env, "error");
    assert_string_equal(out->error->message, "unknown call");
    wire_free(out);
}

static void test_trip_timeout_now(void **state)
{
    Envelope env;
    Replicacao__TimeoutNow t;

    wire_init(&env, "r1", 9);
    replicacao__timeout_now__init(&t);
    env.body_case = REPLICACAO__ENVELOPE__BODY_TIMEOUT_NOW;
    env.timeout_now = &t;

    Envelope *out = trip(&env, "timeout_now");
    assert_int_equal(out->epoch, 9);
    wire_free(out);
}

static void test_trip_remove_member(void **state)
{
    Envelope env;
    Replicacao__RemoveMember r;

    wire_init(&env, "coordinator", 0);
    replicacao__remove_member__init(&r);
    r.call_id = 77;
    r.id = "r3";
    env.body_case = REPLICACAO__ENVELOPE__BODY_REMOVE_MEMBER;
    env.remove_member = &r;

    Envelope *out = trip(&env, "remove_member");
    assert_int_equal(out->remove_member->call_id, 77);
    assert_string_equal(out->remove_member->id, "r3");
    wire_free(out);

    /* An id outside the alphabet is refused before anybody acts on it. */
    r.id = "r3\nv evil";
    size_t len = 0;
    uint8_t *frame = wire_pack(&env, &len);
    expect_refused(frame + FRAME_HEADER_BYTES, len - FRAME_HEADER_BYTES, "invalid id");
    free(frame);
}

static void test_trip_force_config(void **state)
{
    Envelope env;
    Replicacao__ForceConfig f;
    char *keep[] = {"r1", "r2"};

    wire_init(&env, "replctl", 0);
    replicacao__force_config__init(&f);
    f.call_id = 5;
    f.n_keep = 2;
    f.keep = keep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_FORCE_CONFIG;
    env.force_config = &f;

    Envelope *out = trip(&env, "force_config");
    assert_int_equal(out->force_config->n_keep, 2);
    assert_string_equal(out->force_config->keep[1], "r2");
    wire_free(out);
}

static void test_trip_install_snapshot(void **state)
{
    Envelope env;
    Replicacao__InstallSnapshot s;
    uint8_t data[] = {1, 2, 3, 0, 255};

    wire_init(&env, "r1", 7);
    replicacao__install_snapshot__init(&s);
    s.index = LIMIT_COUNTER_MAX;
    s.epoch = 7;
    s.data.data = data;
    s.data.len = sizeof data;
    env.body_case = REPLICACAO__ENVELOPE__BODY_INSTALL_SNAPSHOT;
    env.install_snapshot = &s;

    Envelope *out = trip(&env, "install_snapshot");
    assert_int_equal(out->install_snapshot->index, LIMIT_COUNTER_MAX);
    assert_int_equal(out->install_snapshot->data.len, sizeof data);
    wire_free(out);

    /* Refused: index 0, past the limit, or an epoch later than the sender's. */
    uint64_t bad[][2] = {{0, 7}, {LIMIT_COUNTER_MAX + 1, 7}, {5, 8}, {5, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.index = bad[i][0];
        s.epoch = bad[i][1];
        size_t len = protobuf_c_message_get_packed_size(&env.base);
        uint8_t *buf = malloc(len);
        protobuf_c_message_pack(&env.base, buf);
        expect_refused(buf, len, "install snapshot");
        free(buf);
    }
}

/* Packed env must be refused with a reason naming `part`. */
static void expect_env_refused(Envelope *env, const char *part)
{
    size_t len;
    uint8_t *buf = pack_payload(env, &len);
    expect_refused(buf, len, part);
    free(buf);
}

/* The fault lab's rules: bounds on every field, NaN loss and too many
 * rules refused. */
static void test_set_faults(void **state)
{
    Envelope env;
    Replicacao__SetFaults sf;
    Replicacao__FaultRule r, *rp = &r;

    wire_init(&env, "coordinator", 0);
    replicacao__set_faults__init(&sf);
    replicacao__fault_rule__init(&r);
    r.fault_id = 3;
    r.peer = "r2";
    r.loss = 0.25;
    r.delay_ms = LIMIT_FAULT_DELAY_MS;
    r.expires_in_ms = LIMIT_FAULT_LIFE_MS;
    sf.rules = &rp;
    sf.n_rules = 1;
    sf.pause_ms = LIMIT_FAULT_PAUSE_MS;
    sf.pause_fault_id = 4;
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_FAULTS;
    env.set_faults = &sf;

    Envelope *out = trip(&env, "set_faults");
    assert_int_equal(out->set_faults->n_rules, 1);
    assert_string_equal(out->set_faults->rules[0]->peer, "r2");
    assert_true(out->set_faults->rules[0]->loss == 0.25);
    assert_int_equal(out->set_faults->pause_ms, LIMIT_FAULT_PAUSE_MS);
    wire_free(out);

    double losses[] = {-0.1, 1.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        r.loss = losses[i];
        expect_env_refused(&env, "fault rule");
    }
    r.loss = 1;
    r.delay_ms = LIMIT_FAULT_DELAY_MS + 1;
    expect_env_refused(&env, "fault rule");
    r.delay_ms = 0;
    r.peer = "no spaces";
    expect_env_refused(&env, "fault rule");
    r.peer = "r2";
    r.expires_in_ms = LIMIT_FAULT_LIFE_MS + 1;
    expect_env_refused(&env, "fault rule");
    r.expires_in_ms = 0;
    sf.pause_ms = LIMIT_FAULT_PAUSE_MS + 1;
    expect_env_refused(&env, "pause");
    sf.pause_ms = 0;

    /* One rule too many. */
    Replicacao__FaultRule **many = calloc(LIMIT_FAULT_RULES + 1, sizeof(*many));
    for (size_t i = 0; i <= LIMIT_FAULT_RULES; i++) {
        many[i] = &r;
    }
    sf.rules = many;
    sf.n_rules = LIMIT_FAULT_RULES + 1;
    expect_env_refused(&env, "limit");
    sf.n_rules = LIMIT_FAULT_RULES;
    out = trip(&env, "set_faults");
    wire_free(out);
    free(many);
}

static void test_set_timing(void **state)
{
    Envelope env;
    Replicacao__SetTiming t;

    wire_init(&env, "coordinator", 0);
    replicacao__set_timing__init(&t);
    t.slow_motion = 10;
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_TIMING;
    env.set_timing = &t;
    Envelope *out = trip(&env, "set_timing");
    assert_int_equal(out->set_timing->slow_motion, 10);
    wire_free(out);

    t.slow_motion = 0;
    t.heartbeat_ms = 100;
    t.election_min_ms = 1000;
    t.election_max_ms = 2000;
    out = trip(&env, "set_timing");
    assert_int_equal(out->set_timing->election_max_ms, 2000);
    wire_free(out);

    /* Out of order, out of range, both kinds, or neither. */
    unsigned bad[][4] = {
        {100, 100, 2000, 0},  {100, 1000, 1000, 0}, {100, 1000, LIMIT_RUNTIME_TIMING_MS + 1, 0},
        {100, 1000, 2000, 2}, {0, 0, 0, 0},         {0, 0, 0, LIMIT_SLOW_MOTION + 1},
        {0, 1000, 0, 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t.heartbeat_ms = bad[i][0];
        t.election_min_ms = bad[i][1];
        t.election_max_ms = bad[i][2];
        t.slow_motion = bad[i][3];
        expect_env_refused(&env, "set timing");
    }
}

/* The protocol messages a replica reports: bounded batch, valid peers. */
static void test_traffic(void **state)
{
    Envelope env;
    Replicacao__Traffic t;
    Replicacao__TrafficItem it, *ip = &it;

    wire_init(&env, "r1", 3);
    replicacao__traffic__init(&t);
    replicacao__traffic_item__init(&it);
    it.type = "append";
    it.to = "r2";
    it.epoch = 3;
    it.bytes = 120;
    it.count = 2;
    it.entries = 1;
    t.items = &ip;
    t.n_items = 1;
    t.dropped = 4;
    env.body_case = REPLICACAO__ENVELOPE__BODY_TRAFFIC;
    env.traffic = &t;
    Envelope *out = trip(&env, "traffic");
    assert_int_equal(out->traffic->n_items, 1);
    assert_string_equal(out->traffic->items[0]->to, "r2");
    assert_int_equal(out->traffic->dropped, 4);
    wire_free(out);

    it.to = "";
    expect_env_refused(&env, "traffic item");
    it.to = "r2";
    it.type = "";
    expect_env_refused(&env, "traffic item");
    it.type = "append";
    it.epoch = LIMIT_COUNTER_MAX + 1;
    expect_env_refused(&env, "traffic item");
    it.epoch = 3;
    Replicacao__TrafficItem **many = calloc(LIMIT_TRAFFIC_ITEMS + 1, sizeof(*many));
    for (size_t i = 0; i <= LIMIT_TRAFFIC_ITEMS; i++) {
        many[i] = &it;
    }
    t.items = many;
    t.n_items = LIMIT_TRAFFIC_ITEMS + 1;
    expect_env_refused(&env, "limit");
    free(many);
}

/* The handshake's sizes are fixed: a Hello's nonce is 32 bytes or absent;
 * an Auth has a 32-byte proof, and a key and a signature of their sizes
 * together or neither. */
static void test_auth(void **state)
{
    uint8_t proof[AUTH_PROOF_BYTES] = {1}, key[AUTH_KEY_BYTES] = {2};
    uint8_t sig[AUTH_SIGNATURE_BYTES] = {3}, nonce[AUTH_NONCE_BYTES + 1] = {4};
    Envelope env;
    Replicacao__Auth a = REPLICACAO__AUTH__INIT;
    wire_init(&env, "r1", 0);
    a.proof = (ProtobufCBinaryData){sizeof(proof), proof};
    a.member_key = (ProtobufCBinaryData){sizeof(key), key};
    a.signature = (ProtobufCBinaryData){sizeof(sig), sig};
    env.body_case = REPLICACAO__ENVELOPE__BODY_AUTH;
    env.auth = &a;
    Envelope *out = trip(&env, "auth");
    assert_memory_equal(out->auth->signature.data, sig, sizeof(sig));
    wire_free(out);
    a.member_key.len = 0; /* a client's: proof only */
    a.signature.len = 0;
    wire_free(trip(&env, "auth"));
    a.signature.len = sizeof(sig); /* a signature without its key */
    expect_env_refused(&env, "wrong size");
    a.member_key.len = sizeof(key);
    a.proof.len = sizeof(proof) - 1;
    expect_env_refused(&env, "wrong size");
    a.proof.len = 0;
    expect_env_refused(&env, "wrong size");

    Replicacao__Hello h = REPLICACAO__HELLO__INIT;
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    h.nonce = (ProtobufCBinaryData){AUTH_NONCE_BYTES + 1, nonce};
    expect_env_refused(&env, "nonce");
    h.nonce.len = AUTH_NONCE_BYTES - 1;
    expect_env_refused(&env, "nonce");
}

/* Runs after the round trips: a message type added to the proto without a
 * round trip here fails this test rather than going untested. */
static void test_every_body_type_tripped(void **state)
{
    const ProtobufCMessageDescriptor *d = &replicacao__envelope__descriptor;
    unsigned oneof_fields = 0;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            continue;
        }
        oneof_fields++;
        if (f->id >= sizeof tripped / sizeof tripped[0] || !tripped[f->id]) {
            fail_msg("body %s (field %u) has no round-trip test", f->name, f->id);
        }
    }
    assert_int_equal(oneof_fields, 23);
}

/* ------------------------------------------------------------------------
 * Refusals
 * ------------------------------------------------------------------------ */

/* A small deterministic generator: failures must reproduce. */
static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_garbage_refused(void **state)
{
    /* A varint that never ends: invalid for any reader. */
    static const uint8_t endless[] = {0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    /* A length-delimited field (from) claiming more bytes than follow. */
    static const uint8_t overlong[] = {0x08, 0x01, 0x12, 0x7F, 'a', 'b'};
    /* Wire type 7 does not exist. */
    static const uint8_t bad_wire_type[] = {0x08, 0x01, 0x0F};
    /* Text, as from a client that connected to the wrong port. */
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    expect_refused(endless, sizeof endless, "malformed");
    expect_refused(overlong, sizeof overlong, "malformed");
    expect_refused(bad_wire_type, sizeof bad_wire_type, "malformed");
    expect_refused((const uint8_t *)http, strlen(http), NULL);

    /* Random bytes: refused with a reason, or (if they happen to parse and
     * pass every check) a valid envelope; never a crash or a leak. */
    uint32_t seed = 0x2545F491u;
    for (int i = 0; i < 5000; i++) {
        uint8_t buf[256];
        size_t len = 1 + xorshift(&seed) % sizeof buf;
        char err[160] = "";

        for (size_t k = 0; k < len; k++) {
            buf[k] = (uint8_t)xorshift(&seed);
        }
        Envelope *env = wire_unpack(buf, len, err, sizeof err);
        if (env == NULL) {
            assert_true(strlen(err) > 0);
            continue;
        }
        assert_int_equal(env->version, REPLICACAO__VERSION__PROTOCOL_VERSION);
        assert_int_not_equal(env->body_case, REPLICACAO__ENVELOPE__BODY__NOT_SET);
        assert_true(strlen(env->from) < WIRE_ID_MAX);
        wire_free(env);
    }
}

/* A connection that drops mid-message, or a bug in a length: every strict
 * prefix of a packed envelope is refused. */
static void test_truncated_envelope_refused(void **state)
{
    Envelope env;
    Replicacao__Append a;
    Replicacao__Entry e[2];
    Replicacao__Entry *ep[2] = {&e[0], &e[1]};
    size_t len;

    wire_init(&env, "r1", 7);
    replicacao__append__init(&a);
    a.prev_index = 1;
    a.commit_index = 1;
    entry_make(&e[0], 2, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "c:1", BINARY, sizeof BINARY);
    entry_make(&e[1], 3, REPLICACAO__ENTRY_TYPE__ENTRY_DATA, "c:2", BINARY, sizeof BINARY);
    a.n_entries = 2;
    a.entries = ep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &a;
    uint8_t *buf = pack_payload(&env, &len);

    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes, so ASan sees any read past it. */
        uint8_t *prefix = malloc(cut + 1);
        assert_non_null(prefix);
        memcpy(prefix, buf, cut);
        expect_refused(prefix, cut, NULL);
        free(prefix);
    }
    free(buf);
}

static void expect_version_refused(uint32_t version)
{
    Envelope env;
    Replicacao__Hello h;
    size_t len;

    wire_init(&env, "r9", 1);
    env.version = version;
    replicacao__hello__init(&h);
    h.name = "r9";
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    uint8_t *buf = pack_payload(&env, &len);
    expect_refused(buf, len, "version");
    free(buf);
}

static void test_wrong_version_refused(void **state)
{
    expect_version_refused(0); /* a peer that never set it */
    expect_version_refused(2); /* a newer, incompatible peer */
    expect_version_refused(UINT32_MAX);
}

/* Hand-encoded, as a newer peer would send a message type this build has
 * no field for: version=1, from="a", then field `field` with the given wire
 * type. */
static size_t encode_unknown_body(uint8_t *out, unsigned field, unsigned wire_type)
{
    size_t n = 0;
    uint32_t tag = field << 3 | wire_type;

    out[n++] = 0x08; /* field 1, varint */
    out[n++] = 0x01; /* version 1 */
    out[n++] = 0x12; /* field 2, length-delimited */
    out[n++] = 0x01;
    out[n++] = 'a';
    while (tag >= 0x80) {
        out[n++] = (uint8_t)(tag | 0x80);
        tag >>= 7;
    }
    out[n++] = (uint8_t)tag;
    if (wire_type == 2) {
        out[n++] = 0x03;
        out[n++] = 'x';
        out[n++] = 0x00;
        out[n++] = 'z';
    } else {
        out[n++] = 0x2A;
    }
    return n;
}

static void test_unknown_message_type_refused(void **state)
{
    uint8_t buf[32];
    size_t n;

    n = encode_unknown_body(buf, 99, 2);
    /* The encoding above is what the brief of this test means: check it. */
    assert_memory_equal(buf + 5, ((uint8_t[]){0x9A, 0x06, 0x03}), 3);
    expect_refused(buf, n, "unknown");
    expect_refused(buf, n, "message type");

    /* The first free number after the oneof, and a varint-typed one. */
    n = encode_unknown_body(buf, 37, 2);
    expect_refused(buf, n, "message type");
    n = encode_unknown_body(buf, 16, 0);
    expect_refused(buf, n, "message type");
}

/* A well-formed envelope with no body at all: nothing to dispatch. */
static void test_missing_body_refused(void **state)
{
    Envelope env;
    size_t len;

    wire_init(&env, "r1", 4);
    /* Log lines name the body; a missing one must not crash the naming. */
    assert_string_equal(wire_body_name(&env), "none");
    uint8_t *buf = pack_payload(&env, &len);
    expect_refused(buf, len, "message type");
    free(buf);
}

/* A length-0 frame is a valid frame, but not a valid message. */
static void test_empty_payload_refused(void **state)
{
    uint8_t hdr[FRAME_HEADER_BYTES];
    struct frame_reader r;
    const uint8_t *payload;
    size_t len;

    frame_put_header(hdr, 0);
    frame_reader_init(&r, 0);
    assert_int_equal(frame_reader_feed(&r, hdr, sizeof hdr), 0);
    assert_int_equal(frame_reader_next(&r, &payload, &len), FRAME_READY);
    assert_int_equal(len, 0);
    expect_refused(payload, len, NULL);
    frame_reader_free(&r);
}

/* Ids are copied into fixed CORE_ID_MAX buffers downstream: one that does not
 * fit must be stopped here. 63 bytes (plus the NUL) is the longest allowed. */
static void test_sender_id_length(void **state)
{
    char id[300];
    Envelope env;
    Replicacao__Subscribe s;
    size_t len;

    replicacao__subscribe__init(&s);
    s.call_id = 1;

    memset(id, 'x', sizeof id);
    id[WIRE_ID_MAX - 1] = '\0'; /* 63 bytes: fits */
    wire_init(&env, id, 1);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &s;
    Envelope *out = trip(&env, "subscribe");
    assert_int_equal(strlen(out->from), WIRE_ID_MAX - 1);
    wire_free(out);

    static const size_t too_long[] = {WIRE_ID_MAX, WIRE_ID_MAX + 1, sizeof id - 1};
    for (size_t i = 0; i < sizeof too_long / sizeof too_long[0]; i++) {
        memset(id, 'x', sizeof id);
        id[too_long[i]] = '\0';
        env.from = id;
        uint8_t *buf = pack_payload(&env, &len);
        expect_refused(buf, len, "sender");
        free(buf);
    }
}

/* Two bodies in one envelope (legal protobuf: the last one wins). The first
 * must be freed, not leaked, and the second dispatched. */
static void test_two_bodies_last_wins(void **state)
{
    Envelope env;
    Replicacao__Hello h;
    Replicacao__Error e;
    size_t len1, len2;
    char err[160];

    wire_init(&env, "r1", 1);
    replicacao__hello__init(&h);
    h.name = "first";
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    uint8_t *first = pack_payload(&env, &len1);
    replicacao__error__init(&e);
    e.message = "second";
    env.body_case = REPLICACAO__ENVELOPE__BODY_ERROR;
    env.error = &e;
    uint8_t *second = pack_payload(&env, &len2);

    uint8_t *both = malloc(len1 + len2);
    assert_non_null(both);
    memcpy(both, first, len1);
    memcpy(both + len1, second, len2);
    Envelope *out = wire_unpack(both, len1 + len2, err, sizeof err);
    assert_non_null(out);
    assert_int_equal(out->body_case, REPLICACAO__ENVELOPE__BODY_ERROR);
    assert_string_equal(out->error->message, "second");
    wire_free(out);
    free(both);
    free(first);
    free(second);
}

/* A caller with a small error buffer gets a truncated, terminated reason. */
static void test_small_error_buffer(void **state)
{
    static const uint8_t endless[] = {0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    char err[8];

    memset(err, 'Z', sizeof err);
    assert_null(wire_unpack(endless, sizeof endless, err, sizeof err));
    assert_int_equal(strlen(err), sizeof err - 1);
    wire_free(NULL); /* allowed, like free(NULL) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trip_hello),
        cmocka_unit_test(test_trip_vote_request),
        cmocka_unit_test(test_trip_vote_response),
        cmocka_unit_test(test_trip_append),
        cmocka_unit_test(test_unpack_in_arena),
        cmocka_unit_test(test_trip_append_response),
        cmocka_unit_test(test_trip_client_request),
        cmocka_unit_test(test_trip_client_reply),
        cmocka_unit_test(test_trip_status_request),
        cmocka_unit_test(test_trip_status),
        cmocka_unit_test(test_trip_subscribe),
        cmocka_unit_test(test_trip_event),
        cmocka_unit_test(test_trip_read_request),
        cmocka_unit_test(test_trip_read_reply),
        cmocka_unit_test(test_trip_fail),
        cmocka_unit_test(test_trip_error),
        cmocka_unit_test(test_trip_timeout_now),
        cmocka_unit_test(test_trip_remove_member),
        cmocka_unit_test(test_trip_force_config),
        cmocka_unit_test(test_trip_install_snapshot),
        cmocka_unit_test(test_set_faults),
        cmocka_unit_test(test_set_timing),
        cmocka_unit_test(test_traffic),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_every_body_type_tripped),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_truncated_envelope_refused),
        cmocka_unit_test(test_wrong_version_refused),
        cmocka_unit_test(test_unknown_message_type_refused),
        cmocka_unit_test(test_missing_body_refused),
        cmocka_unit_test(test_empty_payload_refused),
        cmocka_unit_test(test_sender_id_length),
        cmocka_unit_test(test_two_bodies_last_wins),
        cmocka_unit_test(test_small_error_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
