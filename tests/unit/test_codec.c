/*
 * tests/unit/test_codec.c — the core's messages to and from Envelopes
 * (replica/net/codec.c).
 *
 * Each of the four core messages goes core_msg -> Envelope -> frame bytes ->
 * Envelope -> core_msg, the path between two replicas, and must arrive equal.
 * The refusals are the ones the core relies on the codec for: it copies ids
 * into fixed buffers and assumes an Append's entries follow prev_index one by
 * one, so a peer that breaks either must be stopped here with -1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "frame.h"
#include "wire.h"

/* Binary data with zero bytes, as a client request may carry. */
static const uint8_t BINARY[] = {0x00, 0x10, 0x00, 0xFF, 0x00};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* What a received message borrows from: keep until the checks are done. */
struct received {
    Envelope *env;
    struct core_entry *scratch;
    struct core_msg m;
};

static void received_free(struct received *r)
{
    free(r->scratch);
    wire_free(r->env);
}

/* Packs env into a frame and reads it back as a connection would. */
static Envelope *through_wire(const Envelope *env)
{
    size_t frame_len;
    uint8_t *frame = wire_pack(env, &frame_len);
    struct frame_reader r;
    const uint8_t *payload;
    size_t len;
    char err[160] = "";

    assert_non_null(frame);
    frame_reader_init(&r, 0);
    assert_int_equal(frame_reader_feed(&r, frame, frame_len), 0);
    assert_int_equal(frame_reader_next(&r, &payload, &len), FRAME_READY);
    Envelope *out = wire_unpack(payload, len, err, sizeof err);
    if (out == NULL) {
        fail_msg("wire_unpack: %s", err);
    }
    frame_reader_free(&r);
    free(frame);
    return out;
}

/* Sends `in` from "r1" and decodes it on the other side. */
static void trip(const struct core_msg *in, struct received *out)
{
    struct codec_out o;
    char err[160] = "";

    assert_int_equal(codec_from_core(&o, "r1", in), 0);
    assert_string_equal(o.env.from, "r1");
    assert_int_equal(o.env.epoch, in->epoch);
    out->env = through_wire(&o.env);
    codec_out_release(&o);
    int rc = codec_to_core(out->env, &out->m, &out->scratch, err, sizeof err);
    if (rc != 1) {
        fail_msg("codec_to_core = %d: %s", rc, err);
    }
    assert_int_equal(out->m.type, in->type);
    assert_string_equal(out->m.from, "r1");
    assert_int_equal(out->m.epoch, in->epoch);
}

/* env must be refused before the core sees it: by wire_unpack (the wire's
 * validation layer), or else by codec_to_core with -1, a reason, and
 * nothing left to free. */
static void expect_invalid(const Envelope *env)
{
    size_t frame_len;
    uint8_t *frame = wire_pack(env, &frame_len);
    char why[160] = "";
    assert_non_null(frame);
    Envelope *refused =
        wire_unpack(frame + FRAME_HEADER_BYTES, frame_len - FRAME_HEADER_BYTES, why, sizeof why);
    free(frame);
    if (refused == NULL) {
        assert_true(strlen(why) > 0);
        return;
    }
    wire_free(refused);
    Envelope *in = through_wire(env);
    struct core_msg m;
    static struct core_entry poison;
    struct core_entry *scratch = &poison; /* must be reset, never left stale */
    char err[160] = "";

    assert_int_equal(codec_to_core(in, &m, &scratch, err, sizeof err), -1);
    assert_null(scratch);
    assert_true(strlen(err) > 0);
    wire_free(in);
}

static void assert_entry_equal(const struct core_entry *got, const struct core_entry *want)
{
    assert_int_equal(got->index, want->index);
    assert_int_equal(got->epoch, want->epoch);
    assert_int_equal(got->type, want->type);
    assert_int_equal(got->time_ms, want->time_ms);
    assert_string_equal(got->client_id, want->client_id ? want->client_id : "");
    assert_string_equal(got->primary, want->primary ? want->primary : "");
    assert_int_equal(got->len, want->len);
    if (want->len > 0) {
        assert_memory_equal(got->data, want->data, want->len);
    }
}

/* An Append envelope built directly in protobuf, for the shapes the core
 * never sends but a broken or hostile peer might. */
struct pb_append {
    Envelope env;
    Replicacao__Append a;
    Replicacao__Entry e[3];
    Replicacao__Entry *ep[3];
};

/* Three good entries after prev_index 10; tests then break one thing. */
static void pb_append_make(struct pb_append *p)
{
    wire_init(&p->env, "r1", 5);
    replicacao__append__init(&p->a);
    p->a.prev_index = 10;
    p->a.prev_epoch = 4;
    p->a.commit_index = 9;
    for (int i = 0; i < 3; i++) {
        replicacao__entry__init(&p->e[i]);
        p->e[i].index = 11 + (uint64_t)i;
        p->e[i].epoch = 5;
        p->e[i].type = REPLICACAO__ENTRY_TYPE__ENTRY_DATA;
        p->e[i].client_id = "c:1";
        p->e[i].primary = "r1";
        p->ep[i] = &p->e[i];
    }
    p->a.n_entries = 3;
    p->a.entries = p->ep;
    p->env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    p->env.append = &p->a;
}

/* The unbroken shape must pass, or the refusals below prove nothing. */
static void expect_valid_append(const struct pb_append *p)
{
    struct received r;
    char err[160] = "";

    r.env = through_wire(&p->env);
    assert_int_equal(codec_to_core(r.env, &r.m, &r.scratch, err, sizeof err), 1);
    assert_int_equal(r.m.append.n_entries, p->a.n_entries);
    received_free(&r);
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

static void test_trip_vote_request(void **state)
{
    static const char *const boot[] = {"r1", "r2", "replica-three.example.org"};
    struct core_msg in = {.type = CORE_MSG_VOTE_REQUEST, .epoch = 12};
    struct received r;

    in.vote_request.last_index = 500;
    in.vote_request.last_epoch = 11;
    in.vote_request.pre_vote = true;
    in.vote_request.n_bootstrap = 3;
    in.vote_request.bootstrap = boot;
    trip(&in, &r);
    assert_int_equal(r.m.vote_request.last_index, 500);
    assert_int_equal(r.m.vote_request.last_epoch, 11);
    assert_true(r.m.vote_request.pre_vote);
    assert_int_equal(r.m.vote_request.n_bootstrap, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_string_equal(r.m.vote_request.bootstrap[i], boot[i]);
    }
    received_free(&r);

    /* After bootstrap: no list. */
    in.vote_request.n_bootstrap = 0;
    in.vote_request.bootstrap = NULL;
    in.vote_request.pre_vote = false;
    trip(&in, &r);
    assert_int_equal(r.m.vote_request.n_bootstrap, 0);
    assert_false(r.m.vote_request.pre_vote);
    received_free(&r);
}

static void test_trip_vote_response(void **state)
{
    struct core_msg in = {.type = CORE_MSG_VOTE_RESPONSE, .epoch = 12};
    struct received r;

    for (int g = 0; g < 2; g++) {
        for (int p = 0; p < 2; p++) {
            in.vote_response.granted = g;
            in.vote_response.pre_vote = p;
            trip(&in, &r);
            assert_int_equal(r.m.vote_response.granted, g);
            assert_int_equal(r.m.vote_response.pre_vote, p);
            received_free(&r);
        }
    }
}

static void test_trip_append(void **state)
{
    struct core_entry e[3] = {
        {.index = 101,
         .epoch = 12,
         .type = CORE_ENTRY_DATA,
         .time_ms = 1700000000123,
         .client_id = "client-1:99",
         .primary = "r1",
         .data = BINARY,
         .len = sizeof BINARY},
        /* A NULL client id goes out as "" (codec_entry_to_pb) */
        {.index = 102, .epoch = 12, .type = CORE_ENTRY_NOOP, .time_ms = -5, .primary = "r1"},
        {.index = 103,
         .epoch = 12,
         .type = CORE_ENTRY_CONFIG,
         .client_id = "",
         .primary = "r1",
         .data = (const uint8_t *)"v r1\nl r2\n",
         .len = 10},
    };
    struct core_msg in = {.type = CORE_MSG_APPEND, .epoch = 12};
    struct received r;

    in.append.prev_index = 100;
    in.append.prev_epoch = 11;
    in.append.commit_index = 99;
    in.append.n_entries = 3;
    in.append.entries = e;
    trip(&in, &r);
    assert_int_equal(r.m.append.prev_index, 100);
    assert_int_equal(r.m.append.prev_epoch, 11);
    assert_int_equal(r.m.append.commit_index, 99);
    assert_int_equal(r.m.append.n_entries, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_entry_equal(&r.m.append.entries[i], &e[i]);
    }
    received_free(&r);

    /* A heartbeat: no entries, no scratch to free. */
    in.append.n_entries = 0;
    in.append.entries = NULL;
    trip(&in, &r);
    assert_int_equal(r.m.append.n_entries, 0);
    assert_null(r.scratch);
    assert_int_equal(r.m.append.commit_index, 99);
    received_free(&r);
}

static void test_trip_append_response(void **state)
{
    struct core_msg in = {.type = CORE_MSG_APPEND_RESPONSE, .epoch = 12};
    struct received r;

    in.append_response.success = true;
    in.append_response.match_index = 103;
    in.append_response.hint_index = 0;
    trip(&in, &r);
    assert_true(r.m.append_response.success);
    assert_int_equal(r.m.append_response.match_index, 103);
    assert_int_equal(r.m.append_response.hint_index, 0);
    received_free(&r);

    in.append_response.success = false;
    in.append_response.match_index = 0;
    in.append_response.hint_index = 57;
    trip(&in, &r);
    assert_false(r.m.append_response.success);
    assert_int_equal(r.m.append_response.hint_index, 57);
    received_free(&r);
}

/* Client and coordinator traffic is not the core's: 0, not an error. */
static void test_non_core_message(void **state)
{
    Envelope env;
    Replicacao__Hello h;
    struct core_msg m;
    struct core_entry *scratch;
    char err[160] = "";

    wire_init(&env, "replctl", 0);
    replicacao__hello__init(&h);
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    Envelope *in = through_wire(&env);
    assert_int_equal(codec_to_core(in, &m, &scratch, err, sizeof err), 0);
    assert_null(scratch);
    wire_free(in);
}

/* ------------------------------------------------------------------------
 * Refusals: Append
 * ------------------------------------------------------------------------ */

static void test_append_gap_refused(void **state)
{
    struct pb_append p;

    pb_append_make(&p);
    expect_valid_append(&p);
    p.e[2].index = 14; /* 11, 12, 14 */
    expect_invalid(&p.env);
}

static void test_append_first_index_refused(void **state)
{
    struct pb_append p;

    /* The first entry must be prev_index + 1, not merely contiguous after. */
    pb_append_make(&p);
    for (int i = 0; i < 3; i++) {
        p.e[i].index = 12 + (uint64_t)i;
    }
    expect_invalid(&p.env);
    for (int i = 0; i < 3; i++) {
        p.e[i].index = 10 + (uint64_t)i; /* overlaps prev_index */
    }
    expect_invalid(&p.env);
}

static void test_append_duplicate_or_backwards_refused(void **state)
{
    struct pb_append p;

    pb_append_make(&p);
    p.e[1].index = 11; /* 11, 11, 13 */
    expect_invalid(&p.env);
    pb_append_make(&p);
    p.e[1].index = 13;
    p.e[2].index = 12; /* 11, 13, 12 */
    expect_invalid(&p.env);
}

static void test_append_entry_type_refused(void **state)
{
    struct pb_append p;

    pb_append_make(&p);
    p.e[0].type = REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG; /* the last valid one */
    p.e[0].client_id = "";
    p.e[0].data.data = (uint8_t *)"v r1\n";
    p.e[0].data.len = 5;
    expect_valid_append(&p);
    /* A configuration whose id holds a newline reads as two members. */
    p.e[0].data.data = (uint8_t *)"v r1\nv r2\n";
    p.e[0].data.len = 10;
    expect_valid_append(&p);
    p.e[0].data.data = (uint8_t *)"v r1 r2\n";
    p.e[0].data.len = 8;
    expect_invalid(&p.env);
    p.e[0].data.len = 5;
    p.e[0].client_id = "c:1"; /* only data entries carry a client id */
    expect_invalid(&p.env);
    p.e[0].client_id = "";
    p.e[0].type = (Replicacao__EntryType)3;
    expect_invalid(&p.env);
    p.e[0].type = (Replicacao__EntryType)-1;
    expect_invalid(&p.env);
    /* On a later entry, so the entries already converted are freed. */
    pb_append_make(&p);
    p.e[2].type = (Replicacao__EntryType)1000;
    expect_invalid(&p.env);
}

static void test_append_client_id_length(void **state)
{
    char id[CORE_CLIENT_ID_MAX + 2];
    struct pb_append p;

    pb_append_make(&p);
    memset(id, 'c', sizeof id);
    id[CORE_CLIENT_ID_MAX - 1] = '\0'; /* 127 bytes: the longest that fits */
    p.e[1].client_id = id;
    expect_valid_append(&p);
    id[CORE_CLIENT_ID_MAX - 1] = 'c';
    id[CORE_CLIENT_ID_MAX] = '\0'; /* 128 bytes */
    expect_invalid(&p.env);
}

static void test_append_primary_id_length(void **state)
{
    char id[CORE_ID_MAX + 2];
    struct pb_append p;

    pb_append_make(&p);
    memset(id, 'p', sizeof id);
    id[CORE_ID_MAX - 1] = '\0';
    p.e[2].primary = id;
    expect_valid_append(&p);
    id[CORE_ID_MAX - 1] = 'p';
    id[CORE_ID_MAX] = '\0';
    expect_invalid(&p.env);
}

/* ------------------------------------------------------------------------
 * Refusals: VoteRequest
 * ------------------------------------------------------------------------ */

static void vote_request_with(Envelope *env, Replicacao__VoteRequest *v, char **ids, size_t n)
{
    wire_init(env, "r2", 3);
    replicacao__vote_request__init(v);
    v->last_index = 0;
    v->n_bootstrap = n;
    v->bootstrap = ids;
    env->body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env->vote_request = v;
}

static void test_bootstrap_list_size(void **state)
{
    char names[CORE_MAX_MEMBERS + 1][16];
    char *ids[CORE_MAX_MEMBERS + 1];
    Envelope env;
    Replicacao__VoteRequest v;
    struct received r;
    char err[160] = "";

    for (int i = 0; i <= CORE_MAX_MEMBERS; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        ids[i] = names[i];
    }
    /* Exactly CORE_MAX_MEMBERS: the largest cluster the core holds. */
    vote_request_with(&env, &v, ids, CORE_MAX_MEMBERS);
    r.env = through_wire(&env);
    assert_int_equal(codec_to_core(r.env, &r.m, &r.scratch, err, sizeof err), 1);
    assert_int_equal(r.m.vote_request.n_bootstrap, CORE_MAX_MEMBERS);
    received_free(&r);

    vote_request_with(&env, &v, ids, CORE_MAX_MEMBERS + 1);
    expect_invalid(&env);
}

static void test_bootstrap_id_length(void **state)
{
    char id[CORE_ID_MAX + 1];
    char *ids[2] = {"r1", id};
    Envelope env;
    Replicacao__VoteRequest v;

    memset(id, 'b', sizeof id);
    id[CORE_ID_MAX] = '\0'; /* 64 bytes: one too many */
    vote_request_with(&env, &v, ids, 2);
    expect_invalid(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trip_vote_request),
        cmocka_unit_test(test_trip_vote_response),
        cmocka_unit_test(test_trip_append),
        cmocka_unit_test(test_trip_append_response),
        cmocka_unit_test(test_non_core_message),
        cmocka_unit_test(test_append_gap_refused),
        cmocka_unit_test(test_append_first_index_refused),
        cmocka_unit_test(test_append_duplicate_or_backwards_refused),
        cmocka_unit_test(test_append_entry_type_refused),
        cmocka_unit_test(test_append_client_id_length),
        cmocka_unit_test(test_append_primary_id_length),
        cmocka_unit_test(test_bootstrap_list_size),
        cmocka_unit_test(test_bootstrap_id_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
