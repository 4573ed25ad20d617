/*
 * replica/storage/member_keys.h — this replica's member key, and the key
 * each other member first proved, both kept in the data directory.
 *
 * The cluster secret (common/peer_auth.h) says a process may be a member;
 * the member key says which one. Each replica signs its handshakes with a
 * key made when its data directory is first used ("member-key", the seed,
 * mode 0600), so the key goes with the data and the id, as the id does
 * (identity.h). Every replica remembers ("peer-keys") the key each id
 * proved the first time it connected and refuses that id with any other
 * key: a holder of the secret cannot speak as a member that already
 * joined. Trust on first use: an id no replica here has met yet is taken
 * with the key it brings; ids are never reused (a replica that lost its
 * data joins under a new id).
 */
#ifndef REPLICA_STORAGE_MEMBER_KEYS_H
#define REPLICA_STORAGE_MEMBER_KEYS_H

#include <stddef.h>

#include "peer_auth.h"

#define MEMBER_KEY_FILE "member-key"
#define PEER_KEYS_FILE  "peer-keys"
/* Ids remembered at most; past it the oldest is forgotten (a cluster
 * scaled up and down thousands of times). */
#define PEER_KEYS_MAX 4096

struct member_keys;

/* Load (or make) dir's member key into auth, load the remembered keys, and
 * set auth's admit_member to check against them (our own id is ours). 0,
 * or -1 with the reason. */
int member_keys_open(const char *dir, const char *self_id, struct peer_auth *auth,
                     struct member_keys **out, char *err, size_t errlen);
void member_keys_free(struct member_keys *mk);

#endif
