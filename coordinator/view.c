/*
 * coordinator/view.c — see view.h.
 */
#include "view.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct view *view_alloc(size_t n_replicas, size_t n_peers, struct view_replica **replicas,
                        struct view_peer **peers)
{
    /* One block: the header, then the replicas, then every peer. */
    size_t size = sizeof(struct view) + n_replicas * sizeof(struct view_replica) +
                  n_peers * sizeof(struct view_peer);
    struct view *v = calloc(1, size);
    if (v == NULL) {
        return NULL;
    }
    struct view_replica *r = (struct view_replica *)(v + 1);
    *replicas = r;
    *peers = (struct view_peer *)(r + n_replicas);
    v->replicas = r;
    v->n_replicas = n_replicas;
    atomic_init(&v->refs, 1);
    atomic_init(&v->json, NULL);
    atomic_init(&v->message, NULL);
    return v;
}

void view_ref(struct view *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void view_release(struct view *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    free(atomic_load(&v->json));
    free(atomic_load(&v->message));
    free(v->faults);
    free(v);
}

const char *reach_name(enum reach r)
{
    return r == REACH_UP ? "up" : r == REACH_FAILED ? "failed" : "down";
}

bool view_ready(const struct view *v, char *reason, size_t len)
{
    if (v != NULL && v->primary != NULL && v->primary->status == REACH_UP) {
        snprintf(reason, len, "%s is primary in epoch %llu", v->primary->id,
                 (unsigned long long)v->primary->epoch);
        return true;
    }
    size_t up = 0;
    for (size_t i = 0; v != NULL && i < v->n_replicas; i++) {
        up += v->replicas[i].status == REACH_UP;
    }
    if (v == NULL || up == 0) {
        snprintf(reason, len, "no replica is reachable");
    } else if (v->n_voters == 0) {
        snprintf(reason, len, "no primary: the cluster is still forming (%zu replica%s reachable)",
                 up, up == 1 ? "" : "s");
    } else if (v->reachable_voters < v->quorum) {
        snprintf(reason, len, "no primary: %u of %zu voters reachable - a majority needs %u",
                 v->reachable_voters, v->n_voters, v->quorum);
    } else {
        snprintf(reason, len,
                 "no primary elected yet: %u of %zu voters reachable (a majority needs %u)",
                 v->reachable_voters, v->n_voters, v->quorum);
    }
    return false;
}

const struct view_replica *view_find(const struct view *v, const char *id)
{
    for (size_t i = 0; i < v->n_replicas; i++) {
        if (strcmp(v->replicas[i].id, id) == 0) {
            return &v->replicas[i];
        }
    }
    return NULL;
}

cJSON *view_replica_json(const struct view_replica *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "name", r->name[0] ? r->name : r->id);
    cJSON_AddStringToObject(o, "address", r->address);
    cJSON_AddStringToObject(o, "role", role_name(r->role));
    cJSON_AddStringToObject(o, "status", reach_name(r->status));
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON_AddNumberToObject(o, "last_index", (double)r->last_index);
    cJSON_AddNumberToObject(o, "commit_index", (double)r->commit_index);
    cJSON_AddNumberToObject(o, "lag", (double)r->lag);
    cJSON_AddNumberToObject(o, "heartbeat_age_ms", (double)r->heartbeat_age_ms);
    cJSON_AddNumberToObject(o, "processed", (double)r->processed);
    cJSON_AddNumberToObject(o, "synced", (double)r->synced);
    cJSON_AddBoolToObject(o, "voter", r->voter);
    cJSON_AddBoolToObject(o, "member", r->member);
    cJSON *st = cJSON_AddObjectToObject(o, "storage");
    cJSON_AddStringToObject(st, "disk", r->storage.disk);
    cJSON_AddNumberToObject(st, "log_bytes", (double)r->storage.log_bytes);
    cJSON_AddNumberToObject(st, "log_segments", (double)r->storage.log_segments);
    cJSON_AddNumberToObject(st, "first_index", (double)r->storage.first_index);
    cJSON_AddNumberToObject(st, "cache_bytes", (double)r->storage.cache_bytes);
    cJSON_AddNumberToObject(st, "resident_bytes", (double)r->storage.resident_bytes);
    cJSON_AddNumberToObject(st, "sessions", (double)r->storage.sessions);
    cJSON_AddNumberToObject(st, "session_horizon", (double)r->storage.session_horizon);
    cJSON_AddNumberToObject(st, "storage_errors", (double)r->storage.storage_errors);
    if (r->start_failed) {
        cJSON_AddBoolToObject(o, "start_failed", true);
    }
    cJSON_AddStringToObject(o, "believes_primary", r->believes_primary);
    cJSON_AddNumberToObject(o, "paused_ms", r->lab.paused_ms);
    cJSON_AddNumberToObject(o, "fault_rules", r->lab.n_fault_rules);
    cJSON *t = cJSON_AddObjectToObject(o, "timing");
    cJSON_AddNumberToObject(t, "heartbeat_ms", r->lab.heartbeat_ms);
    cJSON_AddNumberToObject(t, "election_min_ms", r->lab.election_min_ms);
    cJSON_AddNumberToObject(t, "election_max_ms", r->lab.election_max_ms);
    cJSON_AddNumberToObject(o, "uptime_ms", (double)r->uptime_ms);
    cJSON_AddNumberToObject(o, "status_age_ms", (double)r->status_age_ms);
    cJSON_AddBoolToObject(o, "answering", r->answering);
    cJSON *peers = cJSON_AddArrayToObject(o, "peers");
    for (size_t i = 0; i < r->n_peers; i++) {
        const struct view_peer *p = &r->peers[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "id", p->id);
        cJSON_AddStringToObject(po, "address", p->address);
        cJSON_AddBoolToObject(po, "voter", p->voter);
        cJSON_AddBoolToObject(po, "connected", p->connected);
        cJSON_AddBoolToObject(po, "member", p->member);
        cJSON_AddBoolToObject(po, "listed", p->listed);
        cJSON_AddNumberToObject(po, "match_index", (double)p->match_index);
        cJSON_AddNumberToObject(po, "last_seen_ms", (double)p->last_seen_ms);
        cJSON_AddItemToArray(peers, po);
    }
    return o;
}

/* The faults in force and the timing, as /api/faults, /api/cluster and
 * the WebSocket's snapshots show them. */
static void add_lab(cJSON *o, const struct view *v)
{
    int64_t now = clock_mono_ms();
    cJSON *faults = cJSON_AddArrayToObject(o, "faults");
    for (unsigned i = 0; i < v->n_faults; i++) {
        cJSON_AddItemToArray(faults, lab_fault_json(&v->faults[i], now));
    }
    cJSON *t = cJSON_AddObjectToObject(o, "timing");
    cJSON_AddNumberToObject(t, "heartbeat_ms", v->heartbeat_ms);
    cJSON_AddNumberToObject(t, "election_min_ms", v->election_min_ms);
    cJSON_AddNumberToObject(t, "election_max_ms", v->election_max_ms);
    if (v->timing_asked.slow_motion) {
        cJSON_AddNumberToObject(t, "slow_motion", v->timing_asked.slow_motion);
    } else {
        cJSON_AddNullToObject(t, "slow_motion"); /* explicit timeouts */
    }
}

char *view_faults_json(const struct view *v)
{
    cJSON *o = cJSON_CreateObject();
    add_lab(o, v);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *render(const struct view *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", (double)v->epoch);
    if (v->primary) {
        cJSON_AddStringToObject(o, "primary", v->primary->id);
    } else {
        cJSON_AddNullToObject(o, "primary");
    }
    cJSON_AddNumberToObject(o, "commit_index", (double)v->commit_index);
    cJSON_AddStringToObject(o, "cluster_id", v->cluster_id);
    cJSON_AddNumberToObject(o, "config_index", (double)v->config_index);
    cJSON *voters = cJSON_AddArrayToObject(o, "voters");
    for (size_t i = 0; i < v->n_voters; i++) {
        cJSON_AddItemToArray(voters, cJSON_CreateString(v->voters[i]));
    }
    cJSON *learners = cJSON_AddArrayToObject(o, "learners");
    for (size_t i = 0; i < v->n_learners; i++) {
        cJSON_AddItemToArray(learners, cJSON_CreateString(v->learners[i]));
    }
    cJSON_AddNumberToObject(o, "quorum", v->quorum);
    cJSON_AddNumberToObject(o, "reachable_voters", v->reachable_voters);
    cJSON_AddBoolToObject(o, "spawn", v->spawn);
    add_lab(o, v);
    cJSON *arr = cJSON_AddArrayToObject(o, "replicas");
    for (size_t i = 0; i < v->n_replicas; i++) {
        cJSON_AddItemToArray(arr, view_replica_json(&v->replicas[i]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Render once: whoever comes first renders, a racing second one finds the
 * slot taken and keeps the first text (both are the same). */
static const char *cached(_Atomic(char *) *slot, char *(*make)(struct view *), struct view *v)
{
    char *s = atomic_load_explicit(slot, memory_order_acquire);
    if (s != NULL) {
        return s;
    }
    char *mine = make(v);
    if (mine == NULL) {
        return NULL;
    }
    char *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &expected, mine, memory_order_acq_rel,
                                                memory_order_acquire)) {
        return mine;
    }
    free(mine);
    return expected;
}

static char *make_json(struct view *v)
{
    return render(v);
}

static char *make_message(struct view *v)
{
    const char *json = view_json(v);
    if (json == NULL) {
        return NULL;
    }
    size_t n = strlen(json) + 40;
    char *msg = malloc(n);
    if (msg) {
        snprintf(msg, n, "{\"type\":\"cluster\",\"cluster\":%s}", json);
    }
    return msg;
}

const char *view_json(struct view *v)
{
    return cached(&v->json, make_json, v);
}

const char *view_message(struct view *v)
{
    return cached(&v->message, make_message, v);
}
