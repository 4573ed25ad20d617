/*
 * tests/integration/bad_input.c — hostile or broken bytes on the wire.
 *
 * Against the primary and then a backup, each case opens a raw TCP
 * connection and sends one kind of bad input: a length of 2^32-1, a frame
 * over --max-frame-bytes, garbage protobuf, an unknown message type, no
 * message type, a wrong protocol version, replica messages (Append,
 * VoteRequest, with a huge epoch) on a connection whose Hello said CLIENT,
 * a first message that is not a Hello, a message only replicas send, and a
 * truncated frame. Each time the replica must close that connection (recv
 * gives 0 or ECONNRESET) with a logged reason (docs/api.md, "Wire
 * protocol": a message that breaks a limit closes its connection with a
 * logged reason), and keep serving everyone else: a
 * status call on a connection opened before still works, writes still
 * commit, nobody adopted the huge epoch, and at the end every replica
 * still shuts down cleanly (under the sanitizer build: no leak on these
 * paths).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUGE_EPOCH 1000000

/* ------------------------------------------------------------------------
 * Building the bad input
 * ------------------------------------------------------------------------ */

static void send_env(int fd, const Envelope *env)
{
    IT_CHECK(it_raw_send_env(fd, env) == 0, "send");
}

static void send_hello(int fd, const char *from, uint32_t version)
{
    Envelope env;
    Replicacao__Hello hello = REPLICACAO__HELLO__INIT;
    wire_init(&env, from, 0);
    env.version = version;
    hello.name = (char *)from;
    hello.kind = REPLICACAO__HELLO__KIND__CLIENT;
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    send_env(fd, &env);
}

static void send_status_request(int fd, uint32_t version)
{
    Envelope env;
    Replicacao__StatusRequest req = REPLICACAO__STATUS_REQUEST__INIT;
    wire_init(&env, "it-bad", 0);
    env.version = version;
    req.call_id = 7;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &req;
    send_env(fd, &env);
}

/* A frame with this payload, the length header computed honestly. */
static void send_frame(int fd, const void *payload, uint32_t len)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    IT_CHECK(it_raw_send(fd, hdr, 4) == 0 && it_raw_send(fd, payload, len) == 0, "send frame");
}

static void send_header(int fd, uint32_t len)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    IT_CHECK(it_raw_send(fd, hdr, 4) == 0, "send header");
}

static const uint8_t garbage[24] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* The cases. `peer` is another replica's id, to impersonate. */
static void c_huge_first(int fd, const char *peer)
{
    send_header(fd, 0xffffffffu);
}

static void c_huge_after_hello(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_header(fd, 0xffffffffu);
    /* Some of the promised bytes; the replica may already have closed. */
    (void)it_raw_send(fd, garbage, sizeof(garbage));
}

static void c_over_max(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_header(fd, (16u << 20) + 1); /* the default --max-frame-bytes + 1 */
}

static void c_garbage_first(int fd, const char *peer)
{
    send_frame(fd, garbage, sizeof(garbage));
}

static void c_garbage_after_hello(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_frame(fd, garbage, sizeof(garbage));
}

static void c_unknown_type(int fd, const char *peer)
{
    /* version = 1, then field 99 (not in the oneof), length-delimited. */
    static const uint8_t env[] = {0x08, 0x01, 0x9a, 0x06, 0x01, 0x00};
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_frame(fd, env, sizeof(env));
}

static void c_no_type(int fd, const char *peer)
{
    static const uint8_t env[] = {0x08, 0x01}; /* a version and nothing else */
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_frame(fd, env, sizeof(env));
}

static void c_version_hello(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION + 1);
}

static void c_version_after_hello(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_status_request(fd, REPLICACAO__VERSION__PROTOCOL_VERSION + 1);
}

static void c_version_missing(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    send_status_request(fd, 0);
}

/* An Append that, were it believed, would make the receiver a backup of
 * `peer` in a huge epoch with a forged entry. The Hello said CLIENT. */
static void c_append_from_client(int fd, const char *peer)
{
    send_hello(fd, peer, REPLICACAO__VERSION__PROTOCOL_VERSION);
    Envelope env;
    Replicacao__Append ap = REPLICACAO__APPEND__INIT;
    Replicacao__Entry e = REPLICACAO__ENTRY__INIT, *ep = &e;
    wire_init(&env, peer, HUGE_EPOCH);
    e.index = 1;
    e.epoch = HUGE_EPOCH;
    e.client_id = "forged";
    e.primary = (char *)peer;
    e.data.data = (uint8_t *)"forged";
    e.data.len = 6;
    ap.prev_index = 0;
    ap.commit_index = 1;
    ap.n_entries = 1;
    ap.entries = &ep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &ap;
    send_env(fd, &env);
}

static void c_vote_from_client(int fd, const char *peer)
{
    send_hello(fd, peer, REPLICACAO__VERSION__PROTOCOL_VERSION);
    Envelope env;
    Replicacao__VoteRequest vr = REPLICACAO__VOTE_REQUEST__INIT;
    wire_init(&env, peer, HUGE_EPOCH);
    vr.last_index = HUGE_EPOCH;
    vr.last_epoch = HUGE_EPOCH;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env.vote_request = &vr;
    send_env(fd, &env);
}

static void c_not_hello_first(int fd, const char *peer)
{
    send_status_request(fd, REPLICACAO__VERSION__PROTOCOL_VERSION);
}

static void c_server_message(int fd, const char *peer)
{
    send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
    Envelope env;
    Replicacao__Status s = REPLICACAO__STATUS__INIT;
    wire_init(&env, "it-bad", 0);
    s.id = "it-bad"; /* a well-formed Status, so only its direction is wrong */
    s.role = "primary";
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS;
    env.status = &s;
    send_env(fd, &env);
}

struct bad_case {
    const char *name;
    void (*send)(int fd, const char *peer);
    const char *logged; /* what the logged reason says */
};

static const struct bad_case cases[] = {
    {"length 2^32-1 as the first frame", c_huge_first, "max-frame-bytes"},
    {"length 2^32-1 after a hello", c_huge_after_hello, "max-frame-bytes"},
    {"a frame one byte over --max-frame-bytes", c_over_max, "max-frame-bytes"},
    {"garbage protobuf as the first frame", c_garbage_first, "malformed protobuf"},
    {"garbage protobuf after a hello", c_garbage_after_hello, "malformed protobuf"},
    {"an unknown message type", c_unknown_type, "unknown or missing message type"},
    {"an envelope with no message", c_no_type, "unknown or missing message type"},
    {"a hello with the wrong protocol version", c_version_hello, "protocol version"},
    {"a request with the wrong protocol version", c_version_after_hello, "protocol version"},
    {"a request with no protocol version", c_version_missing, "protocol version"},
    {"an Append on a CLIENT connection", c_append_from_client, "from a client"},
    {"a VoteRequest on a CLIENT connection", c_vote_from_client, "from a client"},
    {"a first message that is not a hello", c_not_hello_first, "not a hello"},
    {"a Status (a reply) sent by a client", c_server_message, "unexpected message"},
};

/* ------------------------------------------------------------------------
 * Checking the replica's reaction
 * ------------------------------------------------------------------------ */

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* A "closing <connection>: <reason>" line whose reason contains `word`,
 * written to the log after offset `from`. */
static bool logged_since(const char *path, long from, const char *word)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    fseek(f, from, SEEK_SET);
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *reason = strstr(line, "): ");
        found = strstr(line, "closing") != NULL && reason != NULL && strstr(reason, word) != NULL;
    }
    fclose(f);
    return found;
}

/* The connection opened before the bad one still gets answers. */
static void still_serving(struct client *keep, const char *who, const char *after)
{
    char err[256];
    Envelope *r = client_call_status(keep, 5000, err, sizeof(err));
    IT_CHECK(r != NULL, "%s stopped answering an established connection after %s: %s", who, after,
             err);
    wire_free(r);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "bad_input");
    struct it_writer w;
    struct it_acks acks;
    struct it_cluster *cl = it_cluster_warm(3, &w, &acks, "before", 5);
    struct it_status p;
    int pi = it_wait_primary(cl, &p);
    uint64_t epoch = p.epoch;
    int targets[2] = {pi, (pi + 1) % 3};

    unsigned n_cases = 0;
    for (int t = 0; t < 2; t++) {
        int ti = targets[t];
        const struct it_replica *r = &cl->r[ti];
        const char *peer = cl->r[(ti + 2) % 3].id; /* impersonated */
        struct client keep;
        char err[256];
        IT_CHECK(client_connect(&keep, r->addr, "it-keep", 2000, err, sizeof(err)) == 0,
                 "connect %s: %s", r->id, err);
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            const struct bad_case *bc = &cases[k];
            long log_from = file_size(r->log_path);
            int fd = it_raw_connect(cl, (unsigned)ti);
            IT_CHECK(fd >= 0, "connect to %s", r->id);
            bc->send(fd, peer);
            IT_CHECK(it_raw_expect_closed(fd, 5000) == 0, "%s kept a connection open after %s",
                     r->id, bc->name);
            close(fd);
            IT_WAIT_UNTIL(5000, "the reason to be logged",
                          logged_since(r->log_path, log_from, bc->logged));
            still_serving(&keep, r->id, bc->name);
            char prefix[32];
            snprintf(prefix, sizeof(prefix), "case-%d-%02zu", t, k);
            it_write_series(&w, &acks, prefix, 0, 1, 10000);
            it_log("%s (%s): %s closed the connection, logged why, still serves", bc->name,
                   t == 0 ? "primary" : "backup", r->id);
            n_cases++;
        }

        /* A frame cut short, then the client hangs up: nothing to answer,
         * but nothing may break either. */
        int fd = it_raw_connect(cl, (unsigned)ti);
        IT_CHECK(fd >= 0, "connect to %s", r->id);
        send_hello(fd, "it-bad", REPLICACAO__VERSION__PROTOCOL_VERSION);
        send_header(fd, 100);
        IT_CHECK(it_raw_send(fd, garbage, 10) == 0, "send");
        close(fd);
        still_serving(&keep, r->id, "a truncated frame");
        client_close(&keep);
    }

    /* Nobody believed the forged epoch, nobody held an election. */
    for (unsigned i = 0; i < cl->n; i++) {
        struct it_status st;
        IT_CHECK(it_status(cl, i, &st) == 0, "status of %s", cl->r[i].id);
        IT_CHECK(st.epoch == epoch, "%s is in epoch %llu, was %llu before the bad input",
                 cl->r[i].id, (unsigned long long)st.epoch, (unsigned long long)epoch);
    }
    it_log("%u bad inputs refused; every replica still in epoch %llu", n_cases,
           (unsigned long long)epoch);
    it_write_series(&w, &acks, "after", 0, 10, 10000);
    it_wait_caught_up(cl, 0, 10000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
