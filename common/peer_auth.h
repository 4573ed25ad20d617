/*
 * common/peer_auth.h — who may speak on a connection: proof of the cluster
 * secret, and of a member's own key, at the start of every connection.
 *
 * Every member and client of a cluster holds the same secret (a file).
 * After the two Hellos, each end sends an Auth:
 *
 *   proof     = HMAC-SHA256(K, role || T)
 *   signature = Ed25519(member key, "replicacao member" || role || T)
 *
 * where K is derived from the secret, role says which end (dialer or
 * acceptor) answers, and T is the SHA-256 of both ends' kinds, ids and
 * fresh nonces. So a proof is good for this connection and this direction
 * only: not replayed on another connection, not reflected back to its
 * sender. The acceptor answers first; the dialer checks that answer before
 * it gives its own, so a stranger without the secret learns nothing it
 * could use.
 *
 * The secret makes a process a member; it does not tell members apart.
 * Replicas also sign with a key of their own, kept in their data directory
 * next to their id, and each replica remembers the key every id first
 * proved (replica/storage/member_keys.h): a holder of the secret that
 * claims an id another key joined with is refused. Clients (the
 * coordinator, replctl) prove the secret only, and may only act as clients.
 *
 * libsodium does the cryptography; nothing here is hand-written crypto.
 */
#ifndef COMMON_PEER_AUTH_H
#define COMMON_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "wire.h"

/* A secret file must hold at least this many bytes (not counting a
 * trailing newline): 16 bytes of randomness is 128 bits. */
#define PEER_SECRET_MIN_BYTES 16
#define PEER_SECRET_MAX_BYTES 4096

struct peer_auth {
    uint8_t key[32]; /* K, derived from the secret file's bytes */
    /* A replica's own member key (from its data directory); clients have
     * none. */
    bool has_member_key;
    uint8_t member_pk[AUTH_KEY_BYTES];
    uint8_t member_sk[64];
    /* Asked once a replica at the other end proved the secret and the key
     * it signed with: may `id` speak with `key`? 0 yes, -1 no with a reason.
     * NULL: any key (a client keeps no memory of members). */
    int (*admit_member)(void *arg, const char *id, const uint8_t key[AUTH_KEY_BYTES], char *why,
                        size_t len);
    void *admit_arg;
};

/* Load the secret from path into a (zeroed first). 0, or -1 with a reason
 * (missing, unreadable, too short or too long). */
int peer_auth_load(struct peer_auth *a, const char *path, char *err, size_t errlen);
/* Write a new random secret (32 bytes, hex) to path, mode 0600, unless the
 * file exists. 0, or -1 with a reason. */
int peer_auth_create_secret(const char *path, char *err, size_t errlen);
/* A new random Ed25519 key pair from a seed (the member key's file holds
 * the seed). */
void peer_auth_member_key_from_seed(struct peer_auth *a, const uint8_t seed[32]);
void peer_auth_random(uint8_t *out, size_t len);

/* One end of a connection, as the transcript sees it. */
struct auth_party {
    const char *id;
    bool client;
    const uint8_t *nonce; /* AUTH_NONCE_BYTES */
};

/* T: what both ends' proofs are over. */
void peer_auth_transcript(const struct auth_party *dialer, const struct auth_party *acceptor,
                          uint8_t out[32]);

/* This end's Auth (as the dialer or the acceptor): out points into the
 * three buffers, which must live until it is sent. */
struct auth_answer {
    Replicacao__Auth msg;
    uint8_t proof[AUTH_PROOF_BYTES];
    uint8_t signature[AUTH_SIGNATURE_BYTES];
    uint8_t key[AUTH_KEY_BYTES];
};
void peer_auth_answer(const struct peer_auth *a, const uint8_t transcript[32], bool as_dialer,
                      struct auth_answer *out);

/* Check the other end's Auth: its proof (constant-time), and from a
 * replica its signature and whether its key may use its id. 0, or -1 with
 * the reason. */
int peer_auth_check(const struct peer_auth *a, const uint8_t transcript[32], bool from_dialer,
                    const struct auth_party *them, const Replicacao__Auth *auth, char *why,
                    size_t len);

#endif
