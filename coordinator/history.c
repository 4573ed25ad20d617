/*
 * coordinator/history.c — see history.h.
 */
#include "history.h"
#include "validate.h"

#include "bounds.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct history {
    cluster_publish_fn next;
    void *next_arg;
    pthread_mutex_t mu; /* everything below: recorded on the loop thread, read by HTTP's */
    size_t capacity;
    char **ring; /* capacity slots; the oldest at `first` */
    size_t first, n;
    uint64_t next_seq;
    uint64_t dropped;
    char *last_failover; /* the newest event with a failover_ms, as recorded */
    char *shape;         /* roles, statuses and epochs of the last snapshot kept */
    int64_t snapshot_at; /* when it was kept (monotonic) */
};

struct history *history_new(size_t capacity, cluster_publish_fn next, void *next_arg)
{
    struct history *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->ring = capacity ? calloc(capacity, sizeof(char *)) : NULL;
    if (capacity && h->ring == NULL) {
        free(h);
        return NULL;
    }
    h->capacity = capacity;
    h->next = next;
    h->next_arg = next_arg;
    h->next_seq = 1;
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void history_set_next(struct history *h, void *next_arg)
{
    h->next_arg = next_arg;
}

void history_free(struct history *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->n; i++) {
        free(h->ring[(h->first + i) % h->capacity]);
    }
    free(h->ring);
    free(h->last_failover);
    free(h->shape);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Takes s. Called with mu held. */
static void ring_push(struct history *h, char *s)
{
    if (h->n == h->capacity) {
        free(h->ring[h->first]);
        h->first = (h->first + 1) % h->capacity;
        h->n--;
        h->dropped++;
    }
    h->ring[(h->first + h->n) % h->capacity] = s;
    h->n++;
}

/* The message with "seq":n as its first member: `{"seq":n,` + json after
 * its "{". NULL out of memory. */
static char *with_seq(const char *json, size_t len, uint64_t seq, size_t *out_len)
{
    char head[40];
    int hn = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)seq);
    char *s = malloc((size_t)hn + len);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, head, (size_t)hn);
    memcpy(s + hn, json + 1, len - 1);
    s[(size_t)hn + len - 1] = '\0';
    *out_len = (size_t)hn + len - 1;
    return s;
}

/* What is kept of an event: the message itself, unless it is large; then
 * its request's data is cut (what makes events large) and, if it is still
 * too large, only its type, time and replica are. */
static char *recorded_event(const char *msg, size_t len)
{
    if (len <= 1024) {
        return strdup(msg);
    }
    cJSON *root = cJSON_ParseWithLength(msg, len);
    cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "event");
    cJSON *req = cJSON_GetObjectItemCaseSensitive(ev, "request");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(req, "data");
    if (cJSON_IsString(data) && strlen(data->valuestring) > HISTORY_DATA_BYTES) {
        /* At a character's first byte: a WebSocket text frame must be valid
         * UTF-8, or the browser drops the connection. */
        size_t n = strlen(data->valuestring);
        data->valuestring[utf8_cut(data->valuestring, n, HISTORY_DATA_BYTES)] = '\0';
        cJSON_AddBoolToObject(req, "data_cut", true);
    }
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    if (s != NULL && strlen(s) > HISTORY_ENTRY_MAX_BYTES) {
        free(s);
        s = NULL;
        cJSON *small = cJSON_CreateObject();
        const char *keep[] = {"seq", "type"};
        for (size_t i = 0; i < 2; i++) {
            cJSON *it = cJSON_GetObjectItemCaseSensitive(root, keep[i]);
            if (it) {
                cJSON_AddItemToObject(small, keep[i], cJSON_Duplicate(it, true));
            }
        }
        cJSON *se = cJSON_AddObjectToObject(small, "event");
        const char *ekeep[] = {"type", "replica", "replica_name", "time_ms", "epoch", "index"};
        for (size_t i = 0; i < sizeof(ekeep) / sizeof(ekeep[0]); i++) {
            cJSON *it = cJSON_GetObjectItemCaseSensitive(ev, ekeep[i]);
            if (it) {
                cJSON_AddItemToObject(se, ekeep[i], cJSON_Duplicate(it, true));
            }
        }
        cJSON_AddBoolToObject(se, "cut", true);
        s = cJSON_PrintUnformatted(small);
        cJSON_Delete(small);
    }
    cJSON_Delete(root);
    return s;
}

static void copy_field(cJSON *to, const cJSON *from, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(from, name);
    if (it != NULL) {
        cJSON_AddItemToObject(to, name, cJSON_Duplicate(it, true));
    }
}

/* A compact snapshot of a {"type":"cluster","cluster":{...}} message, or
 * NULL when none is due: what each replica was (role, status, epoch) is
 * what the timeline rebuilds the ring from; the rest stays out. */
static char *snapshot_of(struct history *h, const char *json, size_t len, int64_t now)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    const cJSON *reps = cJSON_GetObjectItemCaseSensitive(c, "replicas");
    if (!cJSON_IsArray(reps)) {
        cJSON_Delete(root);
        return NULL;
    }
    /* The shape: primary, then id/role/status/epoch/answering of each. */
    size_t cap = 256, used = 0;
    char *shape = malloc(cap);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "primary");
    used += (size_t)snprintf(shape, cap, "%s;", cJSON_IsString(p) ? p->valuestring : "");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "type", "snapshot");
    cJSON_AddNumberToObject(out, "time_ms", (double)clock_wall_ms());
    const char *top[] = {"epoch", "primary", "commit_index", "quorum", "voters", "learners"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        copy_field(out, c, top[i]);
    }
    cJSON *arr = cJSON_AddArrayToObject(out, "replicas");
    const cJSON *r;
    cJSON_ArrayForEach(r, reps)
    {
        cJSON *o = cJSON_CreateObject();
        const char *keep[] = {"id",           "name",  "role",      "status",       "epoch",
                              "commit_index", "voter", "answering", "status_age_ms"};
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            copy_field(o, r, keep[i]);
        }
        cJSON_AddItemToArray(arr, o);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(r, "role");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
        const cJSON *ep = cJSON_GetObjectItemCaseSensitive(r, "epoch");
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(r, "answering");
        char one[LIMIT_ID_BYTES + 64];
        int k = snprintf(one, sizeof(one), "%s/%s/%s/%.0f/%d;",
                         cJSON_IsString(id) ? id->valuestring : "",
                         cJSON_IsString(role) ? role->valuestring : "",
                         cJSON_IsString(st) ? st->valuestring : "",
                         cJSON_IsNumber(ep) ? ep->valuedouble : 0, !cJSON_IsFalse(ans));
        if (k > 0 && shape != NULL) {
            size_t add = (size_t)k < sizeof(one) ? (size_t)k : sizeof(one) - 1;
            if (used + add + 1 > cap) {
                cap = (used + add + 1) * 2;
                char *grown = realloc(shape, cap);
                if (grown == NULL) {
                    free(shape);
                    shape = NULL;
                    continue;
                }
                shape = grown;
            }
            memcpy(shape + used, one, add + 1);
            used += add;
        }
    }
    cJSON_Delete(root);
    bool changed = shape == NULL || h->shape == NULL || strcmp(shape, h->shape) != 0;
    int64_t since = now - h->snapshot_at;
    char *s = NULL;
    if ((changed && since >= HISTORY_SNAPSHOT_MIN_MS) || since >= HISTORY_SNAPSHOT_EVERY_MS) {
        s = cJSON_PrintUnformatted(out);
        free(h->shape);
        h->shape = shape;
        shape = NULL;
        h->snapshot_at = now;
    }
    free(shape);
    cJSON_Delete(out);
    return s;
}

static bool starts_with(const char *json, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(json, prefix, n) == 0;
}

void history_publish(void *arg, const char *json, size_t len)
{
    struct history *h = arg;
    /* The protocol message stream is for live animation: ten messages a
     * second per replica would push every event out of the ring. */
    if (h->capacity == 0 || len < 2 || json[0] != '{' ||
        starts_with(json, len, "{\"type\":\"messages\"")) {
        h->next(h->next_arg, json, len);
        return;
    }
    if (starts_with(json, len, "{\"type\":\"cluster\"")) {
        /* Parsed on the loop thread at most every pacing window (100 ms),
         * the same rate the WebSocket gets it. */
        int64_t now = clock_mono_ms();
        char *snap =
            now - h->snapshot_at >= HISTORY_SNAPSHOT_MIN_MS ? snapshot_of(h, json, len, now) : NULL;
        if (snap != NULL) {
            pthread_mutex_lock(&h->mu);
            size_t n;
            char *numbered = with_seq(snap, strlen(snap), h->next_seq, &n);
            if (numbered != NULL) {
                h->next_seq++;
                ring_push(h, numbered);
            }
            pthread_mutex_unlock(&h->mu);
            free(snap);
        }
        h->next(h->next_arg, json, len);
        return;
    }
    /* Anything else (events of every type) is kept whole and numbered. */
    pthread_mutex_lock(&h->mu);
    uint64_t seq = h->next_seq++;
    size_t n = 0;
    char *numbered = with_seq(json, len, seq, &n);
    char *kept = numbered ? recorded_event(numbered, n) : NULL;
    if (kept != NULL) {
        if (strstr(kept, "\"failover_ms\":") != NULL) {
            free(h->last_failover);
            h->last_failover = strdup(kept);
        }
        ring_push(h, kept);
    }
    pthread_mutex_unlock(&h->mu);
    if (numbered != NULL) {
        h->next(h->next_arg, numbered, n);
    } else {
        h->next(h->next_arg, json, len);
    }
    free(numbered);
}

char *history_json(struct history *h)
{
    pthread_mutex_lock(&h->mu);
    size_t total = 256 + (h->last_failover ? strlen(h->last_failover) : 4);
    for (size_t i = 0; i < h->n; i++) {
        total += strlen(h->ring[(h->first + i) % h->capacity]) + 1;
    }
    char *s = malloc(total);
    if (s == NULL) {
        pthread_mutex_unlock(&h->mu);
        return NULL;
    }
    uint64_t first_seq = h->next_seq - h->n;
    size_t at = (size_t)snprintf(
        s, total,
        "{\"type\":\"history\",\"capacity\":%zu,\"recorded\":%zu,\"dropped\":%llu,"
        "\"first_seq\":%llu,\"last_seq\":%llu,\"last_failover\":%s,\"entries\":[",
        h->capacity, h->n, (unsigned long long)h->dropped, (unsigned long long)first_seq,
        (unsigned long long)(h->next_seq - 1), h->last_failover ? h->last_failover : "null");
    for (size_t i = 0; i < h->n; i++) {
        const char *e = h->ring[(h->first + i) % h->capacity];
        size_t el = strlen(e);
        if (i > 0) {
            s[at++] = ',';
        }
        memcpy(s + at, e, el);
        at += el;
    }
    pthread_mutex_unlock(&h->mu);
    memcpy(s + at, "]}", 3);
    return s;
}
