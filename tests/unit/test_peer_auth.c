/*
 * tests/unit/test_peer_auth.c — the handshake's proofs (common/peer_auth.h)
 * and the member keys a replica keeps (replica/storage/member_keys.h).
 *
 * Both ends of a connection are played here: a proof from the right secret
 * is taken; one from another secret, for the other direction (reflected),
 * for other ids or nonces (replayed), or truncated is refused; a replica's
 * signature must match the key it sends, and its id the key it first
 * joined with, also after a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "peer_auth.h"
#include "storage/member_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void secret_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void load(struct peer_auth *a, const char *name, const char *text)
{
    char path[128], err[256];
    secret_file(name, text, path, sizeof(path));
    assert_int_equal(peer_auth_load(a, path, err, sizeof(err)), 0);
}

struct ends {
    uint8_t nd[AUTH_NONCE_BYTES], na[AUTH_NONCE_BYTES];
    struct auth_party dialer, acceptor;
    uint8_t t[32];
};

static void ends_init(struct ends *e, const char *dialer_id, bool dialer_client,
                      const char *acceptor_id)
{
    peer_auth_random(e->nd, sizeof(e->nd));
    peer_auth_random(e->na, sizeof(e->na));
    e->dialer = (struct auth_party){dialer_id, dialer_client, e->nd};
    e->acceptor = (struct auth_party){acceptor_id, false, e->na};
    peer_auth_transcript(&e->dialer, &e->acceptor, e->t);
}

static int check(const struct peer_auth *verifier, const uint8_t t[32], bool from_dialer,
                 const struct auth_party *them, const struct auth_answer *a, char *why)
{
    return peer_auth_check(verifier, t, from_dialer, them, &a->msg, why, 256);
}

static void test_secret_file(void **state)
{
    struct peer_auth a;
    char path[128], err[256];
    secret_file("short", "too short\n", path, sizeof(path));
    assert_int_equal(peer_auth_load(&a, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs 16"));
    assert_int_equal(peer_auth_load(&a, "/nonexistent/secret", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
    /* A trailing newline is not part of it: the same key either way. */
    struct peer_auth b;
    load(&a, "one", "0123456789abcdef0123\n");
    load(&b, "two", "0123456789abcdef0123");
    assert_memory_equal(a.key, b.key, sizeof(a.key));
    /* Made once, kept after: a cluster keeps its secret across restarts. */
    snprintf(path, sizeof(path), "%s/made", dir);
    assert_int_equal(peer_auth_create_secret(path, err, sizeof(err)), 0);
    assert_int_equal(peer_auth_load(&a, path, err, sizeof(err)), 0);
    assert_int_equal(peer_auth_create_secret(path, err, sizeof(err)), 0);
    assert_int_equal(peer_auth_load(&b, path, err, sizeof(err)), 0);
    assert_memory_equal(a.key, b.key, sizeof(a.key));
}

/* A client (the coordinator) and a replica with the same secret. */
static void test_client_handshake(void **state)
{
    struct peer_auth client, replica, stranger;
    load(&client, "s", "the cluster secret, 32 bytes....");
    load(&replica, "s", "the cluster secret, 32 bytes....");
    load(&stranger, "x", "another secret, also long enough");
    uint8_t seed[32] = {7};
    peer_auth_member_key_from_seed(&replica, seed);
    struct ends e;
    ends_init(&e, "coordinator", true, "r1");
    char why[256];

    /* The acceptor answers first; the dialer checks it, then answers. */
    struct auth_answer from_r1, from_client;
    peer_auth_answer(&replica, e.t, false, &from_r1);
    assert_int_equal(check(&client, e.t, false, &e.acceptor, &from_r1, why), 0);
    peer_auth_answer(&client, e.t, true, &from_client);
    assert_int_equal(from_client.msg.member_key.len, 0);
    assert_int_equal(check(&replica, e.t, true, &e.dialer, &from_client, why), 0);

    /* Another secret. */
    struct auth_answer bad;
    peer_auth_answer(&stranger, e.t, true, &bad);
    assert_int_equal(check(&replica, e.t, true, &e.dialer, &bad, why), -1);
    assert_non_null(strstr(why, "wrong proof"));
    /* The replica's own answer reflected back as the dialer's. */
    assert_int_equal(check(&replica, e.t, true, &e.dialer, &from_r1, why), -1);
    /* A proof for another connection (other nonces) replayed. */
    struct ends other;
    ends_init(&other, "coordinator", true, "r1");
    assert_int_equal(check(&replica, other.t, true, &other.dialer, &from_client, why), -1);
    /* Truncated. */
    from_client.msg.proof.len = 31;
    assert_int_equal(check(&replica, e.t, true, &e.dialer, &from_client, why), -1);
}

static void test_replica_signature(void **state)
{
    struct peer_auth r1, r2;
    load(&r1, "s", "the cluster secret, 32 bytes....");
    load(&r2, "s", "the cluster secret, 32 bytes....");
    uint8_t s1[32] = {1}, s2[32] = {2};
    peer_auth_member_key_from_seed(&r1, s1);
    peer_auth_member_key_from_seed(&r2, s2);
    struct ends e;
    ends_init(&e, "r1", false, "r2");
    char why[256];
    struct auth_answer a;
    peer_auth_answer(&r1, e.t, true, &a);
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), 0);
    /* A replica that signs nothing (a client's answer under a replica's
     * Hello) is refused. */
    struct peer_auth plain;
    load(&plain, "s", "the cluster secret, 32 bytes....");
    peer_auth_answer(&plain, e.t, true, &a);
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), -1);
    assert_non_null(strstr(why, "no member key"));
    /* A key that did not make the signature. */
    peer_auth_answer(&r1, e.t, true, &a);
    memcpy(a.key, r2.member_pk, sizeof(a.key));
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), -1);
    assert_non_null(strstr(why, "signature"));
}

/* The key each id first proved is the only one it may use, across
 * restarts; our own id is ours from the start. */
static void test_member_keys(void **state)
{
    char data[96], err[256], why[256];
    snprintf(data, sizeof(data), "%s/r2-data", dir);
    assert_int_equal(mkdir(data, 0755), 0);
    struct peer_auth r2;
    load(&r2, "s", "the cluster secret, 32 bytes....");
    struct member_keys *mk;
    assert_int_equal(member_keys_open(data, "r2", &r2, &mk, err, sizeof(err)), 0);
    assert_true(r2.has_member_key);
    uint8_t own[AUTH_KEY_BYTES];
    memcpy(own, r2.member_pk, sizeof(own));

    struct peer_auth r1, impostor;
    load(&r1, "s", "the cluster secret, 32 bytes....");
    load(&impostor, "s", "the cluster secret, 32 bytes....");
    uint8_t s1[32] = {1}, s3[32] = {3};
    peer_auth_member_key_from_seed(&r1, s1);
    peer_auth_member_key_from_seed(&impostor, s3);
    struct ends e;
    ends_init(&e, "r1", false, "r2");
    struct auth_answer a;
    peer_auth_answer(&r1, e.t, true, &a);
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), 0); /* first use: remembered */
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), 0);
    peer_auth_answer(&impostor, e.t, true, &a); /* the secret, r1's id, another key */
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), -1);
    assert_non_null(strstr(why, "another process claims its id"));
    ends_init(&e, "r2", false, "r2"); /* our own id, from elsewhere */
    peer_auth_answer(&impostor, e.t, true, &a);
    assert_int_equal(check(&r2, e.t, true, &e.dialer, &a, why), -1);
    assert_non_null(strstr(why, "another process claims its id"));
    member_keys_free(mk);

    /* After a restart: the same own key, r1 still bound to its key. */
    struct peer_auth again;
    load(&again, "s", "the cluster secret, 32 bytes....");
    assert_int_equal(member_keys_open(data, "r2", &again, &mk, err, sizeof(err)), 0);
    assert_memory_equal(again.member_pk, own, sizeof(own));
    ends_init(&e, "r1", false, "r2");
    peer_auth_answer(&impostor, e.t, true, &a);
    assert_int_equal(check(&again, e.t, true, &e.dialer, &a, why), -1);
    peer_auth_answer(&r1, e.t, true, &a);
    assert_int_equal(check(&again, e.t, true, &e.dialer, &a, why), 0);
    member_keys_free(mk);

    /* A damaged key file is refused, not replaced. */
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", data, MEMBER_KEY_FILE);
    FILE *f = fopen(path, "w");
    fputs("not hex\n", f);
    fclose(f);
    assert_int_equal(member_keys_open(data, "r2", &again, &mk, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "does not hold a member key"));
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_peer_auth.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_client_handshake),
        cmocka_unit_test(test_replica_signature),
        cmocka_unit_test(test_member_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
