/*
 * tests/fuzz/fuzz_http_input.c — the HTTP API's input layer
 * (coordinator/api_input.c) without a socket.
 *
 * Input: u16 max_data_bytes selector, u8 limits selector, u16 body length,
 * u8 query length, then the body, the query and the rest as a replica id
 * path segment. Each is handed over as the server does: the body as
 * exactly its bytes (no terminating NUL), the query NUL-terminated, the
 * segment as a (pointer, length) slice. Checked:
 *   api_parse_write  accepted: data valid UTF-8 of exactly the stated
 *                    length (no NUL inside), within max_data_bytes; id ""
 *                    or a valid client id. Refused: an error of the API's
 *                    shape and nothing to free.
 *   api_parse_page   == a reference parse of after=/limit=; accepted
 *                    limits within 1..max.
 *   api_parse_replica_id == 1..63 bytes of [A-Za-z0-9._:-], copied.
 *   lab_parse_fault  (POST /api/faults) accepted: a known kind, valid
 *                    distinct ids, every number within its bound; refused:
 *                    a 400 of the API's shape.
 *   lab_parse_timing (PUT /api/timing) accepted: a factor in range, or
 *                    heartbeat < election min < max within bounds.
 */
#include "fuzz_util.h"

#include "api_input.h"
#include "bounds.h"
#include "lab.h"
#include "validate.h"

static void check_error(const struct api_error *err, const char *what)
{
    FUZZ_CHECK(err->status == 400 || err->status == 413 || err->status == 422 || err->status == 503,
               "%s refused with status %d", what, err->status);
    FUZZ_CHECK(err->code != NULL && err->code[0] != '\0', "%s refused without a code", what);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL && err->message[0],
               "%s refused without a message", what);
}

/* ------------------------------------------------------------------------
 * The query reference: '&'-separated parts; "after=V" and "limit=V" each at
 * most once, V all digits (parse_u64's rule); a bare "after" or "limit" is
 * refused; anything else is ignored.
 * ------------------------------------------------------------------------ */

static int ref_number(const char *v, size_t n, uint64_t min, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20) {
        return -1;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10) {
            return -1;
        }
        x = x * 10 + d;
    }
    if (x < min || x > max) {
        return -1;
    }
    *out = x;
    return 0;
}

static int ref_page(const char *q, uint32_t def, uint32_t max, struct api_page *out)
{
    uint64_t after = 0, limit = def;
    bool seen_after = false, seen_limit = false;
    size_t len = strlen(q);
    for (size_t start = 0; start <= len;) {
        const char *amp = memchr(q + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - q) : len;
        const char *part = q + start;
        size_t plen = end - start;
        for (int k = 0; k < 2; k++) {
            const char *name = k == 0 ? "after" : "limit";
            bool *seen = k == 0 ? &seen_after : &seen_limit;
            if (plen < 5 || memcmp(part, name, 5) != 0 || (plen > 5 && part[5] != '=')) {
                continue;
            }
            if (*seen || plen == 5) {
                return -1;
            }
            *seen = true;
            int rc = k == 0 ? ref_number(part + 6, plen - 6, 0, UINT64_MAX, &after)
                            : ref_number(part + 6, plen - 6, 1, max, &limit);
            if (rc < 0) {
                return -1;
            }
        }
        if (amp == NULL) {
            break;
        }
        start = end + 1;
    }
    out->after = after;
    out->limit = (uint32_t)limit;
    return 0;
}

static bool ref_id(const char *s, size_t len)
{
    if (len == 0 || len >= LIMIT_ID_BYTES) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-')) {
            return false;
        }
    }
    return true;
}

/* The fault lab's bodies, on the same bytes. */
static void check_lab(const char *body, size_t body_len)
{
    struct lab_fault f;
    struct api_error err;
    memset(&err, 0, sizeof(err));
    if (lab_parse_fault(body, body_len, &f, &err) == 0) {
        FUZZ_CHECK(f.kind <= LAB_PAUSE, "fault of kind %d", (int)f.kind);
        FUZZ_CHECK(f.n_ids >= 1 && f.n_ids <= LIMIT_MEMBERS, "fault naming %u ids", f.n_ids);
        for (unsigned i = 0; i < f.n_ids; i++) {
            FUZZ_CHECK(validate_id(f.ids[i]), "fault names \"%s\"", f.ids[i]);
            for (unsigned j = 0; j < i; j++) {
                FUZZ_CHECK(strcmp(f.ids[i], f.ids[j]) != 0, "fault names %s twice", f.ids[i]);
            }
        }
        FUZZ_CHECK(f.loss >= 0.0 && f.loss <= 1.0, "loss %g", f.loss);
        FUZZ_CHECK(f.delay_ms <= LIMIT_FAULT_DELAY_MS, "delay %u", f.delay_ms);
        FUZZ_CHECK(f.pause_ms <= LIMIT_FAULT_PAUSE_MS, "pause %u", f.pause_ms);
        FUZZ_CHECK(f.kind != LAB_PAUSE || f.pause_ms >= 1, "pause of 0 ms");
        FUZZ_CHECK(f.kind != LAB_PARTITION || f.n_groups >= 2, "partition of %u groups",
                   f.n_groups);
        FUZZ_CHECK(f.kind != LAB_LINK || f.delay_ms > 0 || f.loss > 0, "a link fault of nothing");
        FUZZ_CHECK(f.duration_ms <= LIMIT_FAULT_LIFE_MS, "duration %u", f.duration_ms);
    } else {
        check_error(&err, "lab_parse_fault");
        FUZZ_CHECK(err.status == 400 || err.status == 503, "fault refused with %d", err.status);
    }
    struct lab_timing t;
    memset(&err, 0, sizeof(err));
    if (lab_parse_timing(body, body_len, &t, &err) == 0) {
        if (t.slow_motion != 0) {
            FUZZ_CHECK(t.slow_motion <= LIMIT_SLOW_MOTION && t.heartbeat_ms == 0,
                       "slow motion %u with heartbeat %u", t.slow_motion, t.heartbeat_ms);
        } else {
            FUZZ_CHECK(t.heartbeat_ms >= 1 && t.heartbeat_ms < t.election_min_ms &&
                           t.election_min_ms < t.election_max_ms &&
                           t.election_max_ms <= LIMIT_RUNTIME_TIMING_MS,
                       "timing %u %u %u", t.heartbeat_ms, t.election_min_ms, t.election_max_ms);
        }
    } else {
        check_error(&err, "lab_parse_timing");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint16_t max_sel = in_u16(&in);
    /* The server's 1 MiB, or something small enough to hit. */
    size_t max_data = (max_sel & 0x8000) ? (size_t)1 << 20 : (size_t)(max_sel % 300);
    uint8_t lim_sel = in_u8(&in);
    uint32_t def_limit, max_limit;
    switch (lim_sel % 3) {
    case 0: /* GET /api/requests */
        def_limit = LIMIT_READ_DEFAULT, max_limit = LIMIT_READ_MAX;
        break;
    case 1: /* GET /api/replicas/{id} */
        def_limit = LIMIT_DETAIL_DEFAULT, max_limit = LIMIT_READ_MAX;
        break;
    default:
        max_limit = 1 + lim_sel / 3, def_limit = 1 + lim_sel % max_limit;
        break;
    }
    size_t body_len = in_u16(&in);
    size_t query_len = in_u8(&in);
    const uint8_t *p;
    body_len = in_bytes(&in, body_len, &p);
    char *body = fuzz_dup(p, body_len); /* no NUL after it, as civetweb hands it over */
    query_len = in_bytes(&in, query_len, &p);
    char *query = fuzz_strndup(p, query_len);
    size_t seg_len = in_bytes(&in, in.left, &p);
    char *segment = fuzz_dup(p, seg_len);

    /* The front door's head parser, on the body bytes taken as a whole
     * connection prefix: READY only for a complete request that fits, whose
     * body lies within what was given; MORE only while no more than the
     * head limit was seen. */
    struct api_head head;
    enum api_head_result hr = api_parse_head(body, body_len, max_data, &head);
    if (hr == API_HEAD_READY) {
        FUZZ_CHECK(head.head_len > 0 && head.head_len <= API_HEAD_MAX, "head of %zu bytes",
                   head.head_len);
        FUZZ_CHECK(head.body_len <= max_data, "body of %zu bytes, at most %zu", head.body_len,
                   max_data);
        FUZZ_CHECK(head.head_len + head.body_len <= body_len, "request past the bytes given");
        FUZZ_CHECK(memcmp(body, "POST /api/requests HTTP/1.1\r\n", 29) == 0,
                   "ready without the request line");
    } else if (hr == API_HEAD_MORE) {
        FUZZ_CHECK(body_len < API_HEAD_MAX + max_data + 1, "still waiting after %zu bytes",
                   body_len);
    }

    check_lab(body, body_len);

    /* POST /api/requests */
    struct api_write w;
    struct api_error err;
    memset(&err, 0, sizeof(err));
    if (api_parse_write(body, body_len, max_data, &w, &err) == 0) {
        FUZZ_CHECK(w.data != NULL, "accepted without data");
        FUZZ_CHECK(strlen(w.data) == w.len, "data of %zu bytes holds a NUL at %zu", w.len,
                   strlen(w.data));
        FUZZ_CHECK(w.len <= max_data, "data of %zu bytes accepted, at most %zu", w.len, max_data);
        FUZZ_CHECK(utf8_valid((const uint8_t *)w.data, w.len), "data is not valid UTF-8");
        FUZZ_CHECK(memchr(w.id, '\0', sizeof(w.id)) != NULL, "id not terminated");
        FUZZ_CHECK(w.id[0] == '\0' || validate_client_id(w.id, strlen(w.id)),
                   "accepted client id \"%s\"", w.id);
        api_write_free(&w);
        FUZZ_CHECK(w.data == NULL, "api_write_free left data");
    } else {
        check_error(&err, "api_parse_write");
        FUZZ_CHECK(w.data == NULL, "refused, yet data was allocated");
    }

    /* GET ...?after=&limit= */
    struct api_page page = {0x5555, 0x5555, false}, want = {0, 0, false};
    memset(&err, 0, sizeof(err));
    int rc = api_parse_page(query, def_limit, max_limit, &page, &err);
    int ref = ref_page(query, def_limit, max_limit, &want);
    FUZZ_CHECK(rc == ref, "api_parse_page(\"%s\") returned %d, reference %d", query, rc, ref);
    if (rc == 0) {
        FUZZ_CHECK(page.limit >= 1 && page.limit <= max_limit, "limit %u accepted, max %u",
                   page.limit, max_limit);
        FUZZ_CHECK(page.after == want.after && page.limit == want.limit,
                   "api_parse_page(\"%s\"): after %llu limit %u, reference %llu %u", query,
                   (unsigned long long)page.after, page.limit, (unsigned long long)want.after,
                   want.limit);
    } else {
        check_error(&err, "api_parse_page");
    }

    /* GET /api/requests?...&consistency= : the page's rules, plus a level. */
    struct api_page read = {0x5555, 0x5555, false};
    memset(&err, 0, sizeof(err));
    int rrc = api_parse_read(query, def_limit, max_limit, &read, &err);
    FUZZ_CHECK(rrc == 0 || rrc == -1, "api_parse_read returned %d", rrc);
    if (rrc == 0) {
        FUZZ_CHECK(rc == 0 && read.after == page.after && read.limit == page.limit,
                   "api_parse_read(\"%s\") accepted a page api_parse_page refused or read it "
                   "otherwise",
                   query);
        /* Serializable only when asked for by name; never by default. */
        FUZZ_CHECK(read.linearizable || strstr(query, "consistency=serializable") != NULL,
                   "api_parse_read(\"%s\"): serializable without asking", query);
    } else {
        check_error(&err, "api_parse_read");
    }

    /* GET /api/replicas/{id} */
    char id[LIMIT_ID_BYTES];
    memset(id, 0x5a, sizeof(id));
    rc = api_parse_replica_id(segment, seg_len, id);
    FUZZ_CHECK((rc == 0) == ref_id(segment, seg_len), "api_parse_replica_id returned %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(strlen(id) == seg_len && memcmp(id, segment, seg_len) == 0 && validate_id(id),
                   "replica id copied wrong");
    }

    free(body);
    free(query);
    free(segment);
    return 0;
}
