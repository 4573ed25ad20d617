/*
 * coordinator/lab.c — see lab.h.
 *
 * Sections: parsing (POST /api/faults, PUT /api/timing), per-replica
 * rules, JSON.
 */
#include "lab.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [LAB_PARTITION] = "partition",
    [LAB_ISOLATE] = "isolate",
    [LAB_LINK] = "link",
    [LAB_PAUSE] = "pause",
};

const char *lab_kind_name(enum lab_kind k)
{
    return (unsigned)k <= LAB_PAUSE ? kind_names[k] : "unknown";
}

/* ========================================================================
 * Parsing
 * ====================================================================== */

static int bad(struct api_error *err, const char *fmt, ...)
{
    err->status = 400;
    err->code = "bad_request";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* An integer field in [min, max]; absent: *out untouched, 0. */
static int get_uint(const cJSON *o, const char *key, unsigned min, unsigned max, unsigned *out,
                    struct api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL) {
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d) || d < min || d > max) {
        return bad(err, "\"%s\" must be an integer from %u to %u", key, min, max);
    }
    *out = (unsigned)d;
    return 0;
}

static int get_id(const cJSON *v, const char *what, char out[LIMIT_ID_BYTES], struct api_error *err)
{
    if (!cJSON_IsString(v) || !validate_id(v->valuestring)) {
        return bad(err, "%s must be a replica id (1 to %d of [A-Za-z0-9._:-])", what,
                   LIMIT_ID_BYTES - 1);
    }
    snprintf(out, LIMIT_ID_BYTES, "%s", v->valuestring);
    return 0;
}

/* Every key of o is one of `allowed` (NULL-terminated): a misspelt field
 * is refused rather than silently ignored. */
static int only_keys(const cJSON *o, const char *const *allowed, struct api_error *err)
{
    for (const cJSON *k = o->child; k; k = k->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) {
            ok = strcmp(k->string, *a) == 0;
        }
        if (!ok) {
            return bad(err, "unknown field \"%.60s\" for this kind of fault", k->string);
        }
    }
    return 0;
}

static bool named_twice(const struct lab_fault *f, const char *id)
{
    for (unsigned i = 0; i < f->n_ids; i++) {
        if (strcmp(f->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

static int parse_groups(const cJSON *groups, struct lab_fault *f, struct api_error *err)
{
    int n = cJSON_IsArray(groups) ? cJSON_GetArraySize(groups) : -1;
    if (n < 2 || n > LIMIT_MEMBERS) {
        return bad(err, "\"groups\" must be an array of 2 to %d arrays of replica ids",
                   LIMIT_MEMBERS);
    }
    f->n_groups = (unsigned)n;
    unsigned g = 0;
    for (const cJSON *grp = groups->child; grp; grp = grp->next, g++) {
        if (!cJSON_IsArray(grp) || cJSON_GetArraySize(grp) < 1) {
            return bad(err, "each group must be a non-empty array of replica ids");
        }
        for (const cJSON *id = grp->child; id; id = id->next) {
            char buf[LIMIT_ID_BYTES];
            if (get_id(id, "each group member", buf, err) < 0) {
                return -1;
            }
            if (named_twice(f, buf)) {
                return bad(err, "replica %s is named twice", buf);
            }
            if (f->n_ids >= LIMIT_MEMBERS) {
                return bad(err, "a partition names at most %d replicas", LIMIT_MEMBERS);
            }
            snprintf(f->ids[f->n_ids], LIMIT_ID_BYTES, "%s", buf);
            f->group[f->n_ids++] = g;
        }
    }
    return 0;
}

static int parse_link(const cJSON *o, struct lab_fault *f, struct api_error *err)
{
    const cJSON *between = cJSON_GetObjectItemCaseSensitive(o, "between");
    if (!cJSON_IsArray(between) || cJSON_GetArraySize(between) != 2) {
        return bad(err, "\"between\" must be an array of two replica ids");
    }
    if (get_id(between->child, "\"between\"", f->ids[0], err) < 0 ||
        get_id(between->child->next, "\"between\"", f->ids[1], err) < 0) {
        return -1;
    }
    if (strcmp(f->ids[0], f->ids[1]) == 0) {
        return bad(err, "a link is between two different replicas");
    }
    f->n_ids = 2;
    if (get_uint(o, "delay_ms", 0, LIMIT_FAULT_DELAY_MS, &f->delay_ms, err) < 0) {
        return -1;
    }
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    if (loss != NULL) {
        double d = cJSON_IsNumber(loss) ? loss->valuedouble : NAN;
        if (!(d >= 0.0 && d <= 1.0)) {
            return bad(err, "\"loss\" must be a number from 0 to 1 (1 cuts the link)");
        }
        f->loss = d;
    }
    if (f->delay_ms == 0 && f->loss == 0.0) {
        return bad(err, "a link fault needs \"delay_ms\" above 0 or \"loss\" above 0");
    }
    return 0;
}

static int parse_kind(const cJSON *o, struct lab_fault *f, struct api_error *err)
{
    static const char *const partition[] = {"kind", "groups", "duration_ms", NULL};
    static const char *const isolate[] = {"kind", "replica", "duration_ms", NULL};
    static const char *const link[] = {"kind", "between", "delay_ms", "loss", "duration_ms", NULL};
    static const char *const pause[] = {"kind", "replica", "ms", "duration_ms", NULL};
    switch (f->kind) {
    case LAB_PARTITION:
        if (only_keys(o, partition, err) < 0) {
            return -1;
        }
        return parse_groups(cJSON_GetObjectItemCaseSensitive(o, "groups"), f, err);
    case LAB_ISOLATE:
        f->n_ids = 1;
        return only_keys(o, isolate, err) < 0
                   ? -1
                   : get_id(cJSON_GetObjectItemCaseSensitive(o, "replica"), "\"replica\"",
                            f->ids[0], err);
    case LAB_LINK:
        return only_keys(o, link, err) < 0 ? -1 : parse_link(o, f, err);
    case LAB_PAUSE:
        f->n_ids = 1;
        if (only_keys(o, pause, err) < 0 || get_id(cJSON_GetObjectItemCaseSensitive(o, "replica"),
                                                   "\"replica\"", f->ids[0], err) < 0) {
            return -1;
        }
        if (cJSON_GetObjectItemCaseSensitive(o, "ms") == NULL) {
            return bad(err, "a pause needs \"ms\" (1 to %u)", LIMIT_FAULT_PAUSE_MS);
        }
        return get_uint(o, "ms", 1, LIMIT_FAULT_PAUSE_MS, &f->pause_ms, err);
    }
    return -1;
}

int lab_parse_fault(const char *body, size_t len, struct lab_fault *out, struct api_error *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *o = api_parse_object(body, len, err);
    if (o == NULL) {
        return -1;
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    int rc = -1;
    if (!cJSON_IsString(kind)) {
        bad(err, "\"kind\" must be one of partition, isolate, link, pause");
        goto done;
    }
    unsigned k;
    for (k = 0; k <= LAB_PAUSE && strcmp(kind->valuestring, kind_names[k]) != 0; k++) {
    }
    if (k > LAB_PAUSE) {
        bad(err, "unknown kind \"%.40s\": one of partition, isolate, link, pause",
            kind->valuestring);
        goto done;
    }
    out->kind = (enum lab_kind)k;
    if (parse_kind(o, out, err) < 0 ||
        get_uint(o, "duration_ms", 1, LIMIT_FAULT_LIFE_MS, &out->duration_ms, err) < 0) {
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

int lab_parse_timing(const char *body, size_t len, struct lab_timing *out, struct api_error *err)
{
    static const char *const keys[] = {"slow_motion", "heartbeat_ms", "election_min_ms",
                                       "election_max_ms", NULL};
    memset(out, 0, sizeof(*out));
    cJSON *o = api_parse_object(body, len, err);
    if (o == NULL) {
        return -1;
    }
    int rc = -1;
    bool slow = cJSON_GetObjectItemCaseSensitive(o, "slow_motion") != NULL;
    unsigned explicit = (cJSON_GetObjectItemCaseSensitive(o, "heartbeat_ms") != NULL) +
                        (cJSON_GetObjectItemCaseSensitive(o, "election_min_ms") != NULL) +
                        (cJSON_GetObjectItemCaseSensitive(o, "election_max_ms") != NULL);
    if (only_keys(o, keys, err) < 0) {
        goto done;
    }
    if (slow == (explicit > 0) || (explicit > 0 && explicit < 3)) {
        bad(err,
            "give either \"slow_motion\" (1 to %u) or all of \"heartbeat_ms\", "
            "\"election_min_ms\" and \"election_max_ms\"",
            LIMIT_SLOW_MOTION);
        goto done;
    }
    if (slow) {
        rc = get_uint(o, "slow_motion", 1, LIMIT_SLOW_MOTION, &out->slow_motion, err);
        goto done;
    }
    if (get_uint(o, "heartbeat_ms", 1, LIMIT_RUNTIME_TIMING_MS, &out->heartbeat_ms, err) < 0 ||
        get_uint(o, "election_min_ms", 1, LIMIT_RUNTIME_TIMING_MS, &out->election_min_ms, err) <
            0 ||
        get_uint(o, "election_max_ms", 1, LIMIT_RUNTIME_TIMING_MS, &out->election_max_ms, err) <
            0) {
        goto done;
    }
    if (!(out->heartbeat_ms < out->election_min_ms &&
          out->election_min_ms < out->election_max_ms)) {
        bad(err, "the timeouts must satisfy heartbeat_ms < election_min_ms < election_max_ms");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

void lab_start(struct lab_fault *f, uint64_t id, int64_t now, int64_t now_wall)
{
    f->id = id;
    f->started = now;
    f->started_wall = now_wall;
    unsigned life = f->duration_ms;
    if (f->kind == LAB_PAUSE && (life == 0 || f->pause_ms < life)) {
        life = f->pause_ms; /* a pause is over when its ms are */
    }
    f->expires_at = life ? now + life : 0;
}

/* ========================================================================
 * Per-replica rules
 * ====================================================================== */

bool lab_names(const struct lab_fault *f, const char *id)
{
    return named_twice(f, id);
}

static int index_of(const struct lab_fault *f, const char *id)
{
    for (unsigned i = 0; i < f->n_ids; i++) {
        if (strcmp(f->ids[i], id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static unsigned left(const struct lab_fault *f, int64_t now)
{
    if (f->expires_at == 0) {
        return 0;
    }
    return f->expires_at > now ? (unsigned)(f->expires_at - now) : 1;
}

unsigned lab_rules(const struct lab_fault *f, const char *replica, const char *const *all,
                   unsigned n_all, int64_t now, struct lab_rule *out)
{
    unsigned n = 0;
    int me = index_of(f, replica);
    struct lab_rule base = {.fault_id = f->id, .loss = 1.0, .expires_in_ms = left(f, now)};
    switch (f->kind) {
    case LAB_PARTITION:
        /* Cut from every replica named in another group. */
        for (unsigned i = 0; me >= 0 && i < f->n_ids && n < LIMIT_MEMBERS; i++) {
            if (f->group[i] != f->group[me]) {
                out[n] = base;
                out[n++].peer = f->ids[i];
            }
        }
        break;
    case LAB_ISOLATE:
        if (me == 0) {
            for (unsigned i = 0; i < n_all && n < LIMIT_MEMBERS; i++) {
                if (strcmp(all[i], replica) != 0) {
                    out[n] = base;
                    out[n++].peer = all[i];
                }
            }
        } else {
            out[n] = base;
            out[n++].peer = f->ids[0];
        }
        break;
    case LAB_LINK:
        if (me >= 0) {
            out[n] = base;
            out[n].loss = f->loss;
            out[n].delay_ms = f->delay_ms;
            out[n++].peer = f->ids[1 - me];
        }
        break;
    case LAB_PAUSE:
        break;
    }
    return n;
}

unsigned lab_pause_left(const struct lab_fault *f, const char *replica, int64_t now)
{
    if (f->kind != LAB_PAUSE || strcmp(f->ids[0], replica) != 0) {
        return 0;
    }
    return f->expires_at > now ? (unsigned)(f->expires_at - now) : 0;
}

/* ========================================================================
 * JSON
 * ====================================================================== */

static cJSON *ids_json(const struct lab_fault *f, unsigned from, unsigned to)
{
    cJSON *a = cJSON_CreateArray();
    for (unsigned i = from; i < to && i < f->n_ids; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(f->ids[i]));
    }
    return a;
}

cJSON *lab_fault_json(const struct lab_fault *f, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)f->id);
    cJSON_AddStringToObject(o, "kind", lab_kind_name(f->kind));
    switch (f->kind) {
    case LAB_PARTITION: {
        cJSON *groups = cJSON_AddArrayToObject(o, "groups");
        for (unsigned g = 0; g < f->n_groups; g++) {
            cJSON *grp = cJSON_CreateArray();
            for (unsigned i = 0; i < f->n_ids; i++) {
                if (f->group[i] == g) {
                    cJSON_AddItemToArray(grp, cJSON_CreateString(f->ids[i]));
                }
            }
            cJSON_AddItemToArray(groups, grp);
        }
        break;
    }
    case LAB_ISOLATE:
        cJSON_AddStringToObject(o, "replica", f->ids[0]);
        break;
    case LAB_LINK:
        cJSON_AddItemToObject(o, "between", ids_json(f, 0, 2));
        cJSON_AddNumberToObject(o, "delay_ms", f->delay_ms);
        cJSON_AddNumberToObject(o, "loss", f->loss);
        break;
    case LAB_PAUSE:
        cJSON_AddStringToObject(o, "replica", f->ids[0]);
        cJSON_AddNumberToObject(o, "ms", f->pause_ms);
        break;
    }
    if (f->duration_ms) {
        cJSON_AddNumberToObject(o, "duration_ms", f->duration_ms);
    }
    cJSON_AddNumberToObject(o, "started_ms", (double)f->started_wall);
    if (f->expires_at) {
        cJSON_AddNumberToObject(o, "expires_ms",
                                (double)(f->started_wall + (f->expires_at - f->started)));
        cJSON_AddNumberToObject(o, "expires_in_ms", (double)left(f, now));
    } else {
        cJSON_AddNullToObject(o, "expires_ms");
        cJSON_AddNullToObject(o, "expires_in_ms");
    }
    return o;
}

void lab_describe(const struct lab_fault *f, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "%s", lab_kind_name(f->kind));
    for (unsigned i = 0; i < f->n_ids && o < len; i++) {
        const char *sep = i == 0                                                       ? " "
                          : f->kind == LAB_PARTITION && f->group[i] != f->group[i - 1] ? " | "
                          : f->kind == LAB_LINK                                        ? " - "
                                                                                       : " ";
        o += (size_t)snprintf(buf + o, len - o, "%s%s", sep, f->ids[i]);
    }
    if (o < len && f->kind == LAB_LINK) {
        o += (size_t)snprintf(buf + o, len - o, " (delay %u ms, loss %g)", f->delay_ms, f->loss);
    }
    if (o < len && f->kind == LAB_PAUSE) {
        o += (size_t)snprintf(buf + o, len - o, " for %u ms", f->pause_ms);
    }
    if (o < len && f->duration_ms) {
        snprintf(buf + o, len - o, ", expires after %u ms", f->duration_ms);
    }
}
