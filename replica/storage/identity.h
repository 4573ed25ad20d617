/*
 * replica/storage/identity.h — a replica's id, bound to its data directory.
 *
 * The id is what the others count votes and log positions by. A replica
 * that lost its data (a task rescheduled onto another machine with a new,
 * empty volume under the same hostname) must never answer to the old id:
 * it would bring back the old member's vote without the log that vote
 * promised. So the id lives in the data directory ("id", written when the
 * directory is first used) and goes away with it.
 */
#ifndef REPLICA_STORAGE_IDENTITY_H
#define REPLICA_STORAGE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#define IDENTITY_FILE "id"

/* The id of the replica that owns dir, creating dir (not its parents) if
 * needed. A stored id wins; a directory without one gets:
 *   - explicit_id, when given (NULL or "" when not);
 *   - host, when dir already holds a log (written before ids were stored,
 *     when the id was the hostname);
 *   - otherwise a new "<host>-<8 hex digits>", host cut so it fits.
 * It is then stored (synced) before it is returned, so it is the same on
 * every later start. Fails (negative errno, message in err) when dir
 * cannot be read or written, its id file is not a valid id, or explicit_id
 * differs from the stored id. *generated says a new id was made. out must
 * not overlap explicit_id or host. */
int identity_bind(const char *dir, const char *explicit_id, const char *host, char *out,
                  size_t outlen, bool *generated, char *err, size_t errlen);

#endif
