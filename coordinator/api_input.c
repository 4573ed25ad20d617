/*
 * coordinator/api_input.c — see api_input.h.
 */
#include "api_input.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(struct api_error *err, int status, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* cJSON decodes \u0000 into a NUL that silently ends the string; refuse it
 * rather than keep less than was sent. An escape is a backslash preceded by
 * an even number of backslashes. */
static bool has_nul_escape(const char *s, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (s[i] != '\\' || strncmp(s + i + 1, "u0000", 5) != 0) {
            continue;
        }
        size_t slashes = 0;
        while (slashes < i && s[i - 1 - slashes] == '\\') {
            slashes++;
        }
        if (slashes % 2 == 0) {
            return true;
        }
    }
    return false;
}

/* The checks that need the raw text, before cJSON sees it: cJSON neither
 * bounds recursion usefully for a small thread stack nor checks UTF-8. */
static int check_raw(const char *body, size_t len, struct api_error *err)
{
    if (memchr(body, '\0', len) != NULL) {
        return fail(err, 400, "bad_json", "the body holds a NUL byte");
    }
    if (json_depth(body, len, LIMIT_JSON_DEPTH) > LIMIT_JSON_DEPTH) {
        return fail(err, 400, "bad_json", "JSON nested deeper than %d levels", LIMIT_JSON_DEPTH);
    }
    if (!utf8_valid((const uint8_t *)body, len)) {
        return fail(err, 400, "bad_encoding", "the body is not valid UTF-8");
    }
    if (has_nul_escape(body, len)) {
        return fail(err, 400, "bad_json", "strings must not contain \\u0000");
    }
    return 0;
}

/* After cJSON: escapes such as a lone "\ud800" decode to bytes that are not
 * UTF-8, so the decoded strings are checked again. */
static int check_fields(const cJSON *data, const cJSON *id, const cJSON *fault,
                        size_t max_data_bytes, struct api_error *err)
{
    if (!cJSON_IsString(data)) {
        return fail(err, 400, "missing_data", "\"data\" (a string) is required");
    }
    size_t len = strlen(data->valuestring);
    if (len > max_data_bytes) {
        return fail(err, 400, "too_large", "\"data\" is too large (%zu bytes, at most %zu)", len,
                    max_data_bytes);
    }
    if (!utf8_valid((const uint8_t *)data->valuestring, len)) {
        return fail(err, 400, "bad_encoding", "\"data\" is not valid UTF-8");
    }
    if (id != NULL && !cJSON_IsNull(id) &&
        (!cJSON_IsString(id) || !validate_client_id(id->valuestring, strlen(id->valuestring)))) {
        return fail(err, 400, "bad_request",
                    "\"id\" must be a string of 1 to %d bytes of UTF-8 without control characters",
                    LIMIT_CLIENT_ID_BYTES - 1);
    }
    if (fault != NULL && !cJSON_IsBool(fault) && !cJSON_IsNull(fault)) {
        return fail(err, 400, "bad_request", "\"fault\" must be true or false");
    }
    return 0;
}

struct cJSON *api_parse_object(const char *body, size_t len, struct api_error *err)
{
    if (check_raw(body, len, err) < 0) {
        return NULL;
    }
    /* Whole body or nothing: only white space may follow the object. */
    const char *end = body;
    cJSON *json = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    while (json != NULL && end < body + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (json != NULL && end != body + len) {
        cJSON_Delete(json);
        json = NULL;
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        fail(err, 400, "bad_json", "the body must be one JSON object");
        return NULL;
    }
    return json;
}

int api_parse_write(const char *body, size_t len, size_t max_data_bytes, struct api_write *out,
                    struct api_error *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *json = api_parse_object(body, len, err);
    if (json == NULL) {
        return -1;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(json, "data");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "id");
    const cJSON *fault = cJSON_GetObjectItemCaseSensitive(json, "fault");
    if (check_fields(data, id, fault, max_data_bytes, err) < 0) {
        cJSON_Delete(json);
        return -1;
    }
    out->len = strlen(data->valuestring);
    out->data = malloc(out->len + 1);
    if (out->data == NULL) {
        cJSON_Delete(json);
        return fail(err, 503, "unavailable", "out of memory");
    }
    memcpy(out->data, data->valuestring, out->len + 1);
    if (cJSON_IsString(id)) {
        snprintf(out->id, sizeof(out->id), "%s", id->valuestring);
    }
    out->fault = cJSON_IsTrue(fault);
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(json, "seen_index");
    if (seen != NULL && !cJSON_IsNull(seen)) {
        double v = cJSON_IsNumber(seen) ? seen->valuedouble : -1;
        if (v < 0 || v > (double)LIMIT_COUNTER_MAX || v != (double)(uint64_t)v) {
            api_write_free(out);
            cJSON_Delete(json);
            return fail(err, 400, "bad_request", "\"seen_index\" must be an integer from 0 to %llu",
                        (unsigned long long)LIMIT_COUNTER_MAX);
        }
        out->has_seen = true;
        out->seen_index = (uint64_t)v;
    }
    cJSON_Delete(json);
    return 0;
}

void api_write_free(struct api_write *w)
{
    free(w->data);
    w->data = NULL;
}

/* One query parameter's raw (still percent-encoded) value; *n is -1 when
 * absent, and -2 when the parameter appears more than once. */
static const char *query_param(const char *q, const char *name, int *n)
{
    size_t name_len = strlen(name);
    const char *found = NULL;
    *n = -1;
    for (const char *p = q; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t part = amp ? (size_t)(amp - p) : strlen(p);
        if (part > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            if (found != NULL) {
                *n = -2;
                return NULL;
            }
            found = p + name_len + 1;
            *n = (int)(part - name_len - 1 < 4096 ? part - name_len - 1 : 4096);
        } else if (part == name_len && strncmp(p, name, name_len) == 0) {
            *n = -2; /* "after" with no value */
            return NULL;
        }
        p = amp ? amp + 1 : NULL;
    }
    return found;
}

static int page_param(const char *q, const char *name, uint64_t def, uint64_t min, uint64_t max,
                      uint64_t *out)
{
    int n;
    const char *raw = query_param(q, name, &n);
    if (n == -1) {
        *out = def;
        return 0;
    }
    char buf[32];
    /* Numbers need no percent-encoding: a '%' or anything past 20 digits
     * is refused as it stands. */
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, raw, (size_t)n);
    buf[n] = '\0';
    return parse_u64(buf, min, max, out);
}

int api_parse_page(const char *query, uint32_t default_limit, uint32_t max_limit,
                   struct api_page *out, struct api_error *err)
{
    const char *q = query ? query : "";
    uint64_t after, limit;
    if (page_param(q, "after", 0, 0, UINT64_MAX, &after) < 0 ||
        page_param(q, "limit", default_limit, 1, max_limit, &limit) < 0) {
        return fail(err, 400, "bad_query",
                    "after must be a number from 0 to 18446744073709551615 and limit one from 1 "
                    "to %u, each given once",
                    max_limit);
    }
    out->after = after;
    out->limit = (uint32_t)limit;
    return 0;
}

int api_parse_read(const char *query, uint32_t default_limit, uint32_t max_limit,
                   struct api_page *out, struct api_error *err)
{
    if (api_parse_page(query, default_limit, max_limit, out, err) < 0) {
        return -1;
    }
    int n;
    const char *raw = query_param(query ? query : "", "consistency", &n);
    out->linearizable = true;
    if (n == -1 || (n == 12 && strncmp(raw, "linearizable", 12) == 0)) {
        return 0;
    }
    if (n == 12 && strncmp(raw, "serializable", 12) == 0) {
        out->linearizable = false;
        return 0;
    }
    return fail(err, 400, "bad_query",
                "consistency must be linearizable (the default) or serializable, given once");
}

int api_parse_fail_query(const char *query, bool *replace, struct api_error *err)
{
    int n;
    const char *raw = query_param(query ? query : "", "replace", &n);
    *replace = false;
    if (n == -1) {
        return 0;
    }
    if (n == 4 && strncmp(raw, "true", 4) == 0) {
        *replace = true;
        return 0;
    }
    if (n == 5 && strncmp(raw, "false", 5) == 0) {
        return 0;
    }
    return fail(err, 400, "bad_query", "replace must be true or false, given once");
}

int api_parse_replica_id(const char *segment, size_t len, char out[LIMIT_ID_BYTES])
{
    if (len == 0 || len >= LIMIT_ID_BYTES || memchr(segment, '\0', len) != NULL) {
        return -1;
    }
    memcpy(out, segment, len);
    out[len] = '\0';
    return validate_id(out) ? 0 : -1;
}

/* ========================================================================
 * The front door's request head
 * ====================================================================== */

static const char native_line[] = "POST /api/requests HTTP/1.1\r\n";

static bool token_char(char ch)
{
    return isalnum((unsigned char)ch) || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Does the comma-separated header value list `token` (case-insensitive)? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        size_t start = i;
        while (i < n && v[i] != ',') {
            i++;
        }
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) {
            end--;
        }
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0) {
            return true;
        }
    }
    return false;
}

enum api_head_result api_parse_head(const char *b, size_t n, size_t max_body, struct api_head *out)
{
    size_t ll = sizeof(native_line) - 1;
    if (memcmp(b, native_line, n < ll ? n : ll) != 0) {
        return API_HEAD_OTHER;
    }
    if (n < ll) {
        return API_HEAD_MORE;
    }
    /* The head: every line ends in CRLF, ends with an empty line. */
    size_t limit = n < API_HEAD_MAX ? n : API_HEAD_MAX;
    size_t head_end = 0;
    for (size_t i = ll; i < limit; i++) {
        if (b[i] == '\n' && b[i - 1] != '\r') {
            return API_HEAD_OTHER;
        }
        if (b[i] == '\n' && i >= 3 && b[i - 2] == '\n') {
            head_end = i + 1;
            break;
        }
    }
    if (head_end == 0) {
        return n >= API_HEAD_MAX ? API_HEAD_OTHER : API_HEAD_MORE;
    }
    memset(out, 0, sizeof(*out));
    bool have_length = false;
    for (size_t i = ll; i + 2 < head_end;) {
        const char *line = b + i;
        const char *eol = memchr(line, '\r', head_end - i);
        if (eol == NULL || eol[1] != '\n') {
            return API_HEAD_OTHER; /* a CR alone */
        }
        size_t len = (size_t)(eol - line);
        i += len + 2;
        size_t k = 0;
        while (k < len && token_char(line[k])) {
            k++;
        }
        if (k == 0 || k >= len || line[k] != ':') {
            return API_HEAD_OTHER;
        }
        const char *name = line;
        size_t name_len = k;
        const char *v = line + k + 1;
        size_t vn = len - k - 1;
        for (size_t j = 0; j < vn; j++) {
            unsigned char ch = (unsigned char)v[j];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return API_HEAD_OTHER;
            }
        }
        while (vn > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
            vn--;
        }
#define IS(h) (name_len == sizeof(h) - 1 && strncasecmp(name, h, name_len) == 0)
        if (IS("Content-Length")) {
            if (have_length || vn == 0 || vn > 18) {
                return API_HEAD_OTHER;
            }
            size_t value = 0;
            for (size_t j = 0; j < vn; j++) {
                if (!isdigit((unsigned char)v[j])) {
                    return API_HEAD_OTHER;
                }
                value = value * 10 + (size_t)(v[j] - '0');
            }
            if (value > max_body) {
                return API_HEAD_OTHER; /* civetweb's 413 */
            }
            out->body_len = value;
            have_length = true;
        } else if (IS("Authorization")) {
            if (out->has_auth) {
                return API_HEAD_OTHER;
            }
            out->has_auth = true;
            out->auth_off = (size_t)(v - b);
            out->auth_len = vn;
        } else if (IS("Transfer-Encoding") || IS("Expect") || IS("Upgrade")) {
            return API_HEAD_OTHER;
        } else if (IS("Connection")) {
            if (has_token(v, vn, "upgrade")) {
                return API_HEAD_OTHER;
            }
            out->close = out->close || has_token(v, vn, "close");
        }
#undef IS
    }
    if (!have_length) {
        return API_HEAD_OTHER;
    }
    out->head_len = head_end;
    return n >= head_end + out->body_len ? API_HEAD_READY : API_HEAD_MORE;
}
