/*
 * tests/integration/hostile_wire.c — every message type of the protocol,
 * each field at and past its limit, from a rogue client and a rogue peer.
 *
 * A real 3-replica cluster commits a few requests; then raw connections
 * send, one case each, what common/bounds.h and common/validate.h forbid:
 * ids that are empty, too long, hold a newline, a space or invalid UTF-8;
 * epochs and indexes above LIMIT_COUNTER_MAX (2^53 - 1) and at UINT64_MAX;
 * bootstrap lists over LIMIT_MEMBERS; Appends whose entries are not
 * consecutive, of an unknown type, or carry a CONFIG that does not decode;
 * messages only replicas send, sent to a replica; wrong versions, no body,
 * a 10 KB `from`. Next to each, the value just at the limit must still be
 * served. The contract:
 *
 *  - a refused envelope closes that connection with a logged reason, and
 *    the replica keeps serving everyone else (an established connection
 *    still gets a status, a primary still exists);
 *  - a ClientRequest with an invalid client id is answered REJECTED (or its
 *    connection closed) and the log does not change; a retry of a known id
 *    with other data is answered CONFLICT with the original index;
 *  - a ReadRequest is answered (ReadReply or Error) whatever its after and
 *    limit; one with a filter outside the schema's enum closes the
 *    connection with a logged reason; entries only above `after`, none when
 *    after >= the commit index, never more than the limit (LIMIT_READ_MAX);
 *  - nothing crashes or hangs, no replica restarts (same pid at the end),
 *    no replica logs a line an id smuggled in (a line starting INJECTED),
 *    and at the end there is exactly one primary, a new request commits,
 *    and every request acknowledged before is in every replica's log with
 *    its data (it_check_logs).
 *
 * A rogue peer (Hello kind REPLICA, an id that is not in the cluster) with
 * a high but valid epoch may depose the primary (peer authentication is a
 * later issue): the test then only waits for a primary again. So no case
 * sends a forged Append that is valid in every field; each one breaks at
 * least one rule and must be refused as a whole.
 *
 * Not sent: Fail, which makes a replica exit by design (any client may
 * ask: a fault-injection switch, not a field to validate).
 *
 * A case that does not get what the contract says is recorded and the run
 * goes on; all of them are listed (and the test fails) at the end. A dead
 * replica, a replica that stops answering, or a cluster left without a
 * primary fails at once, naming the case.
 *
 *   HOSTILE_WIRE_ONLY=read-after-max,append-   run only cases whose name
 *                                              contains one of these
 *   HOSTILE_WIRE_SKIP=vote-resp-epoch-max      skip those
 */
#include "harness.h"

#include "bounds.h"
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CASE_TIMEOUT_MS    5000  /* an answer or a close, per case */
#define REASON_TIMEOUT_MS  3000  /* the logged reason after a close */
#define PRIMARY_TIMEOUT_MS 30000 /* a primary again after a case */
#define PROBE_CALL         0x5eedULL
#define REQUEST_CALL       4242u

#define U64_MAX   UINT64_MAX
#define OVER_53   (LIMIT_COUNTER_MAX + 1) /* 2^53: the first refused counter */
#define ROGUE_ID  "rogue-1"               /* a valid id, not in the cluster */
#define ROGUE_CLI "it-rogue"

/* ------------------------------------------------------------------------
 * Hostile values, built once (static: no leak for the sanitizer build)
 * ------------------------------------------------------------------------ */

static char s_10k[10 * 1024 + 1];
static char s_id63[LIMIT_ID_BYTES];      /* longest valid replica id */
static char s_id64[LIMIT_ID_BYTES + 1];  /* one over */
static char s_id70[71];                  /* well over */
static char s_name255[LIMIT_NAME_BYTES]; /* longest valid name/address */
static char s_name256[LIMIT_NAME_BYTES + 1];
static char s_cid127[LIMIT_CLIENT_ID_BYTES]; /* longest valid client id */
static char s_cid128[LIMIT_CLIENT_ID_BYTES + 1];
static char s_cid200[201];
static char s_data_max[(1u << 20) + 1];      /* the default --max-request-bytes */
static char s_data_over[(1u << 20) + 1 + 1]; /* one over */
static char s_boot_ids[1000][8];
static char *s_boot[1000];

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void build_values(void)
{
    fill(s_10k, 'f', sizeof(s_10k) - 1);
    fill(s_id63, 'i', sizeof(s_id63) - 1);
    fill(s_id64, 'i', sizeof(s_id64) - 1);
    fill(s_id70, 'i', sizeof(s_id70) - 1);
    fill(s_name255, 'n', sizeof(s_name255) - 1);
    fill(s_name256, 'n', sizeof(s_name256) - 1);
    fill(s_cid127, 'c', sizeof(s_cid127) - 1);
    fill(s_cid128, 'c', sizeof(s_cid128) - 1);
    fill(s_cid200, 'c', sizeof(s_cid200) - 1);
    fill(s_data_max, 'd', sizeof(s_data_max) - 1);
    fill(s_data_over, 'o', sizeof(s_data_over) - 1);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(s_boot_ids[i], sizeof(s_boot_ids[i]), "b%03u", i);
        s_boot[i] = s_boot_ids[i];
    }
}

/* ------------------------------------------------------------------------
 * The run's state, and recording what did not hold
 * ------------------------------------------------------------------------ */

struct ctx {
    struct it_cluster *cl;
    struct it_writer *w;
    struct it_acks *acks;
    pid_t pids[IT_MAX_REPLICAS];
    struct client keep[IT_MAX_REPLICAS]; /* opened before any attack */
    /* The target of the current case, refreshed before it. */
    unsigned ti;
    uint64_t epoch;
    uint64_t last;
    const char *only;
    const char *skip;
    unsigned n_run;
    unsigned n_skipped;
    char fails[256][320];
    unsigned n_fails;
    bool over_limit[IT_MAX_REPLICAS]; /* reported once, by the case that did it */
};

static void mismatch(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mismatch(struct ctx *x, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    it_log("CONTRACT VIOLATED: %s", msg);
    if (x->n_fails < sizeof(x->fails) / sizeof(x->fails[0])) {
        snprintf(x->fails[x->n_fails], sizeof(x->fails[0]), "%s", msg);
    }
    x->n_fails++;
}

static bool list_has(const char *list, const char *name)
{
    if (list == NULL || list[0] == '\0') {
        return false;
    }
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (tok[0] != '\0' && strstr(name, tok) != NULL) {
            return true;
        }
    }
    return false;
}

static bool selected(struct ctx *x, const char *name)
{
    bool run = (x->only == NULL || x->only[0] == '\0' || list_has(x->only, name)) &&
               !list_has(x->skip, name);
    if (!run) {
        x->n_skipped++;
    }
    return run;
}

static const char *rname(const struct ctx *x, unsigned i)
{
    return x->cl->r[i].id;
}

/* ------------------------------------------------------------------------
 * A rogue connection: raw socket, our own frames, our own reading
 * ------------------------------------------------------------------------ */

struct rogue {
    int fd;
    struct frame_reader rd;
    bool closed; /* the replica closed it (recv 0 / reset, or a send failed) */
    const char *from;
};

static void rogue_open(struct ctx *x, struct rogue *r, unsigned i, const char *from)
{
    memset(r, 0, sizeof(*r));
    r->fd = it_raw_connect(x->cl, i);
    IT_CHECK(r->fd >= 0, "connect to %s", rname(x, i));
    frame_reader_init(&r->rd, FRAME_DEFAULT_MAX);
    r->from = from;
}

static void rogue_close(struct rogue *r)
{
    if (r->fd >= 0) {
        close(r->fd);
    }
    r->fd = -1;
    frame_reader_free(&r->rd);
}

static void rogue_send(struct rogue *r, const Envelope *env)
{
    if (!r->closed && it_raw_send_env(r->fd, env) != 0) {
        r->closed = true; /* refused already: what the case wanted, maybe */
    }
}

/* The next envelope: 1 (*out set), 0 when the connection is closed, -1 on
 * timeout. */
static int rogue_recv(struct rogue *r, int timeout_ms, Envelope **out)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        const uint8_t *payload;
        size_t len;
        enum frame_result fr = frame_reader_next(&r->rd, &payload, &len);
        if (fr == FRAME_READY) {
            *out = replicacao__envelope__unpack(NULL, len, payload);
            IT_CHECK(*out != NULL, "a replica sent a frame that does not unpack (%zu bytes)", len);
            return 1;
        }
        IT_CHECK(fr != FRAME_TOO_LARGE, "a replica sent a frame of %zu bytes", len);
        if (r->closed) {
            return 0;
        }
        int left = (int)(deadline - it_now_ms());
        if (left <= 0) {
            return -1;
        }
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) {
            continue;
        }
        uint8_t buf[65536];
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            r->closed = true;
            continue; /* frames already buffered still count */
        }
        IT_CHECK(frame_reader_feed(&r->rd, buf, (size_t)n) == 0, "out of memory");
    }
}

enum outcome {
    OUT_ANSWERED,
    OUT_CLOSED,
    OUT_HUNG,
};

static const char *outcome_name(enum outcome o)
{
    return o == OUT_ANSWERED ? "answered" : o == OUT_CLOSED ? "closed" : "neither (hung)";
}

static uint64_t call_id_of(const Envelope *env)
{
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
        return env->client_reply->call_id;
    case REPLICACAO__ENVELOPE__BODY_STATUS:
        return env->status->call_id;
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
        return env->read_reply->call_id;
    default:
        return 0;
    }
}

/* Wait for the reply of type `body` carrying call_id, or (accept_error) an
 * Error, skipping the replica's Hello and anything else. */
static enum outcome rogue_await(struct rogue *r, int body, uint64_t call_id, bool accept_error,
                                int timeout_ms, Envelope **out)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    *out = NULL;
    for (;;) {
        int left = (int)(deadline - it_now_ms());
        Envelope *env = NULL;
        int rc = rogue_recv(r, left > 0 ? left : 0, &env);
        if (rc == 0) {
            return OUT_CLOSED;
        }
        if (rc < 0) {
            return OUT_HUNG;
        }
        if (((int)env->body_case == body && call_id_of(env) == call_id) ||
            (accept_error && env->body_case == REPLICACAO__ENVELOPE__BODY_ERROR)) {
            *out = env;
            return OUT_ANSWERED;
        }
        wire_free(env);
    }
}

/* ------------------------------------------------------------------------
 * Building envelopes
 * ------------------------------------------------------------------------ */

static void send_hello_full(struct rogue *r, const char *from, int kind, const char *name,
                            const char *address, uint32_t version, uint64_t epoch)
{
    Envelope env;
    Replicacao__Hello h = REPLICACAO__HELLO__INIT;
    r->from = from; /* later envelopes on this connection speak as it */
    wire_init(&env, from, epoch);
    env.version = version;
    h.name = (char *)name;
    h.address = (char *)address;
    h.kind = (Replicacao__Hello__Kind)kind;
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    rogue_send(r, &env);
}

#define KIND_REPLICA REPLICACAO__HELLO__KIND__REPLICA
#define KIND_CLIENT  REPLICACAO__HELLO__KIND__CLIENT
#define V1           REPLICACAO__VERSION__PROTOCOL_VERSION

static void hello_client(struct rogue *r)
{
    send_hello_full(r, r->from, KIND_CLIENT, r->from, "", V1, 0);
}

static void hello_peer(struct rogue *r)
{
    send_hello_full(r, r->from, KIND_REPLICA, r->from, "", V1, 0);
}

static void send_status_req(struct rogue *r, const char *from, uint32_t version, uint64_t epoch,
                            uint64_t call_id)
{
    Envelope env;
    Replicacao__StatusRequest s = REPLICACAO__STATUS_REQUEST__INIT;
    wire_init(&env, from, epoch);
    env.version = version;
    s.call_id = call_id;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &s;
    rogue_send(r, &env);
}

static void send_vote_req(struct rogue *r, uint64_t epoch, bool pre, uint64_t last_index,
                          uint64_t last_epoch, char **boot, size_t n_boot)
{
    Envelope env;
    Replicacao__VoteRequest v = REPLICACAO__VOTE_REQUEST__INIT;
    wire_init(&env, r->from, epoch);
    v.pre_vote = pre;
    v.last_index = last_index;
    v.last_epoch = last_epoch;
    v.bootstrap = boot;
    v.n_bootstrap = n_boot;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env.vote_request = &v;
    rogue_send(r, &env);
}

static void send_vote_resp(struct rogue *r, uint64_t epoch, bool granted, bool pre)
{
    Envelope env;
    Replicacao__VoteResponse v = REPLICACAO__VOTE_RESPONSE__INIT;
    wire_init(&env, r->from, epoch);
    v.granted = granted;
    v.pre_vote = pre;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_RESPONSE;
    env.vote_response = &v;
    rogue_send(r, &env);
}

static void send_append(struct rogue *r, const char *from, uint64_t epoch, uint64_t prev,
                        uint64_t prev_epoch, uint64_t commit, Replicacao__Entry *es, size_t n)
{
    Envelope env;
    Replicacao__Append a = REPLICACAO__APPEND__INIT;
    Replicacao__Entry *ptrs[40];
    IT_CHECK(n <= 40, "too many entries");
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &es[i];
    }
    wire_init(&env, from, epoch);
    a.prev_index = prev;
    a.prev_epoch = prev_epoch;
    a.commit_index = commit;
    a.entries = n ? ptrs : NULL;
    a.n_entries = n;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &a;
    rogue_send(r, &env);
}

static void send_append_resp(struct rogue *r, uint64_t epoch, bool success, uint64_t match,
                             uint64_t hint)
{
    Envelope env;
    Replicacao__AppendResponse a = REPLICACAO__APPEND_RESPONSE__INIT;
    wire_init(&env, r->from, epoch);
    a.success = success;
    a.match_index = match;
    a.hint_index = hint;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND_RESPONSE;
    env.append_response = &a;
    rogue_send(r, &env);
}

static void send_client_request(struct rogue *r, uint64_t epoch, uint64_t call_id,
                                const char *client_id, const void *data, size_t len)
{
    Envelope env;
    Replicacao__ClientRequest q = REPLICACAO__CLIENT_REQUEST__INIT;
    wire_init(&env, r->from, epoch);
    q.call_id = call_id;
    q.client_id = (char *)client_id;
    q.data.data = (uint8_t *)data;
    q.data.len = len;
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &q;
    rogue_send(r, &env);
}

static void send_read(struct rogue *r, uint64_t call_id, uint64_t after, uint32_t limit, int filter)
{
    Envelope env;
    Replicacao__ReadRequest q = REPLICACAO__READ_REQUEST__INIT;
    wire_init(&env, r->from, 0);
    q.call_id = call_id;
    q.after = after;
    q.limit = limit;
    q.filter = (Replicacao__ReadRequest__Filter)filter;
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REQUEST;
    env.read_request = &q;
    rogue_send(r, &env);
}

/* One of the messages only a replica sends (to clients), as `r->from`. */
static void send_server_message(struct rogue *r, int body)
{
    Envelope env;
    Replicacao__Status st = REPLICACAO__STATUS__INIT;
    Replicacao__ReadReply rr = REPLICACAO__READ_REPLY__INIT;
    Replicacao__Event ev = REPLICACAO__EVENT__INIT;
    Replicacao__ClientReply cr = REPLICACAO__CLIENT_REPLY__INIT;
    Replicacao__Error er = REPLICACAO__ERROR__INIT;
    Replicacao__Entry e = REPLICACAO__ENTRY__INIT, *ep = &e;
    wire_init(&env, r->from, 1);
    env.body_case = (Replicacao__Envelope__BodyCase)body;
    switch (body) {
    case REPLICACAO__ENVELOPE__BODY_STATUS:
        st.call_id = U64_MAX;
        st.id = (char *)r->from;
        st.role = "primary";
        st.epoch = U64_MAX;
        st.commit_index = U64_MAX;
        env.status = &st;
        break;
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
        e.index = U64_MAX;
        e.client_id = "forged";
        e.data.data = (uint8_t *)"forged";
        e.data.len = 6;
        rr.call_id = 1;
        rr.commit_index = U64_MAX;
        rr.entries = &ep;
        rr.n_entries = 1;
        env.read_reply = &rr;
        break;
    case REPLICACAO__ENVELOPE__BODY_EVENT:
        ev.type = "elected";
        ev.replica = (char *)r->from;
        ev.subject = (char *)r->from;
        ev.epoch = U64_MAX;
        ev.detail = "forged\nINJECTED-event";
        env.event = &ev;
        break;
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
        cr.call_id = 1;
        cr.status = REPLICACAO__CLIENT_REPLY__STATUS__OK;
        cr.index = U64_MAX;
        cr.primary = (char *)r->from;
        env.client_reply = &cr;
        break;
    default:
        er.message = "forged\nINJECTED-error";
        env.body_case = REPLICACAO__ENVELOPE__BODY_ERROR;
        env.error = &er;
        break;
    }
    rogue_send(r, &env);
}

/* An entry that the target's log would take as the next one. */
static void forged_entry(struct ctx *x, Replicacao__Entry *e, uint64_t index)
{
    replicacao__entry__init(e);
    e->index = index;
    e->epoch = x->epoch;
    e->type = REPLICACAO__ENTRY_TYPE__ENTRY_DATA;
    e->client_id = "forged";
    e->primary = ROGUE_ID;
    e->data.data = (uint8_t *)"forged";
    e->data.len = 6;
}

/* An Append that follows the target's last entry (so nothing but the
 * field under test stands in its way) and commits what it carries: were
 * it believed, the forged entry would be committed on the target. */
static void send_forged(struct ctx *x, struct rogue *r, Replicacao__Entry *es, size_t n)
{
    send_append(r, r->from, x->epoch, x->last, x->epoch, x->last + n, es, n);
}

/* ------------------------------------------------------------------------
 * The cases: a Hello (or none), then what each sends
 * ------------------------------------------------------------------------ */

enum hello_mode {
    HELLO_NONE, /* the case sends its own */
    HELLO_CLIENT,
    HELLO_PEER,
};

enum expect {
    EXPECT_CLOSED, /* refused: the connection is closed, with a logged reason */
    EXPECT_SERVED, /* valid (at the limit): the connection keeps working */
    EXPECT_EITHER, /* the contract does not say; only no crash, no hang */
};

struct wcase {
    const char *name;
    enum hello_mode hello;
    void (*send)(struct ctx *x, struct rogue *r);
    enum expect expect;
};

/* --- Hello and envelope ---------------------------------------------- */

static void c_hello_version_0(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, ROGUE_CLI, KIND_CLIENT, ROGUE_CLI, "", 0, 0);
}
static void c_hello_version_2(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, ROGUE_CLI, KIND_CLIENT, ROGUE_CLI, "", 2, 0);
}
static void c_hello_epoch_max(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, ROGUE_ID, KIND_REPLICA, ROGUE_ID, "", V1, U64_MAX);
}
static void c_hello_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, ROGUE_ID, KIND_REPLICA, ROGUE_ID, "", V1, OVER_53);
}
static void c_hello_client_from_10k(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, s_10k, KIND_CLIENT, ROGUE_CLI, "", V1, 0);
}
static void c_hello_client_from_newline(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, "it-rogue\nINJECTED-client-from", KIND_CLIENT, ROGUE_CLI, "", V1, 0);
}
static void c_hello_peer_from_10k(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, s_10k, KIND_REPLICA, ROGUE_ID, "", V1, 0);
}
/* A peer Hello under `id`, then a harmless pre-vote (nothing to grant). */
static void peer_as(struct ctx *x, struct rogue *r, const char *id)
{
    send_hello_full(r, id, KIND_REPLICA, "rogue", "", V1, 0);
    send_vote_req(r, x->epoch + 1, true, 0, 0, NULL, 0);
}
static void c_peer_id_empty(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, "");
}
static void c_peer_id_newline(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, "rogue\nINJECTED-peer-id");
}
static void c_peer_id_70(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, s_id70);
}
static void c_peer_id_64(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, s_id64);
}
static void c_peer_id_63(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, s_id63);
}
static void c_peer_id_space(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, "rogue 1");
}
static void c_peer_id_slash(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, "../rogue");
}
static void c_peer_id_utf8(struct ctx *x, struct rogue *r)
{
    peer_as(x, r, "rogu\xc3\xa9"); /* valid UTF-8, not in [A-Za-z0-9._:-] */
}
static void client_named(struct rogue *r, const char *name)
{
    send_hello_full(r, ROGUE_CLI, KIND_CLIENT, name, "", V1, 0);
}
static void c_name_255(struct ctx *x, struct rogue *r)
{
    client_named(r, s_name255);
}
static void c_name_256(struct ctx *x, struct rogue *r)
{
    client_named(r, s_name256);
}
static void c_name_newline(struct ctx *x, struct rogue *r)
{
    client_named(r, "it\nINJECTED-client-name");
}
static void c_name_bad_utf8(struct ctx *x, struct rogue *r)
{
    client_named(r, "it-\xff\xfe");
}
static void c_name_escape(struct ctx *x, struct rogue *r)
{
    client_named(r, "it-\x1b[31mred");
}
static void peer_at(struct rogue *r, const char *name, const char *address)
{
    send_hello_full(r, ROGUE_ID, KIND_REPLICA, name, address, V1, 0);
}
static void c_peer_name_newline(struct ctx *x, struct rogue *r)
{
    peer_at(r, "rogue\nINJECTED-peer-name", "");
}
static void c_peer_addr_255(struct ctx *x, struct rogue *r)
{
    peer_at(r, ROGUE_ID, s_name255);
}
static void c_peer_addr_256(struct ctx *x, struct rogue *r)
{
    peer_at(r, ROGUE_ID, s_name256);
}
static void c_peer_addr_newline(struct ctx *x, struct rogue *r)
{
    peer_at(r, ROGUE_ID, "127.0.0.1:1\nINJECTED-peer-address");
}
static void c_peer_addr_bad_utf8(struct ctx *x, struct rogue *r)
{
    peer_at(r, ROGUE_ID, "127.0.0.1:\xc0\xaf");
}
static void c_hello_kind_7(struct ctx *x, struct rogue *r)
{
    send_hello_full(r, ROGUE_CLI, 7, ROGUE_CLI, "", V1, 0);
}
static void c_hello_twice(struct ctx *x, struct rogue *r)
{
    hello_client(r);
}

/* --- a client's envelopes ------------------------------------------- */

static void c_env_version_0(struct ctx *x, struct rogue *r)
{
    send_status_req(r, r->from, 0, 0, 1);
}
static void c_env_version_2(struct ctx *x, struct rogue *r)
{
    send_status_req(r, r->from, 2, 0, 1);
}
static void c_env_no_body(struct ctx *x, struct rogue *r)
{
    Envelope env;
    wire_init(&env, r->from, 0);
    rogue_send(r, &env);
}
static void c_env_from_10k(struct ctx *x, struct rogue *r)
{
    send_status_req(r, s_10k, V1, 0, 1);
}
static void c_env_epoch_max(struct ctx *x, struct rogue *r)
{
    send_status_req(r, r->from, V1, U64_MAX, 1);
}
static void c_env_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_status_req(r, r->from, V1, OVER_53, 1);
}
static void c_env_epoch_limit(struct ctx *x, struct rogue *r)
{
    send_status_req(r, r->from, V1, LIMIT_COUNTER_MAX, 1);
}
static void c_subscribe_max(struct ctx *x, struct rogue *r)
{
    Envelope env;
    Replicacao__Subscribe s = REPLICACAO__SUBSCRIBE__INIT;
    wire_init(&env, r->from, 0);
    s.call_id = U64_MAX;
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &s;
    rogue_send(r, &env);
}
static void c_request_epoch_max(struct ctx *x, struct rogue *r)
{
    send_client_request(r, U64_MAX, 1, "hostile-request-epoch-max", "x", 1);
}
static void c_sends_status(struct ctx *x, struct rogue *r)
{
    send_server_message(r, REPLICACAO__ENVELOPE__BODY_STATUS);
}
static void c_sends_read_reply(struct ctx *x, struct rogue *r)
{
    send_server_message(r, REPLICACAO__ENVELOPE__BODY_READ_REPLY);
}
static void c_sends_event(struct ctx *x, struct rogue *r)
{
    send_server_message(r, REPLICACAO__ENVELOPE__BODY_EVENT);
}
static void c_sends_client_reply(struct ctx *x, struct rogue *r)
{
    send_server_message(r, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY);
}
static void c_sends_error(struct ctx *x, struct rogue *r)
{
    send_server_message(r, REPLICACAO__ENVELOPE__BODY_ERROR);
}
static void c_client_vote_resp(struct ctx *x, struct rogue *r)
{
    send_vote_resp(r, x->epoch, true, false);
}
static void c_client_append_resp(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, x->epoch, true, x->last, 0);
}

/* --- a rogue peer: votes --------------------------------------------- */

static void c_vote_last_index_max(struct ctx *x, struct rogue *r)
{
    send_vote_req(r, x->epoch + 1, false, U64_MAX, x->epoch, NULL, 0);
}
static void c_vote_last_epoch_max(struct ctx *x, struct rogue *r)
{
    send_vote_req(r, x->epoch + 1, false, x->last, U64_MAX, NULL, 0);
}
static void c_prevote_last_max(struct ctx *x, struct rogue *r)
{
    send_vote_req(r, x->epoch + 1, true, U64_MAX, U64_MAX, NULL, 0);
}
static void c_vote_epoch_max(struct ctx *x, struct rogue *r)
{
    send_vote_req(r, U64_MAX, false, x->last, x->epoch, NULL, 0);
}
static void c_vote_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_vote_req(r, OVER_53, false, x->last, x->epoch, NULL, 0);
}
static void c_prevote_epoch_limit(struct ctx *x, struct rogue *r)
{
    /* At the limit, and a pre-vote with an empty log: nothing to grant,
     * nothing changes, but it must not be refused. */
    send_vote_req(r, LIMIT_COUNTER_MAX, true, 0, 0, NULL, 0);
}
static void boot_vote(struct ctx *x, struct rogue *r, char **ids, size_t n)
{
    send_vote_req(r, x->epoch + 1, true, 0, 0, ids, n);
}
static void c_boot_0(struct ctx *x, struct rogue *r)
{
    boot_vote(x, r, NULL, 0);
}
static void c_boot_32(struct ctx *x, struct rogue *r)
{
    boot_vote(x, r, s_boot, LIMIT_MEMBERS);
}
static void c_boot_33(struct ctx *x, struct rogue *r)
{
    boot_vote(x, r, s_boot, LIMIT_MEMBERS + 1);
}
static void c_boot_1000(struct ctx *x, struct rogue *r)
{
    boot_vote(x, r, s_boot, 1000);
}
static void c_boot_newline(struct ctx *x, struct rogue *r)
{
    char *ids[] = {"r1", "r2\nINJECTED-bootstrap", "r3"};
    boot_vote(x, r, ids, 3);
}
static void c_boot_empty_id(struct ctx *x, struct rogue *r)
{
    char *ids[] = {"", "r1", "r2"};
    boot_vote(x, r, ids, 3);
}
static void c_boot_id_64(struct ctx *x, struct rogue *r)
{
    char *ids[] = {"r1", "r2", s_id64};
    boot_vote(x, r, ids, 3);
}
static void c_vote_resp_granted(struct ctx *x, struct rogue *r)
{
    send_vote_resp(r, x->epoch, true, false);
}
static void c_vote_resp_epoch_max(struct ctx *x, struct rogue *r)
{
    send_vote_resp(r, U64_MAX, false, false);
}
static void c_vote_resp_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_vote_resp(r, OVER_53, false, false);
}

/* --- a rogue peer: appends ------------------------------------------- */

static void c_append_prev_max(struct ctx *x, struct rogue *r)
{
    send_append(r, r->from, x->epoch, U64_MAX, x->epoch, 0, NULL, 0);
}
static void c_append_prev_epoch_max(struct ctx *x, struct rogue *r)
{
    send_append(r, r->from, x->epoch, x->last, U64_MAX, 0, NULL, 0);
}
static void c_append_commit_max(struct ctx *x, struct rogue *r)
{
    send_append(r, r->from, x->epoch, x->last, x->epoch, U64_MAX, NULL, 0);
}
static void c_append_epoch_max(struct ctx *x, struct rogue *r)
{
    send_append(r, r->from, U64_MAX, x->last, x->epoch, 0, NULL, 0);
}
static void c_append_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_append(r, r->from, OVER_53, x->last, x->epoch, 0, NULL, 0);
}
static void c_append_index_0(struct ctx *x, struct rogue *r)
{
    Replicacao__Entry e;
    forged_entry(x, &e, 0);
    send_forged(x, r, &e, 1);
}
static void c_append_index_wrap(struct ctx *x, struct rogue *r)
{
    /* prev_index + 1 wraps to 0: "consecutive" in 64-bit arithmetic. */
    Replicacao__Entry e;
    forged_entry(x, &e, 0);
    send_append(r, r->from, x->epoch, U64_MAX, x->epoch, 0, &e, 1);
}
static void c_append_index_gap(struct ctx *x, struct rogue *r)
{
    Replicacao__Entry es[2];
    forged_entry(x, &es[0], x->last + 1);
    forged_entry(x, &es[1], x->last + 3);
    es[1].client_id = "forged-2";
    send_forged(x, r, es, 2);
}
static void c_append_index_max(struct ctx *x, struct rogue *r)
{
    Replicacao__Entry e;
    forged_entry(x, &e, U64_MAX);
    send_append(r, r->from, x->epoch, U64_MAX - 1, x->epoch, U64_MAX, &e, 1);
}
static void forged_with(struct ctx *x, struct rogue *r, void (*change)(Replicacao__Entry *e))
{
    Replicacao__Entry e;
    forged_entry(x, &e, x->last + 1);
    change(&e);
    send_forged(x, r, &e, 1);
}
static void ch_epoch_max(Replicacao__Entry *e)
{
    e->epoch = U64_MAX;
}
static void ch_epoch_2_53(Replicacao__Entry *e)
{
    e->epoch = OVER_53;
}
static void ch_type_7(Replicacao__Entry *e)
{
    e->type = (Replicacao__EntryType)7;
}
static void ch_client_200(Replicacao__Entry *e)
{
    e->client_id = s_cid200;
}
static void ch_client_128(Replicacao__Entry *e)
{
    e->client_id = s_cid128;
}
static void ch_client_newline(Replicacao__Entry *e)
{
    e->client_id = "forged\nINJECTED-entry-client";
}
static void ch_client_bad_utf8(Replicacao__Entry *e)
{
    e->client_id = "forged-\xc3\x28";
}
static void ch_primary_newline(Replicacao__Entry *e)
{
    e->primary = "rogue\nINJECTED-entry-primary";
}
static void ch_primary_64(Replicacao__Entry *e)
{
    e->primary = s_id64;
}
static void ch_config_newline(Replicacao__Entry *e)
{
    static const char cfg[] = "v a\nb\n"; /* a member "a\nb", encoded as is */
    e->type = REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG;
    e->client_id = "";
    e->data.data = (uint8_t *)cfg;
    e->data.len = sizeof(cfg) - 1;
}
static void ch_config_garbage(Replicacao__Entry *e)
{
    static const uint8_t cfg[] = {0xff, 0x00, 0x0a, 0x76, 0x20, 0xfe, 0x0a, 0x0a, 0x6c};
    e->type = REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG;
    e->client_id = "";
    e->data.data = (uint8_t *)cfg;
    e->data.len = sizeof(cfg);
}
static void ch_config_33(Replicacao__Entry *e)
{
    static char cfg[(LIMIT_MEMBERS + 1) * 8];
    size_t used = 0;
    for (unsigned i = 0; i <= LIMIT_MEMBERS; i++) {
        used += (size_t)snprintf(cfg + used, sizeof(cfg) - used, "v %s\n", s_boot[i]);
    }
    e->type = REPLICACAO__ENTRY_TYPE__ENTRY_CONFIG;
    e->client_id = "";
    e->data.data = (uint8_t *)cfg;
    e->data.len = used;
}
#define FORGED_CASE(fn, change)                                                                    \
    static void fn(struct ctx *x, struct rogue *r)                                                 \
    {                                                                                              \
        forged_with(x, r, change);                                                                 \
    }
FORGED_CASE(c_entry_epoch_max, ch_epoch_max)
FORGED_CASE(c_entry_epoch_2_53, ch_epoch_2_53)
FORGED_CASE(c_entry_type_7, ch_type_7)
FORGED_CASE(c_entry_client_200, ch_client_200)
FORGED_CASE(c_entry_client_128, ch_client_128)
FORGED_CASE(c_entry_client_newline, ch_client_newline)
FORGED_CASE(c_entry_client_bad_utf8, ch_client_bad_utf8)
FORGED_CASE(c_entry_primary_newline, ch_primary_newline)
FORGED_CASE(c_entry_primary_64, ch_primary_64)
FORGED_CASE(c_config_newline, ch_config_newline)
FORGED_CASE(c_config_garbage, ch_config_garbage)
FORGED_CASE(c_config_33, ch_config_33)

static void c_append_from_other(struct ctx *x, struct rogue *r)
{
    send_append(r, "rogue-2", x->epoch, x->last, x->epoch, 0, NULL, 0);
}

/* --- a rogue peer: append responses ------------------------------------ */

static void c_resp_match_max(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, x->epoch, true, U64_MAX, 0);
}
static void c_resp_hint_0(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, x->epoch, false, 0, 0);
}
static void c_resp_hint_max(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, x->epoch, false, 0, U64_MAX);
}
static void c_resp_epoch_max(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, U64_MAX, false, 0, 0);
}
static void c_resp_epoch_2_53(struct ctx *x, struct rogue *r)
{
    send_append_resp(r, OVER_53, false, 0, 0);
}
static void c_resp_epoch_high(struct ctx *x, struct rogue *r)
{
    /* High but valid: may depose the primary (no peer authentication
     * yet); a primary must be back within the generous timeout. */
    send_append_resp(r, x->epoch + 1000, false, 0, 0);
}

/* Before the first Hello or after it: the same rules whoever sends. */
static const struct wcase envelope_cases[] = {
    {"hello-version-0", HELLO_NONE, c_hello_version_0, EXPECT_CLOSED},
    {"hello-version-2", HELLO_NONE, c_hello_version_2, EXPECT_CLOSED},
    {"hello-epoch-max", HELLO_NONE, c_hello_epoch_max, EXPECT_CLOSED},
    {"hello-epoch-2^53", HELLO_NONE, c_hello_epoch_2_53, EXPECT_CLOSED},
    {"hello-client-from-10k", HELLO_NONE, c_hello_client_from_10k, EXPECT_CLOSED},
    {"hello-client-from-newline", HELLO_NONE, c_hello_client_from_newline, EXPECT_EITHER},
    {"hello-peer-from-10k", HELLO_NONE, c_hello_peer_from_10k, EXPECT_CLOSED},
    {"hello-peer-id-empty", HELLO_NONE, c_peer_id_empty, EXPECT_CLOSED},
    {"hello-peer-id-newline", HELLO_NONE, c_peer_id_newline, EXPECT_CLOSED},
    {"hello-peer-id-70", HELLO_NONE, c_peer_id_70, EXPECT_CLOSED},
    {"hello-peer-id-64", HELLO_NONE, c_peer_id_64, EXPECT_CLOSED},
    {"hello-peer-id-63", HELLO_NONE, c_peer_id_63, EXPECT_SERVED},
    {"hello-peer-id-space", HELLO_NONE, c_peer_id_space, EXPECT_CLOSED},
    {"hello-peer-id-slash", HELLO_NONE, c_peer_id_slash, EXPECT_CLOSED},
    {"hello-peer-id-utf8", HELLO_NONE, c_peer_id_utf8, EXPECT_CLOSED},
    {"hello-name-255", HELLO_NONE, c_name_255, EXPECT_SERVED},
    {"hello-name-256", HELLO_NONE, c_name_256, EXPECT_CLOSED},
    {"hello-name-newline", HELLO_NONE, c_name_newline, EXPECT_CLOSED},
    {"hello-name-bad-utf8", HELLO_NONE, c_name_bad_utf8, EXPECT_CLOSED},
    {"hello-name-escape", HELLO_NONE, c_name_escape, EXPECT_CLOSED},
    {"hello-peer-name-newline", HELLO_NONE, c_peer_name_newline, EXPECT_CLOSED},
    {"hello-peer-address-255", HELLO_NONE, c_peer_addr_255, EXPECT_SERVED},
    {"hello-peer-address-256", HELLO_NONE, c_peer_addr_256, EXPECT_CLOSED},
    {"hello-peer-address-newline", HELLO_NONE, c_peer_addr_newline, EXPECT_CLOSED},
    {"hello-peer-address-bad-utf8", HELLO_NONE, c_peer_addr_bad_utf8, EXPECT_CLOSED},
    {"hello-kind-7", HELLO_NONE, c_hello_kind_7, EXPECT_EITHER},
    {"hello-twice", HELLO_CLIENT, c_hello_twice, EXPECT_CLOSED},
};

/* On a connection whose Hello said CLIENT. */
static const struct wcase client_cases[] = {
    {"client-env-version-0", HELLO_CLIENT, c_env_version_0, EXPECT_CLOSED},
    {"client-env-version-2", HELLO_CLIENT, c_env_version_2, EXPECT_CLOSED},
    {"client-env-no-body", HELLO_CLIENT, c_env_no_body, EXPECT_CLOSED},
    {"client-env-from-10k", HELLO_CLIENT, c_env_from_10k, EXPECT_CLOSED},
    {"client-env-epoch-max", HELLO_CLIENT, c_env_epoch_max, EXPECT_CLOSED},
    {"client-env-epoch-2^53", HELLO_CLIENT, c_env_epoch_2_53, EXPECT_CLOSED},
    {"client-env-epoch-limit", HELLO_CLIENT, c_env_epoch_limit, EXPECT_SERVED},
    {"client-subscribe-call-max", HELLO_CLIENT, c_subscribe_max, EXPECT_SERVED},
    {"client-request-epoch-max", HELLO_CLIENT, c_request_epoch_max, EXPECT_CLOSED},
    {"client-sends-status", HELLO_CLIENT, c_sends_status, EXPECT_CLOSED},
    {"client-sends-read-reply", HELLO_CLIENT, c_sends_read_reply, EXPECT_CLOSED},
    {"client-sends-event", HELLO_CLIENT, c_sends_event, EXPECT_CLOSED},
    {"client-sends-client-reply", HELLO_CLIENT, c_sends_client_reply, EXPECT_CLOSED},
    {"client-sends-error", HELLO_CLIENT, c_sends_error, EXPECT_CLOSED},
    {"client-sends-vote-response", HELLO_CLIENT, c_client_vote_resp, EXPECT_CLOSED},
    {"client-sends-append-response", HELLO_CLIENT, c_client_append_resp, EXPECT_CLOSED},
};

/* On a connection whose Hello said REPLICA, id ROGUE_ID (not a member). */
static const struct wcase peer_cases[] = {
    {"vote-req-last-index-max", HELLO_PEER, c_vote_last_index_max, EXPECT_CLOSED},
    {"vote-req-last-epoch-max", HELLO_PEER, c_vote_last_epoch_max, EXPECT_CLOSED},
    {"vote-req-pre-last-max", HELLO_PEER, c_prevote_last_max, EXPECT_CLOSED},
    {"vote-req-epoch-max", HELLO_PEER, c_vote_epoch_max, EXPECT_CLOSED},
    {"vote-req-epoch-2^53", HELLO_PEER, c_vote_epoch_2_53, EXPECT_CLOSED},
    {"vote-req-pre-epoch-limit", HELLO_PEER, c_prevote_epoch_limit, EXPECT_SERVED},
    {"vote-req-bootstrap-0", HELLO_PEER, c_boot_0, EXPECT_SERVED},
    {"vote-req-bootstrap-32", HELLO_PEER, c_boot_32, EXPECT_SERVED},
    {"vote-req-bootstrap-33", HELLO_PEER, c_boot_33, EXPECT_CLOSED},
    {"vote-req-bootstrap-1000", HELLO_PEER, c_boot_1000, EXPECT_CLOSED},
    {"vote-req-bootstrap-newline", HELLO_PEER, c_boot_newline, EXPECT_CLOSED},
    {"vote-req-bootstrap-empty-id", HELLO_PEER, c_boot_empty_id, EXPECT_CLOSED},
    {"vote-req-bootstrap-id-64", HELLO_PEER, c_boot_id_64, EXPECT_CLOSED},
    {"vote-resp-granted", HELLO_PEER, c_vote_resp_granted, EXPECT_SERVED},
    {"vote-resp-epoch-max", HELLO_PEER, c_vote_resp_epoch_max, EXPECT_CLOSED},
    {"vote-resp-epoch-2^53", HELLO_PEER, c_vote_resp_epoch_2_53, EXPECT_CLOSED},
    {"append-prev-index-max", HELLO_PEER, c_append_prev_max, EXPECT_CLOSED},
    {"append-prev-epoch-max", HELLO_PEER, c_append_prev_epoch_max, EXPECT_CLOSED},
    {"append-commit-max", HELLO_PEER, c_append_commit_max, EXPECT_CLOSED},
    {"append-epoch-max", HELLO_PEER, c_append_epoch_max, EXPECT_CLOSED},
    {"append-epoch-2^53", HELLO_PEER, c_append_epoch_2_53, EXPECT_CLOSED},
    {"append-entry-index-0", HELLO_PEER, c_append_index_0, EXPECT_CLOSED},
    {"append-entry-index-wrap", HELLO_PEER, c_append_index_wrap, EXPECT_CLOSED},
    {"append-entry-index-gap", HELLO_PEER, c_append_index_gap, EXPECT_CLOSED},
    {"append-entry-index-max", HELLO_PEER, c_append_index_max, EXPECT_CLOSED},
    {"append-entry-epoch-max", HELLO_PEER, c_entry_epoch_max, EXPECT_CLOSED},
    {"append-entry-epoch-2^53", HELLO_PEER, c_entry_epoch_2_53, EXPECT_CLOSED},
    {"append-entry-type-7", HELLO_PEER, c_entry_type_7, EXPECT_CLOSED},
    {"append-entry-client-200", HELLO_PEER, c_entry_client_200, EXPECT_CLOSED},
    {"append-entry-client-128", HELLO_PEER, c_entry_client_128, EXPECT_CLOSED},
    {"append-entry-client-newline", HELLO_PEER, c_entry_client_newline, EXPECT_CLOSED},
    {"append-entry-client-bad-utf8", HELLO_PEER, c_entry_client_bad_utf8, EXPECT_CLOSED},
    {"append-entry-primary-newline", HELLO_PEER, c_entry_primary_newline, EXPECT_CLOSED},
    {"append-entry-primary-64", HELLO_PEER, c_entry_primary_64, EXPECT_CLOSED},
    {"append-config-newline", HELLO_PEER, c_config_newline, EXPECT_CLOSED},
    {"append-config-garbage", HELLO_PEER, c_config_garbage, EXPECT_CLOSED},
    {"append-config-33-members", HELLO_PEER, c_config_33, EXPECT_CLOSED},
    {"append-from-another-id", HELLO_PEER, c_append_from_other, EXPECT_CLOSED},
    {"append-resp-match-max", HELLO_PEER, c_resp_match_max, EXPECT_CLOSED},
    {"append-resp-hint-0", HELLO_PEER, c_resp_hint_0, EXPECT_EITHER},
    {"append-resp-hint-max", HELLO_PEER, c_resp_hint_max, EXPECT_CLOSED},
    {"append-resp-epoch-max", HELLO_PEER, c_resp_epoch_max, EXPECT_CLOSED},
    {"append-resp-epoch-2^53", HELLO_PEER, c_resp_epoch_2_53, EXPECT_CLOSED},
    {"peer-sends-status", HELLO_PEER, c_sends_status, EXPECT_CLOSED},
    {"peer-sends-read-reply", HELLO_PEER, c_sends_read_reply, EXPECT_CLOSED},
    {"peer-sends-event", HELLO_PEER, c_sends_event, EXPECT_CLOSED},
    {"peer-sends-client-reply", HELLO_PEER, c_sends_client_reply, EXPECT_CLOSED},
    {"peer-sends-error", HELLO_PEER, c_sends_error, EXPECT_CLOSED},
    {"peer-env-version-0", HELLO_PEER, c_env_version_0, EXPECT_CLOSED},
    {"peer-env-version-2", HELLO_PEER, c_env_version_2, EXPECT_CLOSED},
    {"peer-env-no-body", HELLO_PEER, c_env_no_body, EXPECT_CLOSED},
    {"peer-env-from-10k", HELLO_PEER, c_env_from_10k, EXPECT_CLOSED},
    /* Last: it may depose the primary, legitimately. */
    {"append-resp-epoch-high-valid", HELLO_PEER, c_resp_epoch_high, EXPECT_EITHER},
};

/* ------------------------------------------------------------------------
 * Checks around every case
 * ------------------------------------------------------------------------ */

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* A line written after `from` that says the replica closed a connection
 * for a reason (not because the other end went away). */
static bool reason_logged(const char *path, long from)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    fseek(f, from, SEEK_SET);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, "closing") != NULL && strstr(line, "closed by peer") == NULL &&
                strstr(line, "connection reset") == NULL;
    }
    fclose(f);
    return found;
}

/* Lines of replica i's log that start with text an id smuggled in. */
static void check_injection(struct ctx *x, unsigned i)
{
    FILE *f = fopen(x->cl->r[i].log_path, "r");
    if (f == NULL) {
        return;
    }
    char line[4096];
    bool at_start = true;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (at_start && strncmp(line, "INJECTED", 8) == 0) {
            line[strcspn(line, "\n")] = '\0';
            mismatch(x, "%s logged a line that an id or name injected: '%.120s'", rname(x, i),
                     line);
        }
        at_start = strchr(line, '\n') != NULL;
    }
    fclose(f);
}

/* The established connection still gets a status; when it does not, wait
 * a little for the process to be reaped so the failure names the signal. */
static void still_serving(struct ctx *x, unsigned i, const char *after)
{
    char err[256];
    Envelope *r = client_call_status(&x->keep[i], 5000, err, sizeof(err));
    if (r == NULL) {
        char what[640];
        snprintf(what, sizeof(what), "%s to answer an established connection after %s (%s)",
                 rname(x, i), after, err);
        IT_WAIT_UNTIL(3000, what, false);
    }
    wire_free(r);
}

static void wait_primary_after(struct ctx *x, const char *after)
{
    char what[200];
    struct it_status p;
    snprintf(what, sizeof(what), "a primary after case %s", after);
    IT_WAIT_UNTIL(PRIMARY_TIMEOUT_MS, what, it_primary_now(x->cl, &p) >= 0);
}

/* Refresh what the case builds on: the target's epoch and last index. */
static void refresh(struct ctx *x, unsigned ti)
{
    struct it_status st;
    x->ti = ti;
    IT_WAIT_UNTIL(5000, "the target's status", it_status(x->cl, ti, &st) == 0);
    x->epoch = st.epoch;
    x->last = st.last_index;
}

/* After every case: alive, same pids, still serving, a primary exists, no
 * counter past the limit anywhere. */
static void after_case(struct ctx *x, const char *name)
{
    it_check_alive();
    for (unsigned i = 0; i < x->cl->n; i++) {
        IT_CHECK(x->cl->r[i].pid == x->pids[i], "%s was restarted during %s", rname(x, i), name);
    }
    still_serving(x, x->ti, name);
    wait_primary_after(x, name);
    for (unsigned i = 0; i < x->cl->n; i++) {
        struct it_status st;
        if (it_status(x->cl, i, &st) != 0) {
            continue;
        }
        if (!x->over_limit[i] &&
            (st.epoch > LIMIT_COUNTER_MAX || st.last_index > LIMIT_COUNTER_MAX ||
             st.commit_index > LIMIT_COUNTER_MAX)) {
            x->over_limit[i] = true;
            mismatch(x, "%s: %s now has epoch %llu, last index %llu, commit index %llu", name,
                     rname(x, i), (unsigned long long)st.epoch, (unsigned long long)st.last_index,
                     (unsigned long long)st.commit_index);
        }
    }
}

static void run_case(struct ctx *x, unsigned ti, const char *role, const struct wcase *wc)
{
    char name[128];
    snprintf(name, sizeof(name), "%s@%s", wc->name, role);
    if (!selected(x, name)) {
        return;
    }
    x->n_run++;
    refresh(x, ti);
    uint64_t epoch0 = x->epoch, last0 = x->last;
    const char *log = x->cl->r[ti].log_path;
    long off = file_size(log);

    struct rogue r;
    rogue_open(x, &r, ti, wc->hello == HELLO_PEER ? ROGUE_ID : ROGUE_CLI);
    if (wc->hello == HELLO_CLIENT) {
        hello_client(&r);
    } else if (wc->hello == HELLO_PEER) {
        hello_peer(&r);
    }
    wc->send(x, &r);
    /* A status request behind it: answered means what came before was
     * taken (messages are handled in order); closed means refused. */
    send_status_req(&r, r.from, V1, 0, PROBE_CALL);
    Envelope *reply;
    enum outcome o = rogue_await(&r, REPLICACAO__ENVELOPE__BODY_STATUS, PROBE_CALL, false,
                                 CASE_TIMEOUT_MS, &reply);
    wire_free(reply);

    switch (wc->expect) {
    case EXPECT_CLOSED:
        if (o != OUT_CLOSED) {
            mismatch(x, "%s: expected the connection to be closed, it was %s", name,
                     outcome_name(o));
        } else {
            int64_t deadline = it_now_ms() + REASON_TIMEOUT_MS;
            while (!reason_logged(log, off) && it_now_ms() < deadline) {
                it_sleep_ms(10);
            }
            if (!reason_logged(log, off)) {
                mismatch(x, "%s: closed, but no reason in %s's log", name, rname(x, ti));
            }
        }
        break;
    case EXPECT_SERVED:
        if (o != OUT_ANSWERED) {
            mismatch(x, "%s: at the limit, valid, but the connection was %s", name,
                     outcome_name(o));
        }
        break;
    case EXPECT_EITHER:
        if (o == OUT_HUNG) {
            mismatch(x, "%s: neither answered nor closed within %d ms", name, CASE_TIMEOUT_MS);
        }
        break;
    }
    rogue_close(&r);
    after_case(x, name);

    /* A refused envelope leaves the log alone. */
    struct it_status st;
    if (wc->expect == EXPECT_CLOSED && it_status(x->cl, ti, &st) == 0 && st.epoch == epoch0 &&
        st.last_index != last0) {
        mismatch(x, "%s: %s's last index went from %llu to %llu", name, rname(x, ti),
                 (unsigned long long)last0, (unsigned long long)st.last_index);
    }
    it_log("%-40s %-8s %s", name, outcome_name(o),
           wc->expect == EXPECT_CLOSED   ? "(refuse)"
           : wc->expect == EXPECT_SERVED ? "(serve)"
                                         : "(either)");
}

/* ------------------------------------------------------------------------
 * Client requests: invalid ids, limits, retries
 * ------------------------------------------------------------------------ */

/* CONFLICT is being added to ClientReply.Status as 4; protoc-c makes enum
 * constants, not macros, so ask the descriptor rather than #ifdef. */
static int conflict_status(void)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
        &replicacao__client_reply__status__descriptor, "CONFLICT");
    return v ? v->value : 4;
}

/* One request on a fresh rogue client connection to the current primary;
 * follows NOT_PRIMARY for a while (a case before may have moved it). The
 * reply (NULL when closed), or a failure when neither came. */
static Envelope *request_on_primary(struct ctx *x, const char *name, uint64_t call_id,
                                    const char *client_id, const void *data, size_t len,
                                    unsigned *on, struct it_status *before)
{
    int64_t deadline = it_now_ms() + PRIMARY_TIMEOUT_MS;
    for (;;) {
        int pi = it_wait_primary(x->cl, before);
        *on = (unsigned)pi;
        x->ti = (unsigned)pi;
        struct rogue r;
        rogue_open(x, &r, (unsigned)pi, ROGUE_CLI);
        hello_client(&r);
        send_client_request(&r, 0, call_id, client_id, data, len);
        Envelope *reply;
        enum outcome o = rogue_await(&r, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, call_id, true,
                                     CASE_TIMEOUT_MS, &reply);
        if (o == OUT_ANSWERED && reply->body_case == REPLICACAO__ENVELOPE__BODY_ERROR) {
            /* Not a ClientReply: acceptable only as the reason for a close. */
            char msg[128];
            snprintf(msg, sizeof(msg), "%s", reply->error->message);
            wire_free(reply);
            Envelope *more;
            o = rogue_await(&r, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, call_id, false,
                            CASE_TIMEOUT_MS, &more);
            wire_free(more);
            if (o != OUT_CLOSED) {
                mismatch(x,
                         "%s: answered with an Error (%s), not a ClientReply, and the "
                         "connection stayed open",
                         name, msg);
                rogue_close(&r);
                return NULL;
            }
        }
        rogue_close(&r);
        if (o == OUT_HUNG) {
            mismatch(x, "%s: no reply and no close within %d ms", name, CASE_TIMEOUT_MS);
            return NULL;
        }
        if (o == OUT_CLOSED) {
            return NULL;
        }
        if (reply->client_reply->status != REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY ||
            it_now_ms() > deadline) {
            return reply;
        }
        wire_free(reply);
        it_sleep_ms(20);
    }
}

static void request_refused(struct ctx *x, const char *what, const char *client_id,
                            const void *data, size_t len)
{
    char name[128];
    snprintf(name, sizeof(name), "request-%s", what);
    if (!selected(x, name)) {
        return;
    }
    x->n_run++;
    unsigned on;
    struct it_status before, after;
    Envelope *reply = request_on_primary(x, name, REQUEST_CALL, client_id, data, len, &on, &before);
    const char *got = "closed";
    char buf[160];
    if (reply != NULL) {
        const Replicacao__ClientReply *cr = reply->client_reply;
        snprintf(buf, sizeof(buf), "status %d at index %llu (%s)", (int)cr->status,
                 (unsigned long long)cr->index, cr->message);
        got = buf;
        if (cr->status != REPLICACAO__CLIENT_REPLY__STATUS__REJECTED) {
            mismatch(x, "%s: expected REJECTED or a close, got %s", name, buf);
        }
        if (cr->call_id != REQUEST_CALL) {
            mismatch(x, "%s: reply call id %llu", name, (unsigned long long)cr->call_id);
        }
    }
    wire_free(reply);
    after_case(x, name);
    if (it_status(x->cl, on, &after) == 0 && after.epoch == before.epoch &&
        after.last_index != before.last_index) {
        mismatch(x, "%s: the primary's log changed (last index %llu -> %llu)", name,
                 (unsigned long long)before.last_index, (unsigned long long)after.last_index);
    }
    it_log("%-40s %s", name, got);
}

/* At the limit: must be acknowledged; becomes one of the acks. */
static void request_accepted(struct ctx *x, const char *what, const char *client_id,
                             const char *data)
{
    char name[128];
    snprintf(name, sizeof(name), "request-%s", what);
    if (!selected(x, name)) {
        return;
    }
    x->n_run++;
    struct it_ack a;
    memset(&a, 0, sizeof(a));
    if (it_write(x->w, client_id, data, 30000, &a) != 0) {
        mismatch(x, "%s: valid at the limit, but not acknowledged", name);
    } else {
        it_acks_add(x->acks, &a);
        it_log("%-40s OK at index %llu", name, (unsigned long long)a.index);
    }
    int on = it_index_of_id(x->cl, a.primary);
    x->ti = on >= 0 ? (unsigned)on : 0;
    after_case(x, name);
}

static void client_requests(struct ctx *x)
{
    request_refused(x, "id-empty", "", "x", 1);
    request_refused(x, "id-newline", "a\nINJECTED-request-id", "x", 1);
    request_refused(x, "id-tab", "a\tb", "x", 1);
    request_refused(x, "id-del", "a\x7f", "x", 1);
    request_refused(x, "id-c1", "a\xc2\x85", "x", 1); /* U+0085, a C1 control */
    request_refused(x, "id-bad-utf8", "a\xc3\x28", "x", 1);
    request_refused(x, "id-overlong-utf8", "a\xc0\xaf", "x", 1);
    request_refused(x, "id-surrogate", "a\xed\xa0\x80", "x", 1);
    request_refused(x, "id-truncated-utf8", "a\xe2\x82", "x", 1);
    request_refused(x, "id-128", s_cid128, "x", 1);
    request_refused(x, "id-200", s_cid200, "x", 1);
    request_refused(x, "data-over-max", "hostile-data-over-max", s_data_over,
                    sizeof(s_data_over) - 1);

    request_accepted(x, "id-127", s_cid127, "at the client id limit");
    request_accepted(x, "id-utf8", "cliente-a\xc3\xa7\xc3\xa3o-\xe2\x9c\x93", "valid UTF-8 id");
    request_accepted(x, "data-max", "hostile-data-max", s_data_max);

    /* A call id at its maximum is only echoed. */
    if (selected(x, "request-call-id-max")) {
        x->n_run++;
        unsigned on;
        struct it_status before;
        const char *cid = "hostile-call-id-max";
        Envelope *reply =
            request_on_primary(x, "request-call-id-max", U64_MAX, cid, "call max", 8, &on, &before);
        if (reply == NULL || reply->client_reply->status != REPLICACAO__CLIENT_REPLY__STATUS__OK ||
            reply->client_reply->call_id != U64_MAX) {
            mismatch(x, "request-call-id-max: expected OK with call id 2^64-1, got %s",
                     reply ? "another reply" : "a close");
        } else {
            struct it_ack a;
            memset(&a, 0, sizeof(a));
            snprintf(a.client_id, sizeof(a.client_id), "%s", cid);
            snprintf(a.data, sizeof(a.data), "call max");
            snprintf(a.primary, sizeof(a.primary), "%s", reply->client_reply->primary);
            a.index = reply->client_reply->index;
            a.epoch = reply->client_reply->epoch;
            a.writer = 1;
            it_acks_add(x->acks, &a);
        }
        wire_free(reply);
        after_case(x, "request-call-id-max");
        it_log("%-40s done", "request-call-id-max");
    }

    /* Retries of an acknowledged id: the same data is applied once and
     * answered with the original index; other data is a CONFLICT. */
    const struct it_ack orig_copy = x->acks->a[0], *orig = &orig_copy;
    if (selected(x, "request-retry-same")) {
        x->n_run++;
        unsigned on;
        struct it_status before;
        Envelope *reply = request_on_primary(x, "request-retry-same", REQUEST_CALL, orig->client_id,
                                             orig->data, strlen(orig->data), &on, &before);
        if (reply == NULL || reply->client_reply->status != REPLICACAO__CLIENT_REPLY__STATUS__OK ||
            reply->client_reply->index != orig->index) {
            mismatch(x, "request-retry-same: expected OK at index %llu, got %s%d at %llu",
                     (unsigned long long)orig->index, reply ? "status " : "a close ",
                     reply ? (int)reply->client_reply->status : 0,
                     reply ? (unsigned long long)reply->client_reply->index : 0ULL);
        }
        wire_free(reply);
        after_case(x, "request-retry-same");
        it_log("%-40s done", "request-retry-same");
    }
    if (selected(x, "request-retry-conflict")) {
        x->n_run++;
        unsigned on;
        struct it_status before, after;
        const char *other = "not the data of the first request";
        Envelope *reply = request_on_primary(x, "request-retry-conflict", REQUEST_CALL,
                                             orig->client_id, other, strlen(other), &on, &before);
        int want = conflict_status();
        if (reply == NULL || (int)reply->client_reply->status != want ||
            reply->client_reply->index != orig->index) {
            mismatch(x,
                     "request-retry-conflict: a known id (%s, index %llu) with other data: "
                     "expected CONFLICT (%d) at index %llu, got %s%d at index %llu",
                     orig->client_id, (unsigned long long)orig->index, want,
                     (unsigned long long)orig->index, reply ? "status " : "a close ",
                     reply ? (int)reply->client_reply->status : 0,
                     reply ? (unsigned long long)reply->client_reply->index : 0ULL);
        }
        wire_free(reply);
        after_case(x, "request-retry-conflict");
        if (it_status(x->cl, on, &after) == 0 && after.epoch == before.epoch &&
            after.last_index != before.last_index) {
            mismatch(x, "request-retry-conflict: the primary's log changed");
        }
        it_log("%-40s done", "request-retry-conflict");
    }

    /* A backup never takes one either. */
    if (selected(x, "request-id-newline-to-backup")) {
        x->n_run++;
        struct it_status p;
        int pi = it_wait_primary(x->cl, &p);
        unsigned bi = ((unsigned)pi + 1) % x->cl->n;
        struct rogue r;
        rogue_open(x, &r, bi, ROGUE_CLI);
        hello_client(&r);
        send_client_request(&r, 0, REQUEST_CALL, "b\nINJECTED-backup-request", "x", 1);
        Envelope *reply;
        enum outcome o = rogue_await(&r, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, REQUEST_CALL,
                                     false, CASE_TIMEOUT_MS, &reply);
        if (o == OUT_HUNG || (o == OUT_ANSWERED && reply->client_reply->status ==
                                                       REPLICACAO__CLIENT_REPLY__STATUS__OK)) {
            mismatch(x, "request-id-newline-to-backup: %s",
                     o == OUT_HUNG ? "no reply, no close" : "acknowledged");
        }
        wire_free(reply);
        rogue_close(&r);
        x->ti = bi;
        after_case(x, "request-id-newline-to-backup");
        it_log("%-40s %s", "request-id-newline-to-backup", outcome_name(o));
    }
}

/* ------------------------------------------------------------------------
 * Reads: after, limit and filter at and past their limits
 * ------------------------------------------------------------------------ */

struct named_u64 {
    const char *name;
    uint64_t v;
};

/* Read failures are usually many cases of one cause: they are reported as
 * one line per filter and kind of failure, with a count and an example. */
enum read_fail { RF_UNANSWERED, RF_TOO_MANY, RF_NOT_EMPTY, RF_BAD_INDEX, RF_KINDS };

struct read_tally {
    unsigned n[4][RF_KINDS];
    unsigned of[4];
    char first[4][RF_KINDS][200];
};

static void read_fail(struct read_tally *t, size_t f, enum read_fail k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void read_fail(struct read_tally *t, size_t f, enum read_fail k, const char *fmt, ...)
{
    if (t->n[f][k]++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first[f][k], sizeof(t->first[f][k]), fmt, ap);
        va_end(ap);
    }
}

/* The reply to one read, against what was asked. */
static void check_read_reply(struct read_tally *t, size_t f, const char *name, uint64_t after,
                             uint32_t limit, const Replicacao__ReadReply *rr)
{
    uint64_t max = limit == 0               ? LIMIT_READ_DEFAULT
                   : limit > LIMIT_READ_MAX ? LIMIT_READ_MAX
                                            : limit;
    if (rr->n_entries > max) {
        read_fail(t, f, RF_TOO_MANY, "%s: %zu entries, the limit is %llu", name, rr->n_entries,
                  (unsigned long long)max);
    }
    if (after >= rr->commit_index && rr->n_entries != 0) {
        read_fail(t, f, RF_NOT_EMPTY, "%s: %zu entries, none is after the commit index %llu", name,
                  rr->n_entries, (unsigned long long)rr->commit_index);
    }
    uint64_t prev = after;
    for (size_t k = 0; k < rr->n_entries; k++) {
        const Replicacao__Entry *e = rr->entries[k];
        if (e->index <= prev || e->index > rr->commit_index) {
            read_fail(t, f, RF_BAD_INDEX, "%s: entry %zu has index %llu (after %llu, commit %llu)",
                      name, k, (unsigned long long)e->index, (unsigned long long)prev,
                      (unsigned long long)rr->commit_index);
            return;
        }
        prev = e->index;
    }
}

static void reads(struct ctx *x, unsigned ti)
{
    struct it_status st;
    refresh(x, ti);
    IT_CHECK(it_status(x->cl, ti, &st) == 0, "status of %s", rname(x, ti));
    uint64_t commit = st.commit_index;
    const struct named_u64 afters[] = {
        {"0", 0},
        {"commit-1", commit - 1},
        {"commit", commit},
        {"commit+1", commit + 1},
        {"2^53-1", LIMIT_COUNTER_MAX},
        {"2^53", OVER_53},
        {"max-1", U64_MAX - 1},
        {"max", U64_MAX},
    };
    const uint32_t limits[] = {0, 1, LIMIT_READ_MAX, LIMIT_READ_MAX + 1, UINT32_MAX};
    const int filters[] = {0, 1, 2, 99};
    struct read_tally tally;
    memset(&tally, 0, sizeof(tally));
    struct rogue r = {.fd = -1};
    bool open = false;
    uint64_t call = 100;
    unsigned n = 0;
    for (size_t a = 0; a < sizeof(afters) / sizeof(afters[0]); a++) {
        for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
            for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
                /* Every after and limit with ALL and the unknown filter;
                 * PROCESSED and SYNCED with the default limit. */
                if ((filters[f] == 1 || filters[f] == 2) && limits[l] != 0) {
                    continue;
                }
                char name[128];
                snprintf(name, sizeof(name), "read-after-%s-limit-%u-filter-%d@%s", afters[a].name,
                         limits[l], filters[f], rname(x, ti));
                if (!selected(x, name)) {
                    continue;
                }
                x->n_run++;
                n++;
                tally.of[f]++;
                if (!open) {
                    rogue_open(x, &r, ti, ROGUE_CLI);
                    hello_client(&r);
                    open = true;
                }
                call++;
                long log_from = file_size(x->cl->r[ti].log_path);
                send_read(&r, call, afters[a].v, limits[l], filters[f]);
                Envelope *reply;
                enum outcome o = rogue_await(&r, REPLICACAO__ENVELOPE__BODY_READ_REPLY, call, true,
                                             CASE_TIMEOUT_MS, &reply);
                if (filters[f] == 99) {
                    /* An enum value outside the schema is a malformed message:
                     * the connection is closed, with the reason logged. */
                    wire_free(reply);
                    int64_t deadline = it_now_ms() + REASON_TIMEOUT_MS;
                    while (o == OUT_CLOSED && !reason_logged(x->cl->r[ti].log_path, log_from) &&
                           it_now_ms() < deadline) {
                        it_sleep_ms(10);
                    }
                    if (o != OUT_CLOSED || !reason_logged(x->cl->r[ti].log_path, log_from)) {
                        read_fail(&tally, f, RF_UNANSWERED,
                                  "expected a close with a logged reason, the connection was %s "
                                  "(first: %s)",
                                  outcome_name(o), name);
                    }
                    rogue_close(&r);
                    open = false;
                    it_check_alive();
                    still_serving(x, ti, name);
                    continue;
                }
                if (o != OUT_ANSWERED) {
                    read_fail(&tally, f, RF_UNANSWERED,
                              "expected a ReadReply or an Error, the connection was %s (first: %s)",
                              outcome_name(o), name);
                    rogue_close(&r);
                    open = false;
                    it_check_alive();
                    still_serving(x, ti, name);
                    continue;
                }
                if (reply->body_case == REPLICACAO__ENVELOPE__BODY_READ_REPLY) {
                    check_read_reply(&tally, f, name, afters[a].v, limits[l], reply->read_reply);
                } else {
                    /* An Error may be followed by a close: start afresh. */
                    rogue_close(&r);
                    open = false;
                }
                wire_free(reply);
                it_check_alive();
            }
        }
    }
    if (open) {
        rogue_close(&r);
    }
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        for (unsigned k = 0; k < RF_KINDS; k++) {
            if (tally.n[f][k] > 0) {
                mismatch(x, "reads with filter %d on %s, %u of %u: %s", filters[f], rname(x, ti),
                         tally.n[f][k], tally.of[f], tally.first[f][k]);
            }
        }
    }
    x->ti = ti;
    after_case(x, "reads");
    it_log("%u reads on %s done", n, rname(x, ti));
}

/* A status call id at its maximum is echoed, on every replica. */
static void status_call_max(struct ctx *x, unsigned ti)
{
    char name[64];
    snprintf(name, sizeof(name), "status-call-id-max@%s", rname(x, ti));
    if (!selected(x, name)) {
        return;
    }
    x->n_run++;
    x->ti = ti;
    struct rogue r;
    rogue_open(x, &r, ti, ROGUE_CLI);
    hello_client(&r);
    send_status_req(&r, ROGUE_CLI, V1, 0, U64_MAX);
    Envelope *reply;
    enum outcome o =
        rogue_await(&r, REPLICACAO__ENVELOPE__BODY_STATUS, U64_MAX, false, CASE_TIMEOUT_MS, &reply);
    if (o != OUT_ANSWERED) {
        mismatch(x, "%s: expected a Status with call id 2^64-1, the connection was %s", name,
                 outcome_name(o));
    }
    wire_free(reply);
    rogue_close(&r);
    after_case(x, name);
}

/* ------------------------------------------------------------------------
 * The end: same processes, one primary, a new write, nothing lost
 * ------------------------------------------------------------------------ */

static unsigned count_primaries(const struct it_cluster *cl)
{
    unsigned n = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        struct it_status st;
        if (it_status(cl, i, &st) == 0 && strcmp(st.role, "primary") == 0) {
            n++;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "hostile_wire");
    build_values();
    static struct ctx ctx;
    struct ctx *x = &ctx;
    x->only = getenv("HOSTILE_WIRE_ONLY");
    x->skip = getenv("HOSTILE_WIRE_SKIP");

    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "before", 5);
    x->cl = cl;
    x->w = &w;
    x->acks = &acks;
    for (unsigned i = 0; i < cl->n; i++) {
        char err[256];
        x->pids[i] = cl->r[i].pid;
        IT_CHECK(client_connect(&x->keep[i], cl->r[i].addr, "it-keep", 2000, err, sizeof(err)) == 0,
                 "connect %s: %s", rname(x, i), err);
    }
    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    it_log("primary %s in epoch %llu, %zu requests acknowledged; the attack begins", p.id,
           (unsigned long long)p.epoch, acks.n);

    /* Rogue clients first (they need a primary that nothing has moved). */
    client_requests(x);
    for (unsigned i = 0; i < cl->n; i++) {
        status_call_max(x, i);
        reads(x, i);
    }

    /* Envelopes, client and peer messages, against the primary and a
     * backup (as they are when each group starts). */
    struct {
        const struct wcase *cases;
        size_t n;
    } groups[] = {
        {envelope_cases, sizeof(envelope_cases) / sizeof(envelope_cases[0])},
        {client_cases, sizeof(client_cases) / sizeof(client_cases[0])},
        {peer_cases, sizeof(peer_cases) / sizeof(peer_cases[0])},
    };
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        pi = it_wait_primary(cl, &p);
        unsigned targets[2] = {(unsigned)pi, ((unsigned)pi + 1) % cl->n};
        for (unsigned t = 0; t < 2; t++) {
            for (size_t k = 0; k < groups[g].n; k++) {
                run_case(x, targets[t], t == 0 ? "primary" : "backup", &groups[g].cases[k]);
            }
        }
    }
    for (unsigned i = 0; i < cl->n; i++) {
        check_injection(x, i);
    }
    it_log("%u cases run, %u skipped by HOSTILE_WIRE_ONLY/SKIP, %u contract violations", x->n_run,
           x->n_skipped, x->n_fails);
    unsigned shown = x->n_fails < 256 ? x->n_fails : 256;
    for (unsigned k = 0; k < shown; k++) {
        it_log("  - %s", x->fails[k]);
    }

    /* Nothing restarted, one primary, a new write, nothing acknowledged
     * lost or changed. */
    it_check_alive();
    for (unsigned i = 0; i < cl->n; i++) {
        IT_CHECK(cl->r[i].pid == x->pids[i] && cl->r[i].pid > 0, "%s is not the process it was",
                 rname(x, i));
        still_serving(x, i, "the attack");
        client_close(&x->keep[i]);
    }
    it_writer_close(&w);
    it_write_series(&w, &acks, "after", 0, 5, 30000);
    it_wait_caught_up(cl, 0, 30000);
    unsigned np = count_primaries(cl);
    IT_CHECK(np == 1, "%u replicas say they are primary", np);
    it_check_logs(cl, &acks, NULL, 0);
    IT_CHECK(x->n_fails == 0, "%u contract violation(s), listed above", x->n_fails);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
