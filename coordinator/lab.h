/*
 * coordinator/lab.h — the fault lab's faults as the coordinator keeps them
 * (issue 14, docs/fault-lab.md): what POST /api/faults asked for, parsed
 * and checked; the rules each replica must carry out for it; and the JSON
 * that GET /api/faults, /api/cluster and the WebSocket show.
 *
 * Pure functions over plain structs (no connection, no clock of their
 * own), so unit tests and the fuzzers call them as the server does. The
 * replicas carry the faults out themselves (common/faults.h); this side
 * only translates a cluster-level fault into per-replica rules.
 */
#ifndef COORDINATOR_LAB_H
#define COORDINATOR_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_input.h"
#include "bounds.h"

enum lab_kind {
    LAB_PARTITION, /* groups that exchange nothing with each other */
    LAB_ISOLATE,   /* one replica cut off from every other */
    LAB_LINK,      /* one link slowed (delay) or lossy (loss 1 cuts it) */
    LAB_PAUSE,     /* one replica stops reading and its timers for ms */
};

struct lab_fault {
    uint64_t id;
    enum lab_kind kind;
    /* PARTITION: ids[i] is in group group[i]; ISOLATE, PAUSE: ids[0];
     * LINK: ids[0] and ids[1]. */
    unsigned n_ids;
    char ids[LIMIT_MEMBERS][LIMIT_ID_BYTES];
    unsigned group[LIMIT_MEMBERS];
    unsigned n_groups;
    unsigned delay_ms;
    double loss;
    unsigned pause_ms;
    unsigned duration_ms; /* 0: until healed */
    int64_t started;      /* monotonic ms */
    int64_t started_wall; /* wall ms, for display */
    int64_t expires_at;   /* monotonic ms; 0: never */
};

/* The timing the coordinator last asked for: a slow motion factor, or
 * explicit timeouts (slow_motion 0). */
struct lab_timing {
    unsigned slow_motion; /* 1: the replicas' own flags */
    unsigned heartbeat_ms, election_min_ms, election_max_ms;
};

/* POST /api/faults: 0 and *out filled (id and times left to the caller),
 * or -1 and *err (400). Replica ids are checked for shape only. */
int lab_parse_fault(const char *body, size_t len, struct lab_fault *out, struct api_error *err);
/* PUT /api/timing: {"slow_motion":N} or the three timeouts. */
int lab_parse_timing(const char *body, size_t len, struct lab_timing *out, struct api_error *err);
/* Set started/expires_at from now (a pause ends with its ms). */
void lab_start(struct lab_fault *f, uint64_t id, int64_t now, int64_t now_wall);

/* One rule for `replica` (see common/faults.h). */
struct lab_rule {
    uint64_t fault_id;
    const char *peer;
    double loss;
    unsigned delay_ms;
    unsigned expires_in_ms; /* 0: never */
};
/* The rules fault f gives `replica`, among `all` (every replica the
 * coordinator knows, for ISOLATE): at most LIMIT_MEMBERS written to out.
 * Returns how many. */
unsigned lab_rules(const struct lab_fault *f, const char *replica, const char *const *all,
                   unsigned n_all, int64_t now, struct lab_rule *out);
/* How long fault f pauses `replica` from now (0: it does not). */
unsigned lab_pause_left(const struct lab_fault *f, const char *replica, int64_t now);
/* Whether fault f names `id`. */
bool lab_names(const struct lab_fault *f, const char *id);

/* JSON of a fault as GET /api/faults lists it (a cJSON object). */
struct cJSON *lab_fault_json(const struct lab_fault *f, int64_t now);
const char *lab_kind_name(enum lab_kind k);
/* A one-line description for events and logs ("partition r1 | r2 r3"). */
void lab_describe(const struct lab_fault *f, char *buf, size_t len);

#endif
