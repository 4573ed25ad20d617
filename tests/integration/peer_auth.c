/*
 * tests/integration/peer_auth.c — only members and holders of the cluster
 * secret act: a rogue cannot join, depose, write or fail (issue 16).
 *
 * A 3-replica cluster with a secret commits a few requests. Then rogue
 * connections to each replica in turn, each saying Hello as a replica and
 * sending what would hurt most if taken — a VoteRequest with a huge epoch,
 * an Append from that epoch, a Fail:
 *
 *   - with no secret (a Hello without a nonce);
 *   - with a wrong secret (a full handshake, a proof from another key);
 *   - with the right secret but another member's id (a member key of its
 *     own: the id was first proved with another key);
 *   - a real replica process started with the secret under a member's id
 *     and a fresh data dir (the same impersonation, by the real binary);
 *
 * and after each: the connection is closed, no replica exited, epoch, last
 * index and configuration are what they were everywhere, and the replica's
 * count of refused handshakes went up. A control shows the messages are not
 * harmless by themselves: the same Fail over a connection that proves the
 * secret makes a replica exit (75). At the end a write commits and every
 * acknowledged one is in every log once (it_check_logs). Before all that:
 * without a secret a replica refuses a non-loopback address unless
 * --insecure.
 */
#include "harness.h"

#include "peer_auth.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE_EPOCH  1000000000ULL
#define CLOSE_MS    5000
#define ROGUE_ID    "rogue-7"
#define EXIT_FAILED 75

/* What must not change. */
struct state {
    uint64_t epoch, last_index;
    char members[256];
    uint64_t refused;
};

static void state_of(const struct it_cluster *cl, unsigned i, struct state *out)
{
    struct client c;
    char err[256];
    if (client_connect(&c, cl->r[i].addr, "it-auth", 5000, err, sizeof(err)) != 0) {
        IT_FAIL("status of %s: %s", cl->r[i].id, err);
    }
    Envelope *r = client_call_status(&c, 5000, err, sizeof(err));
    client_close(&c);
    if (r == NULL) {
        IT_FAIL("status of %s: %s", cl->r[i].id, err);
    }
    const Replicacao__Status *s = r->status;
    memset(out, 0, sizeof(*out));
    out->epoch = s->epoch;
    out->last_index = s->last_index;
    out->refused = s->handshakes_refused;
    size_t off = 0;
    for (size_t k = 0; k < s->n_members; k++) {
        off += (size_t)snprintf(out->members + off, sizeof(out->members) - off, "%s%s%s",
                                k ? "," : "", s->members[k]->id, s->members[k]->voter ? "" : "(l)");
    }
    wire_free(r);
}

/* The next frame of a raw connection, through the blocking client's
 * reader (one per connection: a read may take two frames at once). */
static Envelope *raw_recv(struct client *c, int timeout_ms)
{
    char err[128];
    return client_recv(c, timeout_ms, err, sizeof(err));
}

/* A rogue's connection to replica i under `id` as a replica: Hello, and
 * with `auth` the rest of the handshake as a dialer (the replica's answer
 * is not checked: a rogue does not care). */
static int rogue_open(const struct it_cluster *cl, unsigned i, const struct peer_auth *auth,
                      const char *id)
{
    int fd = it_raw_connect(cl, i);
    IT_CHECK(fd >= 0, "connect to %s", cl->r[i].id);
    uint8_t nonce[AUTH_NONCE_BYTES];
    Envelope env;
    Replicacao__Hello h = REPLICACAO__HELLO__INIT;
    wire_init(&env, id, 0);
    h.kind = REPLICACAO__HELLO__KIND__REPLICA;
    h.name = "rogue";
    h.address = "127.0.0.1:1";
    if (auth != NULL) {
        peer_auth_random(nonce, sizeof(nonce));
        h.nonce = (ProtobufCBinaryData){sizeof(nonce), nonce};
    }
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    IT_CHECK(it_raw_send_env(fd, &env) == 0, "send hello");
    if (auth == NULL) {
        return fd;
    }
    struct client rc = {.fd = fd};
    frame_reader_init(&rc.reader, 0);
    /* The acceptor's Hello and Auth come back before it knows ours is bad. */
    Envelope *theirs = raw_recv(&rc, CLOSE_MS);
    IT_CHECK(theirs != NULL && theirs->body_case == REPLICACAO__ENVELOPE__BODY_HELLO &&
                 theirs->hello->nonce.len == AUTH_NONCE_BYTES,
             "%s answers a hello with a nonce with its own", cl->r[i].id);
    struct auth_party us = {id, false, nonce};
    struct auth_party them = {theirs->from, false, theirs->hello->nonce.data};
    uint8_t t[32];
    peer_auth_transcript(&us, &them, t);
    wire_free(theirs);
    Envelope *their_auth = raw_recv(&rc, CLOSE_MS);
    frame_reader_free(&rc.reader);
    IT_CHECK(their_auth != NULL && their_auth->body_case == REPLICACAO__ENVELOPE__BODY_AUTH,
             "%s sends its auth after its hello", cl->r[i].id);
    wire_free(their_auth);
    struct auth_answer a;
    peer_auth_answer(auth, t, true, &a);
    wire_init(&env, id, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_AUTH;
    env.auth = &a.msg;
    IT_CHECK(it_raw_send_env(fd, &env) == 0, "send auth");
    return fd;
}

/* Depose, overwrite, kill: sent without waiting (whatever is refused,
 * the sends may fail once the replica has closed). */
static void rogue_attack(int fd, const char *id)
{
    Envelope env;
    Replicacao__VoteRequest v = REPLICACAO__VOTE_REQUEST__INIT;
    wire_init(&env, id, HUGE_EPOCH);
    v.last_index = HUGE_EPOCH;
    v.last_epoch = HUGE_EPOCH;
    env.body_case = REPLICACAO__ENVELOPE__BODY_VOTE_REQUEST;
    env.vote_request = &v;
    it_raw_send_env(fd, &env);

    Replicacao__Entry e = REPLICACAO__ENTRY__INIT, *ep = &e;
    e.index = 1;
    e.epoch = HUGE_EPOCH;
    e.client_id = "rogue-write";
    e.primary = (char *)id;
    e.data = (ProtobufCBinaryData){5, (uint8_t *)"evil!"};
    Replicacao__Append a = REPLICACAO__APPEND__INIT;
    wire_init(&env, id, HUGE_EPOCH);
    a.commit_index = 1;
    a.entries = &ep;
    a.n_entries = 1;
    env.body_case = REPLICACAO__ENVELOPE__BODY_APPEND;
    env.append = &a;
    it_raw_send_env(fd, &env);

    Replicacao__Fail f = REPLICACAO__FAIL__INIT;
    f.reason = "rogue";
    wire_init(&env, id, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_FAIL;
    env.fail = &f;
    it_raw_send_env(fd, &env);
}

/* Nothing changed anywhere, and replica `target`'s refusals went up. */
static void check_unchanged(const struct it_cluster *cl, const struct state *before,
                            unsigned target, const char *what)
{
    for (unsigned i = 0; i < 3; i++) {
        it_check_alive();
        struct state now;
        state_of(cl, i, &now);
        IT_CHECK(now.epoch == before[i].epoch && now.last_index == before[i].last_index &&
                     strcmp(now.members, before[i].members) == 0,
                 "%s: %s went from epoch %llu, last index %llu, members %s to %llu, %llu, %s", what,
                 cl->r[i].id, (unsigned long long)before[i].epoch,
                 (unsigned long long)before[i].last_index, before[i].members,
                 (unsigned long long)now.epoch, (unsigned long long)now.last_index, now.members);
        if (i == target) {
            IT_CHECK(now.refused > before[i].refused, "%s: %s did not count the refusal", what,
                     cl->r[i].id);
        }
    }
}

static void snapshot(const struct it_cluster *cl, struct state *out)
{
    for (unsigned i = 0; i < 3; i++) {
        state_of(cl, i, &out[i]);
    }
}

/* The replica binary on a non-loopback address without a secret: refused
 * (exit 2, saying why) unless --insecure, which starts and warns. The
 * process is this test's own: SIGKILLed and reaped here, and it dies with
 * the test (PR_SET_PDEATHSIG) whatever happens. */
static void no_secret_no_network(const char *bin, const struct it_replica *spare)
{
    const char *port = strrchr(spare->addr, ':') + 1;
    char listen[64], peers[64], dir[600], log[600];
    snprintf(listen, sizeof(listen), "0.0.0.0:%s", port);
    snprintf(peers, sizeof(peers), "127.0.0.1:%s", port);
    snprintf(dir, sizeof(dir), "%s-insecure", spare->data_dir);
    snprintf(log, sizeof(log), "%s-insecure.log", spare->data_dir);
    for (int insecure = 0; insecure <= 1; insecure++) {
        char *args[] = {(char *)bin, "--id",
                        "lone",      "--listen",
                        listen,      "--advertise",
                        peers,       "--peers",
                        peers,       "--initial-size",
                        "1",         "--data-dir",
                        dir,         insecure ? "--insecure" : NULL,
                        NULL};
        pid_t parent = getpid();
        pid_t pid = fork();
        IT_CHECK(pid >= 0, "fork");
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (getppid() != parent || fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
                _exit(127);
            }
            unsetenv("REPLICA_CLUSTER_SECRET_FILE");
            execv(bin, args);
            _exit(127);
        }
        int st = 0;
        int64_t deadline = it_now_ms() + (insecure ? 1000 : 5000); /* running after 1 s: started */
        pid_t done = 0;
        while ((done = waitpid(pid, &st, WNOHANG)) == 0 && it_now_ms() < deadline) {
            it_sleep_ms(20);
        }
        if (!insecure) {
            IT_CHECK(done == pid && WIFEXITED(st) && WEXITSTATUS(st) == 2,
                     "a replica on %s without a secret: wait status 0x%x, want exit 2", listen,
                     done == pid ? st : -1);
        } else {
            bool running = done == 0;
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            IT_CHECK(running, "a replica on %s with --insecure exited: status 0x%x", listen, st);
        }
    }
    char text[8192] = "";
    FILE *f = fopen(log, "r");
    IT_CHECK(f != NULL, "open %s", log);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    IT_CHECK(strstr(text, "refusing to listen on 0.0.0.0") != NULL &&
                 strstr(text, "--insecure: listening on 0.0.0.0") != NULL,
             "the refusal and the warning are not in %s:\n%s", log, text);
    it_log("without a secret: refused on %s, started with --insecure (warned)", listen);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "peer_auth");
    struct it_cluster *cl = it_cluster_new(4); /* r4: the impostor process, started late */
    cl->initial_size = 3;
    no_secret_no_network(argv[1], &cl->r[3]);
    it_cluster_secret(cl);
    for (unsigned i = 0; i < 3; i++) {
        it_start(cl, i);
    }
    struct it_writer w;
    struct it_acks acks;
    it_acks_init(&acks);
    it_writer_init(&w, cl, 0);
    it_write_series(&w, &acks, "before", 0, 20, 30000);
    it_wait_caught_up(cl, 1u << 3, 10000);

    struct peer_auth wrong, right;
    char err[256], path[600];
    snprintf(path, sizeof(path), "%s.wrong", cl->secret_file);
    IT_CHECK(peer_auth_create_secret(path, err, sizeof(err)) == 0, "%s", err);
    IT_CHECK(peer_auth_load(&wrong, path, err, sizeof(err)) == 0, "%s", err);
    IT_CHECK(peer_auth_load(&right, cl->secret_file, err, sizeof(err)) == 0, "%s", err);
    uint8_t seed[32];
    peer_auth_random(seed, sizeof(seed));
    peer_auth_member_key_from_seed(&wrong, seed); /* signs, as a replica would */
    peer_auth_member_key_from_seed(&right, seed); /* a key no member joined with */

    struct state before[3];
    for (unsigned target = 0; target < 3; target++) {
        const char *member = cl->r[(target + 1) % 3].id; /* another member's id */
        struct {
            const char *what;
            const struct peer_auth *auth;
            const char *id;
        } cases[] = {
            {"no secret", NULL, ROGUE_ID},
            {"no secret, a member's id", NULL, member},
            {"a wrong secret", &wrong, ROGUE_ID},
            {"the right secret, another member's id", &right, member},
            {"the right secret, the replica's own id", &right, cl->r[target].id},
        };
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            char what[160];
            snprintf(what, sizeof(what), "%s to %s", cases[k].what, cl->r[target].id);
            snapshot(cl, before);
            int fd = rogue_open(cl, target, cases[k].auth, cases[k].id);
            rogue_attack(fd, cases[k].id);
            IT_CHECK(it_raw_expect_closed(fd, CLOSE_MS) == 0, "%s: connection left open", what);
            close(fd);
            check_unchanged(cl, before, target, what);
            it_log("refused: %s", what);
        }
    }

    /* A real replica process with the secret under a member's id and an
     * empty data dir: every member refuses it both ways. */
    int member = 1;
    snprintf(cl->r[3].id, sizeof(cl->r[3].id), "%s", cl->r[member].id);
    snapshot(cl, before);
    it_start(cl, 3);
    IT_WAIT_UNTIL(20000, "every member to refuse the impostor", ({
                      bool all = true;
                      for (unsigned i = 0; i < 3; i++) {
                          struct state s;
                          state_of(cl, i, &s);
                          all = all && s.refused > before[i].refused;
                      }
                      all;
                  }));
    /* Give it a few of its election timeouts to try its worst. */
    it_sleep_ms(2000);
    for (unsigned i = 0; i < 3; i++) {
        struct state now;
        state_of(cl, i, &now);
        IT_CHECK(now.epoch == before[i].epoch && strcmp(now.members, before[i].members) == 0,
                 "the impostor changed %s: epoch %llu -> %llu, members %s -> %s", cl->r[i].id,
                 (unsigned long long)before[i].epoch, (unsigned long long)now.epoch,
                 before[i].members, now.members);
    }
    it_kill(cl, 3, SIGTERM);
    it_log("refused: a replica process under %s's id with another key", cl->r[member].id);

    /* The control: the same Fail, from a client that proves the secret,
     * is obeyed. */
    struct it_status ps;
    int p = it_wait_primary(cl, &ps);
    unsigned victim = (unsigned)(p + 1) % 3;
    struct client c;
    IT_CHECK(client_connect(&c, cl->r[victim].addr, "it-operator", 5000, err, sizeof(err)) == 0,
             "%s", err);
    IT_CHECK(client_send_fail(&c, "operator") == 0, "send fail");
    int st = it_wait_exit(cl, victim, 10000);
    client_close(&c);
    IT_CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_FAILED,
             "a Fail with the secret: %s's wait status 0x%x, want exit %d", cl->r[victim].id, st,
             EXIT_FAILED);
    it_start(cl, victim);

    it_write_series(&w, &acks, "after", 0, 10, 30000);
    it_wait_caught_up(cl, 1u << 3, 20000);
    it_check_logs(cl, &acks, NULL, 0);
    it_writer_close(&w);
    it_acks_free(&acks);
    it_finish(cl);
    return 0;
}
