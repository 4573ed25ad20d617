/*
 * common/peer_auth.c — see peer_auth.h.
 */
#include "peer_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_CONTEXT   "replicacao cluster secret v1"
#define TRANSCRIPT    "replicacao/auth/1"
#define SIGN_CONTEXT  "replicacao member"
#define ROLE_DIALER   'D'
#define ROLE_ACCEPTOR 'A'

static void ensure_init(void)
{
    /* Idempotent and thread-safe; fails only without a random source. */
    if (sodium_init() < 0) {
        fprintf(stderr, "libsodium cannot initialise (no random source?)\n");
        abort();
    }
}

void peer_auth_random(uint8_t *out, size_t len)
{
    ensure_init();
    randombytes_buf(out, len);
}

int peer_auth_load(struct peer_auth *a, const char *path, char *err, size_t errlen)
{
    ensure_init();
    memset(a, 0, sizeof(*a));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the cluster secret %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t buf[PEER_SECRET_MAX_BYTES + 1];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            snprintf(err, errlen, "cannot read the cluster secret %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0 || (n += (size_t)r) == sizeof(buf)) {
            break;
        }
    }
    close(fd);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        n--; /* an editor's or echo's trailing newline is not part of it */
    }
    if (n < PEER_SECRET_MIN_BYTES || n > PEER_SECRET_MAX_BYTES) {
        snprintf(err, errlen,
                 "the cluster secret %s holds %zu bytes; it needs %d to %d (e.g. "
                 "`head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE`)",
                 path, n, PEER_SECRET_MIN_BYTES, PEER_SECRET_MAX_BYTES);
        sodium_memzero(buf, sizeof(buf));
        return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(a->key));
    crypto_generichash_update(&st, (const uint8_t *)KEY_CONTEXT, sizeof(KEY_CONTEXT));
    crypto_generichash_update(&st, buf, n);
    crypto_generichash_final(&st, a->key, sizeof(a->key));
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

int peer_auth_create_secret(const char *path, char *err, size_t errlen)
{
    ensure_init();
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    char hex[2 * sizeof(raw) + 2];
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    size_t len = strlen(hex);
    hex[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return 0; /* a cluster keeps its secret across restarts */
        }
        snprintf(err, errlen, "cannot create the cluster secret %s: %s", path, strerror(errno));
        return -1;
    }
    bool ok = write(fd, hex, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    sodium_memzero(hex, sizeof(hex));
    if (!ok) {
        unlink(path);
        snprintf(err, errlen, "cannot write the cluster secret %s: %s", path, strerror(saved));
        return -1;
    }
    return 0;
}

void peer_auth_member_key_from_seed(struct peer_auth *a, const uint8_t seed[32])
{
    ensure_init();
    crypto_sign_seed_keypair(a->member_pk, a->member_sk, seed);
    a->has_member_key = true;
}

static void hash_party(crypto_hash_sha256_state *st, const struct auth_party *p)
{
    size_t id_len = strlen(p->id);
    uint8_t head[3] = {p->client ? 1 : 0, (uint8_t)(id_len >> 8), (uint8_t)id_len};
    crypto_hash_sha256_update(st, head, sizeof(head));
    crypto_hash_sha256_update(st, (const uint8_t *)p->id, id_len);
    crypto_hash_sha256_update(st, p->nonce, AUTH_NONCE_BYTES);
}

void peer_auth_transcript(const struct auth_party *dialer, const struct auth_party *acceptor,
                          uint8_t out[32])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)TRANSCRIPT, sizeof(TRANSCRIPT));
    hash_party(&st, dialer);
    hash_party(&st, acceptor);
    crypto_hash_sha256_final(&st, out);
}

static void proof_of(const struct peer_auth *a, const uint8_t t[32], char role,
                     uint8_t out[AUTH_PROOF_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, a->key, sizeof(a->key));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)&role, 1);
    crypto_auth_hmacsha256_update(&st, t, 32);
    crypto_auth_hmacsha256_final(&st, out);
}

/* What a member key signs: the context, the role and T. */
static void signed_text(const uint8_t t[32], char role, uint8_t out[sizeof(SIGN_CONTEXT) + 33])
{
    memcpy(out, SIGN_CONTEXT, sizeof(SIGN_CONTEXT));
    out[sizeof(SIGN_CONTEXT)] = (uint8_t)role;
    memcpy(out + sizeof(SIGN_CONTEXT) + 1, t, 32);
}

void peer_auth_answer(const struct peer_auth *a, const uint8_t transcript[32], bool as_dialer,
                      struct auth_answer *out)
{
    char role = as_dialer ? ROLE_DIALER : ROLE_ACCEPTOR;
    Replicacao__Auth init = REPLICACAO__AUTH__INIT;
    out->msg = init;
    proof_of(a, transcript, role, out->proof);
    out->msg.proof.data = out->proof;
    out->msg.proof.len = sizeof(out->proof);
    if (a->has_member_key) {
        uint8_t text[sizeof(SIGN_CONTEXT) + 33];
        signed_text(transcript, role, text);
        crypto_sign_detached(out->signature, NULL, text, sizeof(text), a->member_sk);
        memcpy(out->key, a->member_pk, sizeof(out->key));
        out->msg.member_key.data = out->key;
        out->msg.member_key.len = sizeof(out->key);
        out->msg.signature.data = out->signature;
        out->msg.signature.len = sizeof(out->signature);
    }
}

int peer_auth_check(const struct peer_auth *a, const uint8_t transcript[32], bool from_dialer,
                    const struct auth_party *them, const Replicacao__Auth *auth, char *why,
                    size_t len)
{
    char role = from_dialer ? ROLE_DIALER : ROLE_ACCEPTOR;
    uint8_t expected[AUTH_PROOF_BYTES];
    proof_of(a, transcript, role, expected);
    bool proved = auth->proof.len == sizeof(expected) &&
                  sodium_memcmp(expected, auth->proof.data, sizeof(expected)) == 0;
    sodium_memzero(expected, sizeof(expected));
    if (!proved) {
        snprintf(why, len, "wrong proof of the cluster secret (another secret?)");
        return -1;
    }
    if (them->client) {
        return 0; /* a client signs nothing and may act only as a client */
    }
    if (auth->member_key.len != AUTH_KEY_BYTES || auth->signature.len != AUTH_SIGNATURE_BYTES) {
        snprintf(why, len, "replica %s sent no member key", them->id);
        return -1;
    }
    uint8_t text[sizeof(SIGN_CONTEXT) + 33];
    signed_text(transcript, role, text);
    if (crypto_sign_verify_detached(auth->signature.data, text, sizeof(text),
                                    auth->member_key.data) != 0) {
        snprintf(why, len, "replica %s: its signature does not match its member key", them->id);
        return -1;
    }
    if (a->admit_member != NULL) {
        return a->admit_member(a->admit_arg, them->id, auth->member_key.data, why, len);
    }
    return 0;
}
