/*
 * tests/fuzz/make_corpus.c — writes the committed seed corpus
 * (tests/fuzz/corpus/<target>/) with the project's real packers: frames and
 * envelopes from wire_pack, logs from the WAL writer, configurations from
 * core_config_encode, and op sequences for fuzz_core that elect a primary
 * and replicate. Run it after a format change:
 *
 *   build-fuzz/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
 *
 * It overwrites the files it writes and leaves any other file alone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "frame.h"
#include "fuzz_core_ops.h"
#include "storage/wal.h"
#include "wire.h"

static const char *out_dir;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "make_corpus: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        die("mkdir %s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        die("cannot write %s", path);
    }
}

/* A growable byte buffer. */
struct buf {
    uint8_t *p;
    size_t len;
    size_t cap;
};

static void add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) {
            die("out of memory");
        }
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void add_u8(struct buf *b, uint8_t v)
{
    add(b, &v, 1);
}

static void add_u16(struct buf *b, uint16_t v)
{
    add_u8(b, (uint8_t)v);
    add_u8(b, (uint8_t)(v >> 8));
}

static void add_str(struct buf *b, const char *s)
{
    add(b, s, strlen(s));
}

/* ========================================================================
 * Envelopes (fuzz_envelope: payloads; fuzz_frame: streams of frames)
 * ====================================================================== */

/* The payload of env, without the frame header. */
static void put_envelope(const char *name, const Envelope *env, struct buf *stream)
{
    size_t len;
    uint8_t *frame = wire_pack(env, &len);
    if (frame == NULL) {
        die("wire_pack");
    }
    char err[256];
    Envelope *back =
        wire_unpack(frame + FRAME_HEADER_BYTES, len - FRAME_HEADER_BYTES, err, sizeof(err));
    if (back == NULL) {
        die("seed %s is refused by wire_unpack: %s", name, err);
    }
    wire_free(back);
    put("fuzz_envelope", name, frame + FRAME_HEADER_BYTES, len - FRAME_HEADER_BYTES);
    if (stream != NULL) {
        add(stream, frame, len);
    }
    free(frame);
}

static void envelopes(struct buf *stream)
{
    Envelope env;

    Replicacao__Hello hello = REPLICACAO__HELLO__INIT;
    hello.name = "replica-1.local";
    hello.address = "127.0.0.1:7101";
    wire_init(&env, "r1", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    put_envelope("hello", &env, stream);

    Replicacao__VoteRequest vr = REPLICACAO__VOTE_REQUEST__INIT;
    char *boot[] = {"r1", "r2", "r3"};
    vr.last_index = 0;
    vr.pre_vote = 1;
    vr.n_bootstrap = 3;
    vr.bootstrap = boot;
    wire_init(&env, "r2", 1);
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env.vote_request = &vr;
    put_envelope("vote_request", &env, stream);

    Replicacao__VoteResponse vresp = REPLICACAO__VOTE_RESPONSE__INIT;
    vresp.granted = 1;
    wire_init(&env, "r3", 1);
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE;
    env.vote_response = &vresp;
    put_envelope("vote_response", &env, NULL);

    Replicacao__Entry e1 = REPLICACAO__ENTRY__INIT, e2 = REPLICACAO__ENTRY__INIT,
                      e3 = REPLICACAO__ENTRY__INIT;
    e1.index = 1;
    e1.epoch = 1;
    e1.type = REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG;
    e1.primary = "r1";
    e1.data.data = (uint8_t *)"v r1\nv r2\nv r3\n";
    e1.data.len = 15;
    e2.index = 2;
    e2.epoch = 2;
    e2.type = REPLICACAO__ENTRY_TYPE__ENTRY_NOOP;
    e2.primary = "r1";
    e3.index = 3;
    e3.epoch = 2;
    e3.type = REPLICACAO__ENTRY_TYPE__ENTRY_DATA;
    e3.client_id = "client-7";
    e3.primary = "r1";
    e3.data.data = (uint8_t *)"hello";
    e3.data.len = 5;
    e3.time_ms = 1700000000000;
    Replicacao__Entry *entries[] = {&e1, &e2, &e3};
    Replicacao__Append app = REPLICACAO__APPEND__INIT;
    app.prev_index = 0;
    app.prev_epoch = 0;
    app.commit_index = 1;
    app.n_entries = 3;
    app.entries = entries;
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &app;
    put_envelope("append", &env, stream);

    Replicacao__AppendResponse ar = REPLICACAO__APPEND_RESPONSE__INIT;
    ar.success = 1;
    ar.match_index = 3;
    wire_init(&env, "r2", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE;
    env.append_response = &ar;
    put_envelope("append_response", &env, stream);

    Replicacao__ClientRequest cr = REPLICACAO__CLIENT_REQUEST__INIT;
    cr.call_id = 9;
    cr.client_id = "my-id-1";
    cr.data.data = (uint8_t *)"again";
    cr.data.len = 5;
    wire_init(&env, "replctl", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &cr;
    put_envelope("client_request", &env, NULL);

    Replicacao__ClientReply crep = REPLICACAO__CLIENT_REPLY__INIT;
    crep.call_id = 9;
    crep.status = REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY;
    crep.primary = "r3";
    crep.primary_address = "127.0.0.1:7103";
    crep.message = "not primary";
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY;
    env.client_reply = &crep;
    put_envelope("client_reply", &env, NULL);

    Replicacao__StatusRequest sreq = REPLICACAO__STATUS_REQUEST__INIT;
    sreq.call_id = 1;
    wire_init(&env, "coordinator", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &sreq;
    put_envelope("status_request", &env, NULL);

    Replicacao__PeerStatus p1 = REPLICACAO__PEER_STATUS__INIT, p2 = REPLICACAO__PEER_STATUS__INIT;
    p1.id = "r2";
    p1.name = "replica-2";
    p1.address = "127.0.0.1:7102";
    p1.voter = 1;
    p1.connected = 1;
    p1.match_index = 3;
    p1.last_seen_ms = 12;
    p2.id = "r3";
    p2.last_seen_ms = -1;
    Replicacao__PeerStatus *peers[] = {&p1, &p2};
    Replicacao__Status st = REPLICACAO__STATUS__INIT;
    st.call_id = 1;
    st.id = "r1";
    st.name = "replica-1";
    st.address = "127.0.0.1:7101";
    st.role = "primary";
    st.epoch = 2;
    st.primary = "r1";
    st.last_index = 3;
    st.commit_index = 3;
    st.processed = 1;
    st.voter = 1;
    st.n_peers = 2;
    st.peers = peers;
    st.voted_for = "r1";
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS;
    env.status = &st;
    put_envelope("status", &env, NULL);

    Replicacao__Subscribe sub = REPLICACAO__SUBSCRIBE__INIT;
    wire_init(&env, "coordinator", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &sub;
    put_envelope("subscribe", &env, NULL);

    Replicacao__Event ev = REPLICACAO__EVENT__INIT;
    ev.type = "elected";
    ev.replica = "r1";
    ev.subject = "r1";
    ev.epoch = 2;
    ev.index = 2;
    ev.detail = "";
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    put_envelope("event", &env, NULL);

    Replicacao__ReadRequest rr = REPLICACAO__READ_REQUEST__INIT;
    rr.after = 1;
    rr.limit = 10;
    rr.filter = REPLICACAO__READ_REQUEST__FILTER__SYNCED;
    wire_init(&env, "replctl", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REQUEST;
    env.read_request = &rr;
    put_envelope("read_request", &env, NULL);

    Replicacao__ReadReply rrep = REPLICACAO__READ_REPLY__INIT;
    rrep.commit_index = 3;
    rrep.n_entries = 2;
    rrep.entries = entries + 1;
    rrep.total = 2;
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REPLY;
    env.read_reply = &rrep;
    put_envelope("read_reply", &env, NULL);

    Replicacao__Fail fail = REPLICACAO__FAIL__INIT;
    fail.reason = "requested by the dashboard";
    wire_init(&env, "coordinator", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_FAIL;
    env.fail = &fail;
    put_envelope("fail", &env, NULL);

    Replicacao__FaultRule rule = REPLICACAO__FAULT_RULE__INIT, *rules[] = {&rule};
    rule.fault_id = 1;
    rule.peer = "r2";
    rule.loss = 0.3;
    rule.delay_ms = 200;
    rule.expires_in_ms = 5000;
    Replicacao__SetFaults sf = REPLICACAO__SET_FAULTS__INIT;
    sf.rules = rules;
    sf.n_rules = 1;
    sf.pause_ms = 3000;
    sf.pause_fault_id = 2;
    wire_init(&env, "coordinator", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_FAULTS;
    env.set_faults = &sf;
    put_envelope("set_faults", &env, NULL);

    Replicacao__SetTiming timing = REPLICACAO__SET_TIMING__INIT;
    timing.slow_motion = 10;
    wire_init(&env, "coordinator", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_TIMING;
    env.set_timing = &timing;
    put_envelope("set_timing", &env, NULL);

    Replicacao__TrafficItem titem = REPLICACAO__TRAFFIC_ITEM__INIT, *titems[] = {&titem};
    titem.type = "append";
    titem.to = "r2";
    titem.epoch = 2;
    titem.bytes = 180;
    titem.count = 3;
    titem.entries = 2;
    titem.granted = 1;
    Replicacao__Traffic traffic = REPLICACAO__TRAFFIC__INIT;
    traffic.items = titems;
    traffic.n_items = 1;
    wire_init(&env, "r1", 2);
    env.body_case = REPLICACAO__ENVELOPE__BODY_TRAFFIC;
    env.traffic = &traffic;
    put_envelope("traffic", &env, NULL);

    /* The handshake with a secret: a Hello with its nonce, an Auth with a
     * proof, a member key and a signature (the sizes wire.c insists on). */
    static uint8_t nonce[AUTH_NONCE_BYTES], proof[AUTH_PROOF_BYTES], key[AUTH_KEY_BYTES],
        sig[AUTH_SIGNATURE_BYTES];
    memset(nonce, 0x5a, sizeof(nonce));
    Replicacao__Hello shello = REPLICACAO__HELLO__INIT;
    shello.name = "r1";
    shello.address = "10.0.0.1:5000";
    shello.nonce = (ProtobufCBinaryData){sizeof(nonce), nonce};
    wire_init(&env, "r1", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &shello;
    put_envelope("hello_nonce", &env, NULL);
    Replicacao__Auth auth = REPLICACAO__AUTH__INIT;
    auth.proof = (ProtobufCBinaryData){sizeof(proof), proof};
    auth.member_key = (ProtobufCBinaryData){sizeof(key), key};
    auth.signature = (ProtobufCBinaryData){sizeof(sig), sig};
    wire_init(&env, "r1", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_AUTH;
    env.auth = &auth;
    put_envelope("auth", &env, NULL);

    Replicacao__Error error = REPLICACAO__ERROR__INIT;
    error.message = "wrong protocol version";
    wire_init(&env, "r1", 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_ERROR;
    env.error = &error;
    put_envelope("error", &env, NULL);
}

/* fuzz_frame: u8 max_frame, u8 n, n chunk sizes, stream. */
static void frames(const struct buf *stream)
{
    struct buf b = {0};
    add_u8(&b, 0); /* the default maximum */
    add_u8(&b, 0); /* all at once */
    add(&b, stream->p, stream->len);
    put("fuzz_frame", "envelopes_whole", b.p, b.len);

    b.len = 0;
    add_u8(&b, 0);
    add_u8(&b, 3);
    add_u8(&b, 1);
    add_u8(&b, 7);
    add_u8(&b, 0);
    add(&b, stream->p, stream->len);
    put("fuzz_frame", "envelopes_chunked", b.p, b.len);

    /* Small frames under a small maximum, then one declared too large. */
    static const uint8_t small[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0,  0,
                                    0, 0, 0, 1, 'x', 0,   0,   1, 0, 'y'};
    b.len = 0;
    add_u8(&b, 16);
    add_u8(&b, 2);
    add_u8(&b, 2);
    add_u8(&b, 5);
    add(&b, small, sizeof(small));
    put("fuzz_frame", "small_then_too_large", b.p, b.len);
    free(b.p);
}

/* ========================================================================
 * Configurations (fuzz_config)
 * ====================================================================== */

static void configs(void)
{
    struct core_config cfg = {.n = 3};
    struct core_member m[4] = {
        {"r1", true}, {"r2", true}, {"r3", true}, {"replica-4.example.org:7104", false}};
    memcpy(cfg.members, m, sizeof(m));
    char buf[CORE_CONFIG_TEXT_MAX];
    size_t n = core_config_encode(&cfg, buf, sizeof(buf));
    put("fuzz_config", "three_voters", buf, n);
    cfg.n = 4;
    n = core_config_encode(&cfg, buf, sizeof(buf));
    put("fuzz_config", "with_learner", buf, n);
    put("fuzz_config", "no_final_newline", buf, n - 1);
    snprintf(cfg.cluster_id, sizeof(cfg.cluster_id), "0123456789abcdef");
    cfg.n_removed = 1;
    snprintf(cfg.removed[0], CORE_ID_MAX, "r0");
    n = core_config_encode(&cfg, buf, sizeof(buf));
    put("fuzz_config", "cluster_and_removed", buf, n);
    put("fuzz_config", "empty", "", 0);
}

/* ========================================================================
 * Logs (fuzz_wal): written by the real writer, then read back as bytes,
 * behind the mode byte that says which files they are
 * ====================================================================== */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        die("open %s", path);
    }
    struct buf b = {0};
    uint8_t chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        add(&b, chunk, k);
    }
    fclose(f);
    *len = b.len;
    return b.p;
}

typedef void (*wal_script)(struct wal *w);

/* How a log becomes a fuzz_wal input (its mode byte, see fuzz_wal.c). */
enum log_form {
    LEGACY,       /* segment 1 without its header: the old wal.log */
    ONE_SEGMENT,  /* segment 1 */
    TWO_SEGMENTS, /* segments 1 and 2, after u16 length of the first */
    /* The same, with fuzz_wal making checksums right after mutating. */
    REPAIR_LEGACY,
    REPAIR_ONE_SEGMENT,
    REPAIR_TWO_SEGMENTS,
};

/* Runs the script through the real writer with 1 KiB segments (64 MiB
 * for one segment), then takes the files as bytes: the last one cut by
 * `cut` bytes and followed by `zeros` zero bytes. */
static void write_log(const char *name, wal_script script, enum log_form mode, size_t cut,
                      size_t zeros)
{
    enum log_form form = mode % 3;
    char dir[] = "/tmp/make_corpus.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        die("mkdtemp");
    }
    struct wal_options o = {.segment_bytes = form == TWO_SEGMENTS ? 1024 : 0};
    struct wal *w;
    struct wal_recovered rec;
    char err[256], path[300];
    if (wal_open(dir, &o, &w, &rec, err, sizeof(err)) != 0) {
        die("wal_open: %s", err);
    }
    script(w);
    if (wal_sync(w) != 0) {
        die("wal_sync: %s", wal_last_error(w));
    }
    unsigned n_files = form == TWO_SEGMENTS ? 2 : 1;
    if (wal_segment_count(w) > n_files || (form == TWO_SEGMENTS && wal_segment_count(w) != 2)) {
        die("%s: %llu segments", name, (unsigned long long)wal_segment_count(w));
    }
    wal_close(w);
    wal_recovered_free(&rec);

    struct buf b = {0};
    add_u8(&b, (uint8_t)mode);
    uint8_t *files[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    for (unsigned i = 0; i < n_files; i++) {
        snprintf(path, sizeof(path), "%s/wal-%016x.seg", dir, i + 1);
        if (access(path, F_OK) == 0) {
            files[i] = slurp(path, &lens[i]);
            unlink(path);
        }
    }
    snprintf(path, sizeof(path), "%s/wal.lock", dir);
    unlink(path);
    rmdir(dir);
    size_t skip = 0;
    if (form == LEGACY && lens[0] >= 20) {
        /* The header record's length: 20 + its u32 len field. */
        skip = 20 + ((size_t)files[0][8] | (size_t)files[0][9] << 8 | (size_t)files[0][10] << 16 |
                     (size_t)files[0][11] << 24);
    }
    size_t *last = &lens[n_files - 1];
    *last = cut > *last ? 0 : *last - cut;
    if (form == TWO_SEGMENTS) {
        add_u16(&b, (uint16_t)lens[0]);
    }
    for (unsigned i = 0; i < n_files; i++) {
        if (files[i] != NULL) {
            add(&b, files[i] + (i == 0 ? skip : 0), lens[i] - (i == 0 ? skip : 0));
        }
        free(files[i]);
    }
    for (size_t i = 0; i < zeros; i++) {
        add_u8(&b, 0);
    }
    put("fuzz_wal", name, b.p, b.len);
    free(b.p);
}

static struct core_hard_state state(uint64_t epoch, const char *vote)
{
    struct core_hard_state hs;
    memset(&hs, 0, sizeof(hs));
    hs.epoch = epoch;
    snprintf(hs.voted_for, sizeof(hs.voted_for), "%s", vote);
    hs.n_bootstrap = 3;
    strcpy(hs.bootstrap[0], "r1");
    strcpy(hs.bootstrap[1], "r2");
    strcpy(hs.bootstrap[2], "r3");
    return hs;
}

static void log_entries(struct wal *w, uint64_t truncate_from, uint64_t first, uint64_t epoch,
                        unsigned n)
{
    static const char config[] = "v r1\nv r2\nv r3\n";
    for (unsigned i = 0; i < n; i++) {
        struct core_entry e = {
            .index = first + i,
            .epoch = epoch,
            .type = first + i == 1 ? CORE_ENTRY_CONFIG : CORE_ENTRY_DATA,
            .time_ms = 1700000000000 + i,
            .client_id = first + i == 1 ? "" : "client-1",
            .primary = "r1",
            .data = first + i == 1 ? (const uint8_t *)config : (const uint8_t *)"payload",
            .len = first + i == 1 ? sizeof(config) - 1 : 7,
        };
        if (wal_append_entries(w, i == 0 ? truncate_from : 0, &e, 1) != 0) {
            die("wal_append_entries");
        }
    }
}

static void script_empty(struct wal *w)
{
    (void)w;
}

static void script_state(struct wal *w)
{
    struct core_hard_state hs = state(1, "r1");
    wal_append_state(w, &hs);
}

static void script_entries(struct wal *w)
{
    struct core_hard_state hs = state(1, "r1");
    wal_append_state(w, &hs);
    log_entries(w, 0, 1, 1, 3);
}

static void script_truncate(struct wal *w)
{
    struct core_hard_state hs = state(1, "r2");
    wal_append_state(w, &hs);
    log_entries(w, 0, 1, 1, 3);
    hs = state(2, "");
    wal_append_state(w, &hs);
    log_entries(w, 3, 3, 2, 2);
}

static void script_checkpoint(struct wal *w)
{
    script_entries(w);
    struct core_checkpoint cp = {.commit = 2, .processed = 1, .synced = 0};
    wal_append_checkpoint(w, &cp);
    log_entries(w, 0, 4, 1, 1);
}

/* Enough for a second 1 KiB segment: the first sealed, with its footer. */
static void script_rollover(struct wal *w)
{
    script_entries(w);
    log_entries(w, 0, 4, 1, 8);
    struct core_checkpoint cp = {.commit = 9, .processed = 8, .synced = 0};
    wal_append_checkpoint(w, &cp);
    log_entries(w, 0, 12, 2, 2);
}

/* The second segment truncates entries the first one holds. */
static void script_truncate_across(struct wal *w)
{
    script_entries(w);
    log_entries(w, 0, 4, 1, 8);
    if (wal_sync(w) != 0) {
        die("wal_sync");
    }
    struct core_hard_state hs = state(2, "r2");
    wal_append_state(w, &hs);
    log_entries(w, 6, 6, 2, 2);
}

static void logs(void)
{
    write_log("empty", script_empty, LEGACY, 0, 0);
    write_log("state", script_state, LEGACY, 0, 0);
    write_log("entries", script_entries, LEGACY, 0, 0);
    write_log("truncate", script_truncate, LEGACY, 0, 0);
    write_log("torn_tail", script_entries, LEGACY, 9, 0);
    write_log("zero_tail", script_entries, LEGACY, 0, 24);
    write_log("segment_state", script_state, ONE_SEGMENT, 0, 0);
    write_log("segment_entries", script_entries, ONE_SEGMENT, 0, 0);
    write_log("segment_truncate", script_truncate, ONE_SEGMENT, 0, 0);
    write_log("segment_checkpoint", script_checkpoint, ONE_SEGMENT, 0, 0);
    write_log("segment_torn_tail", script_entries, ONE_SEGMENT, 9, 0);
    write_log("segment_zero_tail", script_entries, ONE_SEGMENT, 0, 24);
    write_log("two_segments", script_rollover, TWO_SEGMENTS, 0, 0);
    write_log("two_segments_torn", script_rollover, TWO_SEGMENTS, 5, 0);
    write_log("truncate_across", script_truncate_across, TWO_SEGMENTS, 0, 0);
    write_log("repair_entries", script_truncate, REPAIR_LEGACY, 0, 0);
    write_log("repair_segment", script_checkpoint, REPAIR_ONE_SEGMENT, 0, 0);
    write_log("repair_two_segments", script_rollover, REPAIR_TWO_SEGMENTS, 0, 0);
    write_log("repair_truncate_across", script_truncate_across, REPAIR_TWO_SEGMENTS, 0, 0);
}

/* ========================================================================
 * HTTP input (fuzz_http_input): u16 max selector, u8 limits, u16 body
 * length, u8 query length, body, query, replica id segment
 * ====================================================================== */

static void http(const char *name, const char *body, const char *query, const char *segment)
{
    struct buf b = {0};
    add_u16(&b, 0x8000); /* 1 MiB, the server's default */
    add_u8(&b, 0);       /* GET /api/requests limits */
    add_u16(&b, (uint16_t)strlen(body));
    add_u8(&b, (uint8_t)strlen(query));
    add_str(&b, body);
    add_str(&b, query);
    add_str(&b, segment);
    put("fuzz_http_input", name, b.p, b.len);
    free(b.p);
}

static void http_inputs(void)
{
    http("write", "{\"data\":\"hello\"}", "after=0&limit=10", "r1");
    http("write_id", "{\"data\":\"again\",\"id\":\"my-id-1\"}", "limit=1000", "replica-2");
    http("write_fault", "{\"data\":\"boom\",\"fault\":true}", "after=18446744073709551615",
         "a.b:c-d_e");
    http("write_unicode", "{\"data\":\"caf\xc3\xa9 \\u00e9\\ud83d\\ude00\", \"id\":null}\n", "",
         "r3");
    http("write_bad", "{\"data\":[1,{\"x\":\"\\\"\"}]}", "after=1&after=2", "bad id");
    /* The fault lab's bodies (POST /api/faults, PUT /api/timing). */
    http("fault_partition", "{\"kind\":\"partition\",\"groups\":[[\"r1\"],[\"r2\",\"r3\"]]}", "",
         "r1");
    http("fault_link",
         "{\"kind\":\"link\",\"between\":[\"r1\",\"r2\"],\"delay_ms\":200,\"loss\":0.3,"
         "\"duration_ms\":5000}",
         "", "r2");
    http("fault_pause", "{\"kind\":\"pause\",\"replica\":\"r2\",\"ms\":3000}", "", "r2");
    http("timing_explicit",
         "{\"heartbeat_ms\":100,\"election_min_ms\":900,\"election_max_ms\":1800}", "", "r1");
    http("timing_slow", "{\"slow_motion\":10}", "", "r1");
}

/* ========================================================================
 * Validators (fuzz_validate): u8 depth, u64 min, u64 max, u8 mode, text
 * ====================================================================== */

static void text(const char *name, uint8_t depth, uint8_t mode, const char *s)
{
    struct buf b = {0};
    add_u8(&b, depth);
    for (int i = 0; i < 16; i++) {
        add_u8(&b, 0);
    }
    add_u8(&b, mode);
    add_str(&b, s);
    put("fuzz_validate", name, b.p, b.len);
    free(b.p);
}

static void texts(void)
{
    text("ascii", 16, 0, "replica-1.example.org:7101");
    text("utf8", 16, 0, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    text("bad_utf8", 16, 0, "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82");
    text("json", 3, 0, "{\"a\":[{\"b\":\"[[\\\"{\"}],[]]}");
    text("number", 16, 1, "1000");
    text("big_number", 16, 0, "18446744073709551616");
}

/* ========================================================================
 * fuzz_core: op sequences
 * ====================================================================== */

static void op(struct buf *b, enum fuzz_core_op o, bool flush)
{
    add_u8(b, (uint8_t)(o | (flush ? FOP_FLUSH_BIT : 0)));
}

/* An input's seed: random numbers, and options in its top 16 bits
 * (FUZZ_SEED_OPTIONS in fuzz_core_ops.h). */
static void core_begin(struct buf *b, uint64_t seed, unsigned options)
{
    seed |= (uint64_t)options << 48;
    add(b, &seed, sizeof(seed));
}

/* seen_index choices (gen_seen in fuzz_core.c). */
#define SEEN_UNKNOWN 0
#define SEEN(k)      (uint8_t)(2 | (k) << 2) /* exactly k (< 64) */

static void client(struct buf *b, uint8_t node, uint8_t cid, uint8_t data, uint8_t seen, bool flush)
{
    op(b, FOP_CLIENT, flush);
    add_u8(b, node);
    add_u8(b, cid);  /* 0 c1, 1 c2, 2 c3 */
    add_u8(b, data); /* 0 "a", 1 "b" */
    add_u8(b, seen);
}

static void deliver_all(struct buf *b, int times)
{
    for (int i = 0; i < times; i++) {
        op(b, FOP_DELIVER_ALL, false);
    }
}

/* r1 times out: pre-vote, vote, elected; replication settles. */
static void elect_r1(struct buf *b)
{
    op(b, FOP_TICK_DEADLINE, true);
    add_u8(b, 0);
    deliver_all(b, 6);
}

static void core_seed(const char *name, uint64_t seed, int variant)
{
    struct buf b = {0};
    core_begin(&b, seed, 0);
    elect_r1(&b);
    /* Two requests in one batch, one retry. */
    client(&b, 0, 0, 0, SEEN_UNKNOWN, false);
    client(&b, 0, 1, 1, SEEN(1), false);
    client(&b, 0, 0, 0, SEEN(1), true);
    deliver_all(&b, 4);
    if (variant == 1) {
        /* The primary's process goes away: r2 elects at once. */
        op(&b, FOP_PEER_DOWN, false);
        add_u8(&b, 1); /* r2 */
        add_u8(&b, 0); /* sees r1 down */
        op(&b, FOP_TICK_DEADLINE, true);
        add_u8(&b, 1);
        deliver_all(&b, 6);
        op(&b, FOP_RESTART, false);
        add_u8(&b, 0);
        op(&b, FOP_TICK, true);
        add_u8(&b, 1);
        add_u16(&b, 60);
        deliver_all(&b, 4);
    } else if (variant == 2) {
        /* A forged append from r3 with a higher epoch reaches r2. */
        op(&b, FOP_FORGE, true);
        add_u8(&b, 1); /* to r2 */
        add_u8(&b, 2); /* from r3 */
        add_u8(&b, 2); /* append */
        add_u8(&b, 2); /* epoch: r2's + 1 */
        add_u8(&b, 1); /* prev_index: r2's last */
        add_u8(&b, 1); /* prev_epoch: its epoch */
        add_u8(&b, 1); /* commit: r2's last */
        add_u8(&b, 1); /* one entry */
        add_u8(&b, 1); /* entry epoch: the message's */
        add_u8(&b, 0); /* data */
        for (int i = 0; i < 4; i++) {
            add_u8(&b, 0); /* time */
        }
        add_u8(&b, 2); /* primary r3 */
        add_u8(&b, 2); /* client c3 */
        add_u8(&b, 3); /* 3 bytes of data */
        add_str(&b, "xyz");
        deliver_all(&b, 4);
    }
    put("fuzz_core", name, b.p, b.len);
    free(b.p);
}

/* Retention: r3's disk fails while r1 and r2 commit writes (one session
 * expires on the way: session_max 1); r1 compacts everything; r3 comes
 * back and is sent the snapshot, installs it and catches up; then r2
 * compacts and everybody restarts from a snapshot. r1 caches 600 bytes,
 * r2 one byte: their reads go to the store. */
static void core_seed_retention(const char *name, uint64_t seed, bool forge)
{
    struct buf b = {0};
    core_begin(&b, seed, 2 | 1 << 2 | 1 << 6);
    elect_r1(&b);
    op(&b, FOP_DISK, false);
    add_u8(&b, 2); /* r3 */
    add_u8(&b, 1); /* fails */
    client(&b, 0, 0, 0, SEEN_UNKNOWN, false);
    client(&b, 0, 1, 1, SEEN(1), true);
    deliver_all(&b, 4);
    client(&b, 0, 0, 0, SEEN(0), true); /* c1 forgotten: expired */
    client(&b, 0, 2, 0, SEEN(3), true);
    deliver_all(&b, 4);
    op(&b, FOP_COMPACT, false);
    add_u8(&b, 0); /* r1 */
    add_u8(&b, 0); /* keep nothing */
    if (forge) {
        /* A snapshot from the primary's id at r2's commit index, encoded
         * with every field near a real one's. */
        op(&b, FOP_FORGE, true);
        add_u8(&b, 1); /* to r2 */
        add_u8(&b, 0); /* from r1 */
        add_u8(&b, 5); /* snapshot */
        add_u8(&b, 1); /* epoch: r2's */
        add_u8(&b, 1); /* index near r2's commit */
        add_u8(&b, 1); /* ... exactly */
        add_u8(&b, 1); /* epoch near the entry's there */
        add_u8(&b, 1); /* ... exactly */
        add_u8(&b, 1); /* encoded */
        add_u8(&b, 1); /* body index: the header's */
        add_u8(&b, 1); /* body epoch: the header's */
        add_u8(&b, 1); /* configuration index 1 */
        add_u8(&b, 7); /* members r1 r2 r3 */
        add_u8(&b, 7); /* voters */
        add_u8(&b, 0); /* none removed */
        add_u8(&b, 1); /* horizon 1 */
        add_u8(&b, 1); /* one session */
        add_u8(&b, 1); /* its index: the horizon + ... */
        add_u8(&b, 1); /* ... 1: entry 2, c1's */
        add_u8(&b, 0); /* c1 */
        for (int i = 0; i < 4; i++) {
            add_u8(&b, 0); /* time */
        }
        add_u8(&b, 1); /* epoch: the snapshot's */
        add_u8(&b, 1); /* length 1 */
        add_u8(&b, 2); /* one DATA entry */
        add_u8(&b, 0); /* taken by r1 */
        add_u8(&b, 0); /* own 0 */
        deliver_all(&b, 2);
    }
    op(&b, FOP_DISK, false);
    add_u8(&b, 2);
    add_u8(&b, 0); /* resumed */
    op(&b, FOP_TICK_DEADLINE, true);
    add_u8(&b, 0); /* r1's heartbeat: r3 needs the snapshot */
    deliver_all(&b, 4);
    client(&b, 0, 0, 1, SEEN(4), true);
    deliver_all(&b, 4);
    op(&b, FOP_COMPACT, false);
    add_u8(&b, 1); /* r2 */
    add_u8(&b, 1); /* keep 1 */
    for (uint8_t i = 0; i < 3; i++) {
        op(&b, FOP_RESTART, false);
        add_u8(&b, i);
    }
    op(&b, FOP_TICK_DEADLINE, true);
    add_u8(&b, 1);
    deliver_all(&b, 6);
    put("fuzz_core", name, b.p, b.len);
    free(b.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        die("mkdir %s: %s", out_dir, strerror(errno));
    }
    struct buf stream = {0};
    envelopes(&stream);
    frames(&stream);
    free(stream.p);
    configs();
    logs();
    http_inputs();
    texts();
    core_seed("elect_and_write", 1, 0);
    core_seed("failover_restart", 2, 1);
    core_seed("forged_append", 3, 2);
    core_seed_retention("compact_install_snapshot", 4, false);
    core_seed_retention("forged_snapshot", 5, true);
    return 0;
}
