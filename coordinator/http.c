/*
 * coordinator/http.c — see http.h.
 *
 * Sections: replies, routes (the endpoints of docs/api.md), static files,
 * WebSocket clients, life cycle.
 *
 * Every WebSocket client has its own bounded queue and writer thread: the
 * cluster's loop thread only appends to queues, so a slow or vanished
 * browser delays nobody but itself, and loses messages (counted) rather
 * than growing without bound.
 */
#include "http.h"
#include "api_input.h"
#include "auth.h"
#include "cluster.h"
#include "history.h"
#include "lab.h"
#include "logging.h"
#include "metrics.h"
#include "respond.h"
#include "tls.h"
#include "validate.h"
#include "view.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define WS_QUEUE_MAX     2048 /* messages per client before dropping */
#define WS_PING_EVERY_MS 15000

struct ws_msg {
    struct ws_msg *next;
    size_t len;
    char data[];
};

struct ws_client {
    struct http *h;
    struct mg_connection *conn;
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ws_msg *head;
    struct ws_msg *tail;
    size_t queued;
    bool closing;
    struct ws_client *next;
};

struct http {
    struct http_options o;
    struct metrics *metrics;
    struct cluster *cluster;
    struct mg_context *ctx;
    pthread_mutex_t ws_mu; /* guards the client list */
    struct ws_client *clients;
    atomic_int n_clients; /* read without ws_mu: only a hint for publishers */
    unsigned port;        /* civetweb's, on 127.0.0.1 */
};

/* ========================================================================
 * Replies
 * ====================================================================== */

static int send_body(struct mg_connection *conn, int status, const char *type, const char *body,
                     const char *extra_headers)
{
    /* HEAD: the same headers, no body (keep-alive depends on it). The
     * method is NULL when civetweb could not parse the request line. */
    const char *method = mg_get_request_info(conn)->request_method;
    bool with_body = method == NULL || strcmp(method, "HEAD") != 0;
    size_t len;
    char *buf = respond_format(status, type, body, extra_headers, with_body, &len);
    if (buf == NULL) {
        return status;
    }
    mg_write(conn, buf, len);
    free(buf);
    return status;
}

static int send_json(struct mg_connection *conn, int status, const char *body)
{
    return send_body(conn, status, "application/json", body, NULL);
}

static int send_error(struct mg_connection *conn, int status, const char *code, const char *msg,
                      const char *extra_headers)
{
    char *body = cluster_error_json(code, msg);
    int rc = send_body(conn, status, "application/json", body, extra_headers);
    free(body);
    return rc;
}

/* An error after which the connection cannot go on: the rest of the
 * request is unread, or was never going to arrive. The reply says so, and
 * the connection is closed as soon as it is sent, rather than left to
 * civetweb, which would read and drop the rest of the body until its
 * request timeout (twice), holding a worker. */
static int send_error_close(struct mg_connection *conn, int status, const char *code,
                            const char *msg)
{
    send_error(conn, status, code, msg, "Connection: close\r\n");
    mg_close_connection(conn);
    return status;
}

static int send_reply(struct mg_connection *conn, struct cluster_reply *r)
{
    char extra[64];
    respond_retry_after(extra, sizeof(extra), r->status, r->retry_after_s);
    int rc = send_body(conn, r->status, "application/json", r->body, extra);
    free(r->body);
    return rc;
}

static int method_not_allowed(struct mg_connection *conn, const char *allow)
{
    char extra[64];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    return send_error(conn, 405, "method_not_allowed", "that method is not supported here", extra);
}

/* ========================================================================
 * Routes
 * ====================================================================== */

/* A declared Content-Length over --max-body-bytes is answered 413 before
 * any of the body is read. Up to this length the connection then stays
 * open and civetweb reads and drops the rest, so a client still sending
 * it gets to read the 413 (closing with unread data resets the connection
 * under it); a larger claim (2^63 - 1, say) is never going to arrive, and
 * the connection is closed at once. */
#define DRAIN_MAX_BYTES ((long long)LIMIT_BODY_BYTES_MAX)

/* Read the whole body, at most max bytes. NULL when it cannot, with the
 * error already answered and its status in *status: 413 (too large), 411
 * (neither Content-Length nor chunked), 400 (the body ended before its
 * Content-Length or its last chunk; nothing of it is used) or 503. The
 * buffer grows with what arrives, so a large --max-body-bytes costs
 * nothing for small requests. */
static char *read_body(struct mg_connection *conn, size_t max, size_t *len, int *status)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    long long cl = ri->content_length;
    if (cl < 0 && mg_get_header(conn, "Transfer-Encoding") == NULL) {
        /* civetweb would read until the client closes, and take whatever
         * came before a stall as the whole body. HTTP/1.1 says such a
         * request has no body; refuse it rather than guess. */
        *status = send_error_close(conn, 411, "length_required",
                                   "a request body needs a Content-Length or chunked "
                                   "transfer coding");
        return NULL;
    }
    if (cl >= 0 && (unsigned long long)cl > max) {
        *status = cl > DRAIN_MAX_BYTES
                      ? send_error_close(conn, 413, "too_large", "the request body is too large")
                      : send_error(conn, 413, "too_large", "the request body is too large", NULL);
        return NULL;
    }
    size_t cap = cl >= 0 ? (size_t)cl + 1 : 4096;
    char *buf = malloc(cap);
    size_t used = 0;
    while (buf != NULL) {
        if (cl >= 0 && used == (size_t)cl) {
            buf[used] = '\0';
            *len = used;
            return buf;
        }
        if (used + 1 == cap) { /* chunked only: a Content-Length body fits */
            size_t grown = cap * 2 > max + 2 ? max + 2 : cap * 2;
            char *b = realloc(buf, grown);
            if (b == NULL) {
                break;
            }
            buf = b;
            cap = grown;
        }
        int n = mg_read(conn, buf + used, cap - 1 - used);
        if (n == 0 && cl < 0) { /* the last chunk */
            buf[used] = '\0';
            *len = used;
            return buf;
        }
        if (n <= 0) {
            /* Closed, timed out (request_timeout_ms without a byte) or a
             * malformed chunk: what arrived is not the request that was
             * sent, however complete it may look. */
            free(buf);
            *status = send_error_close(conn, 400, "bad_request",
                                       cl >= 0 ? "the body ended before its Content-Length"
                                               : "the chunked body is malformed or ended early");
            return NULL;
        }
        used += (size_t)n;
        if (used > max) {
            /* Chunked: civetweb reads and drops the rest after us. */
            free(buf);
            *status = send_error(conn, 413, "too_large", "the request body is too large", NULL);
            return NULL;
        }
    }
    free(buf);
    *status = send_error_close(conn, 503, "unavailable", "cannot read the body");
    return NULL;
}

static int send_api_error(struct mg_connection *conn, const struct api_error *e)
{
    return send_error(conn, e->status, e->code, e->message, NULL);
}

static int post_request(struct http *h, struct mg_connection *conn)
{
    size_t len;
    int status = 400;
    char *body = read_body(conn, h->o.max_body_bytes, &len, &status);
    if (body == NULL) {
        return status; /* answered */
    }
    struct api_write w;
    struct api_error e;
    int rc = api_parse_write(body, len, h->o.max_data_bytes, &w, &e);
    free(body);
    if (rc < 0) {
        return send_api_error(conn, &e);
    }
    if (w.id[0] == '\0') {
        respond_random_id(w.id, sizeof(w.id));
    }
    struct cluster_reply r;
    cluster_request(h->cluster, w.data, w.len, w.id, w.fault, w.has_seen ? &w.seen_index : NULL,
                    h->o.request_timeout_ms, &r);
    api_write_free(&w);
    return send_reply(conn, &r);
}

static int get_requests(struct http *h, struct mg_connection *conn)
{
    struct api_page page;
    struct api_error e;
    if (api_parse_read(mg_get_request_info(conn)->query_string, LIMIT_READ_DEFAULT, LIMIT_READ_MAX,
                       &page, &e) < 0) {
        return send_api_error(conn, &e);
    }
    struct cluster_reply r;
    cluster_read(h->cluster, page.after, page.limit, page.linearizable, h->o.request_timeout_ms,
                 &r);
    metrics_read(h->metrics, page.linearizable, r.status);
    return send_reply(conn, &r);
}

/* rest: the raw path after "/api/replicas/". The id segment is taken
 * exactly as sent: a '%' (an encoded slash, NUL, dot...) or any byte
 * outside the id alphabet makes it no id at all. */
static int replica_route(struct http *h, struct mg_connection *conn, const char *rest)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char id[LIMIT_ID_BYTES];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (api_parse_replica_id(rest, n, id) < 0) {
        return send_error(conn, 404, "not_found", "no replica with that id", NULL);
    }
    if (slash != NULL && strcmp(slash, "/fail") == 0) {
        if (strcmp(ri->request_method, "POST") != 0) {
            return method_not_allowed(conn, "POST");
        }
        bool replace;
        struct api_error e;
        if (api_parse_fail_query(ri->query_string, &replace, &e) < 0) {
            return send_api_error(conn, &e);
        }
        struct cluster_reply r;
        cluster_fail(h->cluster, id, replace, h->o.request_timeout_ms, &r);
        return send_reply(conn, &r);
    }
    if (slash != NULL) {
        return send_error(conn, 404, "not_found", "no such resource", NULL);
    }
    if (strcmp(ri->request_method, "DELETE") == 0) {
        struct cluster_reply r;
        cluster_remove(h->cluster, id, h->o.request_timeout_ms, &r);
        return send_reply(conn, &r);
    }
    if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0) {
        return method_not_allowed(conn, "GET, DELETE");
    }
    struct api_page page;
    struct api_error e;
    if (api_parse_page(ri->query_string, LIMIT_DETAIL_DEFAULT, LIMIT_READ_MAX, &page, &e) < 0) {
        return send_api_error(conn, &e);
    }
    struct cluster_reply r;
    cluster_replica(h->cluster, id, page.after, page.limit, h->o.request_timeout_ms, &r);
    return send_reply(conn, &r);
}

/* The fault lab (docs/fault-lab.md): /api/faults, /api/faults/{id},
 * /api/timing. */
static int faults_route(struct http *h, struct mg_connection *conn, const char *path)
{
    const char *m = mg_get_request_info(conn)->request_method;
    struct cluster_reply r;
    if (strcmp(path, "/api/timing") == 0) {
        if (strcmp(m, "PUT") != 0) {
            return method_not_allowed(conn, "PUT");
        }
        size_t len;
        int status = 400;
        char *body = read_body(conn, h->o.max_body_bytes, &len, &status);
        if (body == NULL) {
            return status;
        }
        struct lab_timing t;
        struct api_error e;
        int rc = lab_parse_timing(body, len, &t, &e);
        free(body);
        if (rc < 0) {
            return send_api_error(conn, &e);
        }
        cluster_timing(h->cluster, &t, 3000, &r);
        return send_reply(conn, &r);
    }
    if (strcmp(path, "/api/faults") == 0) {
        if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
            struct view *v = cluster_view(h->cluster);
            char *json = v ? view_faults_json(v) : NULL;
            view_release(v);
            int rc = send_json(conn, 200, json ? json : "{\"faults\":[]}");
            free(json);
            return rc;
        }
        if (strcmp(m, "DELETE") == 0) {
            cluster_fault_heal(h->cluster, 0, &r);
            return send_reply(conn, &r);
        }
        if (strcmp(m, "POST") != 0) {
            return method_not_allowed(conn, "GET, POST, DELETE");
        }
        size_t len;
        int status = 400;
        char *body = read_body(conn, h->o.max_body_bytes, &len, &status);
        if (body == NULL) {
            return status;
        }
        struct lab_fault f;
        struct api_error e;
        int rc = lab_parse_fault(body, len, &f, &e);
        free(body);
        if (rc < 0) {
            return send_api_error(conn, &e);
        }
        cluster_fault_add(h->cluster, &f, &r);
        return send_reply(conn, &r);
    }
    /* /api/faults/{id}: the id exactly as GET /api/faults lists it. */
    uint64_t id;
    if (parse_u64(path + strlen("/api/faults/"), 1, LIMIT_COUNTER_MAX, &id) < 0) {
        return send_error(conn, 404, "not_found", "no fault with that id is in force", NULL);
    }
    if (strcmp(m, "DELETE") != 0) {
        return method_not_allowed(conn, "DELETE");
    }
    cluster_fault_heal(h->cluster, id, &r);
    return send_reply(conn, &r);
}

/* GET /readyz: 200 with the primary while a reachable one exists, else 503
 * no_primary saying why (from the view: no call to the replicas). */
static int readyz(struct http *h, struct mg_connection *conn)
{
    struct view *v = cluster_view(h->cluster);
    char reason[200];
    bool ready = view_ready(v, reason, sizeof(reason));
    int rc;
    if (ready) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ready");
        cJSON_AddStringToObject(o, "primary", v->primary->id);
        cJSON_AddNumberToObject(o, "epoch", (double)v->primary->epoch);
        cJSON_AddNumberToObject(o, "reachable_voters", v->reachable_voters);
        cJSON_AddNumberToObject(o, "quorum", v->quorum);
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        rc = send_json(conn, 200, body ? body : "{}");
        free(body);
    } else {
        rc = send_error(conn, 503, "no_primary", reason, "Retry-After: 1\r\n");
    }
    view_release(v);
    return rc;
}

static int api_route(struct http *h, struct mg_connection *conn, const char *path)
{
    const char *m = mg_get_request_info(conn)->request_method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;
    if (strcmp(path, "/api/cluster") == 0) {
        if (!get) {
            return method_not_allowed(conn, "GET");
        }
        struct view *v = cluster_view(h->cluster);
        const char *json = v ? view_json(v) : NULL;
        int rc = send_json(conn, 200, json ? json : "{}");
        view_release(v);
        return rc;
    }
    if (strcmp(path, "/api/history") == 0) {
        if (!get) {
            return method_not_allowed(conn, "GET");
        }
        char *json = h->o.history ? history_json(h->o.history) : NULL;
        int rc = json ? send_json(conn, 200, json)
                      : send_error(conn, 404, "not_found",
                                   "the history is off (--history-events 0)", NULL);
        free(json);
        return rc;
    }
    if (strcmp(path, "/api/requests") == 0) {
        return post  ? post_request(h, conn)
               : get ? get_requests(h, conn)
                     : method_not_allowed(conn, "GET, POST");
    }
    if (strcmp(path, "/api/primary/fail") == 0) {
        if (!post) {
            return method_not_allowed(conn, "POST");
        }
        struct cluster_reply r;
        cluster_fail(h->cluster, NULL, false, h->o.request_timeout_ms, &r);
        return send_reply(conn, &r);
    }
    if (strcmp(path, "/api/replicas") == 0) {
        if (!post) {
            return method_not_allowed(conn, "POST");
        }
        struct cluster_reply r;
        cluster_add(h->cluster, h->o.request_timeout_ms, &r);
        return send_reply(conn, &r);
    }
    if (strncmp(path, "/api/replicas/", 14) == 0) {
        return replica_route(h, conn, path + 14);
    }
    if (strcmp(path, "/api/faults") == 0 || strncmp(path, "/api/faults/", 12) == 0 ||
        strcmp(path, "/api/timing") == 0) {
        return faults_route(h, conn, path);
    }
    return send_error(conn, 404, "not_found", "no such API endpoint", NULL);
}

/* ========================================================================
 * Static files
 * ====================================================================== */

/* The file path of a raw request path, percent-decoded into out. false
 * (404) for anything that could step outside the dashboard or name one file
 * by two paths: an encoded slash, backslash or NUL, a backslash, a dot
 * segment written or encoded ("/./", "/../", "/%2e%2e/"), or ".." at all. */
static bool static_path(const char *raw, char *out, size_t outlen)
{
    for (const char *p = raw; *p != '\0'; p++) {
        if (*p == '%' && p[1] != '\0' && p[2] != '\0') {
            char a = p[1], b = (char)tolower((unsigned char)p[2]);
            if ((a == '2' && b == 'f') || (a == '5' && b == 'c') || (a == '0' && b == '0')) {
                return false;
            }
        }
    }
    int n = mg_url_decode(raw, (int)strlen(raw), out, (int)outlen, 0);
    if (n < 0 || (size_t)n != strlen(out) || out[0] != '/') {
        return false;
    }
    if (strstr(out, "..") != NULL || strchr(out, '\\') != NULL) {
        return false;
    }
    for (const char *seg = out; seg != NULL; seg = strchr(seg + 1, '/')) {
        if (strcmp(seg, "/.") == 0 || strncmp(seg, "/./", 3) == 0) {
            return false;
        }
    }
    return true;
}

static int send_static(struct http *h, struct mg_connection *conn, const char *raw)
{
    const char *m = mg_get_request_info(conn)->request_method;
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        return method_not_allowed(conn, "GET");
    }
    char decoded[1024];
    if (!static_path(raw, decoded, sizeof(decoded))) {
        return send_error(conn, 404, "not_found", "no such file", NULL);
    }
    const char *path = strcmp(decoded, "/") == 0 ? "/index.html" : decoded;
    char file[2048];
    if (strcmp(path, "/vendor/d3.min.js") == 0) {
        /* From the lock-file install, or a copy placed next to the app. */
        snprintf(file, sizeof(file), "%s/vendor/d3.min.js", h->o.dashboard_dir);
        struct stat st;
        if (stat(file, &st) != 0) {
            snprintf(file, sizeof(file), "%s/node_modules/d3/dist/d3.min.js", h->o.dashboard_dir);
        }
    } else if (strncmp(path, "/node_modules/", 14) == 0) {
        return send_error(conn, 404, "not_found", "no such file", NULL);
    } else {
        snprintf(file, sizeof(file), "%s%s", h->o.dashboard_dir, path);
    }
    struct stat st;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        return send_error(conn, 404, "not_found", "no such file", NULL);
    }
    mg_send_file(conn, file);
    return 200;
}

/* Every request passes here before any handler, the WebSocket's upgrade
 * included (civetweb asks the auth handler first): a call that needs a
 * token (auth.h) and lacks a good one is answered 401 or 403 here, and
 * goes no further. Browsers cannot set headers on a WebSocket, so /api/ws
 * also takes the token as ?token= (percent-encoded). Without a token every
 * request is authorised, and the handler still keeps civetweb from looking
 * for a .htpasswd file on every request (a failed stat each). */
static int auth_handler(struct mg_connection *conn, void *cbdata)
{
    struct http *h = cbdata;
    const struct auth *a = h->o.auth;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (a == NULL || !a->on || ri->request_method == NULL || ri->request_uri == NULL) {
        return 1; /* nothing to check, or request_handler's 404 */
    }
    const char *path = ri->request_uri;
    const char *header = mg_get_header(conn, "Authorization");
    size_t tl = 0;
    const char *token = header ? auth_bearer(header, strlen(header), &tl) : NULL;
    char query_token[AUTH_TOKEN_MAX + 1];
    if (token == NULL && strcmp(path, "/api/ws") == 0 && ri->query_string != NULL) {
        int n = mg_get_var(ri->query_string, strlen(ri->query_string), "token", query_token,
                           sizeof(query_token));
        if (n > 0) {
            token = query_token;
            tl = (size_t)n;
        } else if (n == -2) {
            token = ""; /* too long to be one: a wrong token */
        }
    }
    enum auth_result r = auth_check(a, ri->request_method, path, token, tl);
    if (r == AUTH_OK) {
        return 1;
    }
    const char *code = r == AUTH_READ_ONLY ? "forbidden" : "unauthorized";
    const char *msg =
        r == AUTH_MISSING   ? "this call needs the API token: Authorization: Bearer <token>"
        : r == AUTH_INVALID ? "the token is not valid"
                            : "the read-only token cannot change anything: use the API token";
    const char *extra = r == AUTH_MISSING   ? "WWW-Authenticate: Bearer realm=\"replicacao\"\r\n"
                        : r == AUTH_INVALID ? "WWW-Authenticate: Bearer realm=\"replicacao\", "
                                              "error=\"invalid_token\"\r\n"
                                            : "";
    int status = r == AUTH_READ_ONLY ? 403 : 401;
    bool body = ri->content_length > 0 || mg_get_header(conn, "Transfer-Encoding") != NULL;
    if (body) {
        /* Its body stays unread: close rather than have civetweb read and
         * drop it for a caller who may not call. */
        char hdrs[160];
        snprintf(hdrs, sizeof(hdrs), "%sConnection: close\r\n", extra);
        send_error(conn, status, code, msg, hdrs);
        mg_close_connection(conn);
    } else {
        send_error(conn, status, code, msg, extra);
    }
    return 0;
}

/* Routing is on the path exactly as sent. civetweb runs with decode_url
 * off, so request_uri is the raw request target cut at '?' (local_uri_raw
 * is the same pointer for an origin-form target); local_uri is that path
 * with dot segments removed and "//" folded, which is what civetweb itself
 * matches handlers against, and is never used here: with it (and decoding
 * on) "/api/replicas/r1%2F/fail", "r1./fail" and "r1%2Ffail" all reached
 * r1's fail action and "r1%00" read r1. */
static int request_handler(struct mg_connection *conn, void *cbdata)
{
    struct http *h = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *path = ri->request_uri;
    if (path == NULL || path[0] != '/') {
        return send_error(conn, 404, "not_found", "no such resource", NULL);
    }
    if (strncmp(path, "/api/", 5) == 0) {
        return api_route(h, conn, path);
    }
    bool get = strcmp(ri->request_method, "GET") == 0 || strcmp(ri->request_method, "HEAD") == 0;
    bool health = strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0;
    if ((health || strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0) && !get) {
        return method_not_allowed(conn, "GET");
    }
    if (health) {
        return send_body(conn, 200, "text/plain", "ok\n", NULL);
    }
    if (strcmp(path, "/readyz") == 0) {
        return readyz(h, conn);
    }
    if (strcmp(path, "/metrics") == 0) {
        struct view *v = cluster_view(h->cluster);
        char *text = metrics_render(h->metrics, v);
        view_release(v);
        int rc = send_body(conn, 200, "text/plain; version=0.0.4", text ? text : "", NULL);
        free(text);
        return rc;
    }
    return send_static(h, conn, path);
}

/* ========================================================================
 * WebSocket clients
 * ====================================================================== */

static void ws_push(struct ws_client *wc, const char *json, size_t len)
{
    struct ws_msg *m = malloc(sizeof(*m) + len);
    if (m == NULL) {
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->data, json, len);
    pthread_mutex_lock(&wc->mu);
    if (wc->queued >= WS_QUEUE_MAX) {
        pthread_mutex_unlock(&wc->mu);
        free(m);
        metrics_ws_dropped(wc->h->metrics);
        return;
    }
    if (wc->tail) {
        wc->tail->next = m;
    } else {
        wc->head = m;
    }
    wc->tail = m;
    wc->queued++;
    pthread_cond_signal(&wc->cv);
    pthread_mutex_unlock(&wc->mu);
}

bool http_listening(void *arg)
{
    struct http *h = arg;
    return atomic_load_explicit(&h->n_clients, memory_order_relaxed) > 0;
}

void http_publish(void *arg, const char *json, size_t len)
{
    struct http *h = arg;
    pthread_mutex_lock(&h->ws_mu);
    for (struct ws_client *wc = h->clients; wc; wc = wc->next) {
        ws_push(wc, json, len);
    }
    pthread_mutex_unlock(&h->ws_mu);
}

static void *ws_writer(void *arg)
{
    struct ws_client *wc = arg;
    bool broken = false;
    pthread_mutex_lock(&wc->mu);
    while (!wc->closing) {
        if (wc->head == NULL) {
            struct timespec until; /* the condition variable's clock */
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += WS_PING_EVERY_MS / 1000;
            if (pthread_cond_timedwait(&wc->cv, &wc->mu, &until) == ETIMEDOUT && !broken &&
                !wc->closing) {
                /* Keeps the connection alive through idle periods; the
                 * browser's pong counts as activity. */
                pthread_mutex_unlock(&wc->mu);
                broken = mg_websocket_write(wc->conn, MG_WEBSOCKET_OPCODE_PING, "", 0) <= 0;
                pthread_mutex_lock(&wc->mu);
            }
            continue;
        }
        struct ws_msg *m = wc->head;
        wc->head = m->next;
        if (wc->head == NULL) {
            wc->tail = NULL;
        }
        wc->queued--;
        pthread_mutex_unlock(&wc->mu);
        if (!broken) {
            broken = mg_websocket_write(wc->conn, MG_WEBSOCKET_OPCODE_TEXT, m->data, m->len) <= 0;
        }
        free(m);
        pthread_mutex_lock(&wc->mu);
    }
    pthread_mutex_unlock(&wc->mu);
    return NULL;
}

static void ws_ready(struct mg_connection *conn, void *cbdata)
{
    struct http *h = cbdata;
    struct ws_client *wc = calloc(1, sizeof(*wc));
    if (wc == NULL) {
        return;
    }
    wc->h = h;
    wc->conn = conn;
    pthread_mutex_init(&wc->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wc->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* The snapshot goes first, before anything published after it. */
    pthread_mutex_lock(&h->ws_mu);
    struct view *v = cluster_view(h->cluster);
    const char *snap = v ? view_message(v) : NULL;
    if (snap) {
        ws_push(wc, snap, strlen(snap));
    }
    view_release(v);
    /* Then what happened before: the entries numbered as the live events
     * that follow, which the client uses to drop the ones it gets twice
     * (one recorded between this copy and its live publication). */
    char *past = h->o.history ? history_json(h->o.history) : NULL;
    if (past) {
        ws_push(wc, past, strlen(past));
        free(past);
    }
    wc->next = h->clients;
    h->clients = wc;
    atomic_fetch_add(&h->n_clients, 1);
    pthread_mutex_unlock(&h->ws_mu);
    if (pthread_create(&wc->writer, NULL, ws_writer, wc) != 0) {
        pthread_mutex_lock(&wc->mu);
        wc->closing = true; /* no writer: ws_close has none to join */
        pthread_mutex_unlock(&wc->mu);
    }
    mg_set_user_connection_data(conn, wc);
    metrics_ws_clients(h->metrics, 1);
}

static int ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    (void)cbdata;
    /* The stream is one-way; whatever the browser says is ignored. A close
     * frame is answered with one (RFC 6455 5.5.1), echoing its status code,
     * and ends the connection. */
    if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, len >= 2 ? 2 : 0);
        return 0;
    }
    return 1;
}

static void ws_close(const struct mg_connection *conn, void *cbdata)
{
    struct http *h = cbdata;
    struct ws_client *wc = mg_get_user_connection_data(conn);
    if (wc == NULL) {
        return;
    }
    pthread_mutex_lock(&h->ws_mu);
    for (struct ws_client **pp = &h->clients; *pp; pp = &(*pp)->next) {
        if (*pp == wc) {
            *pp = wc->next;
            atomic_fetch_sub(&h->n_clients, 1);
            break;
        }
    }
    pthread_mutex_unlock(&h->ws_mu);
    pthread_mutex_lock(&wc->mu);
    bool started = !wc->closing;
    wc->closing = true;
    pthread_cond_signal(&wc->cv);
    pthread_mutex_unlock(&wc->mu);
    /* The connection is only valid until we return: wait for the writer. */
    if (started) {
        pthread_join(wc->writer, NULL);
    }
    while (wc->head) {
        struct ws_msg *m = wc->head;
        wc->head = m->next;
        free(m);
    }
    pthread_mutex_destroy(&wc->mu);
    pthread_cond_destroy(&wc->cv);
    free(wc);
    metrics_ws_clients(h->metrics, -1);
}

/* ========================================================================
 * Life cycle
 * ====================================================================== */

struct http *http_new(const struct http_options *o, struct metrics *m)
{
    struct http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->o = *o;
    h->metrics = m;
    pthread_mutex_init(&h->ws_mu, NULL);
    atomic_init(&h->n_clients, 0);
    return h;
}

/* Every error civetweb produces itself (a request line or header it cannot
 * parse: 400, a bad Content-Length: 411, 505, ...) in the API's error
 * shape. civetweb closes the connection after most of them (the request
 * could not be framed), and the reply says so. civetweb's own text is kept
 * when it adds something and is short printable ASCII: it may quote bytes
 * of the request. */
static int http_error(struct mg_connection *conn, int status, const char *errmsg)
{
    const struct respond_status *t = respond_status(status);
    const char *code = t && t->code ? t->code : status < 500 ? "bad_request" : "internal_error";
    const char *base = t && t->message ? t->message : "the request failed";
    /* ("Bad request" and the like add nothing to the reason.) */
    bool useful = errmsg != NULL && errmsg[0] != '\0' && strlen(errmsg) <= 100 &&
                  strcasecmp(errmsg, respond_reason(status)) != 0 &&
                  strcasecmp(errmsg, "Bad request") != 0;
    for (const char *p = errmsg; useful && *p != '\0'; p++) {
        useful = *p >= 0x20 && *p < 0x7f;
    }
    char msg[160];
    if (useful) {
        snprintf(msg, sizeof(msg), "%s: %s", base, errmsg);
    } else {
        snprintf(msg, sizeof(msg), "%s", base);
    }
    send_error(conn, status, code, msg, "Connection: close\r\n");
    return 0; /* answered */
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("http: %s", message);
    return 1;
}

/* With TLS: load OpenSSL into civetweb, and join the certificate and key
 * for it (tls.h; main checked both files already). 0, or -1 with a reason. */
static int tls_prepare(struct http *h, struct tls_pem *pem, char *ports, size_t plen, char *err,
                       size_t errlen)
{
    if (tls_load_openssl(err, errlen) != 0) {
        return -1;
    }
    if ((mg_init_library(MG_FEATURES_WEBSOCKET | MG_FEATURES_SSL) & MG_FEATURES_SSL) == 0) {
        snprintf(err, errlen, "--tls-cert: civetweb cannot load OpenSSL (libssl3)");
        return -1;
    }
    if (tls_listening_port(h->o.listen, ports, plen) != 0) {
        snprintf(err, errlen, "--listen %s is too long", h->o.listen);
        return -1;
    }
    return tls_pem_open(pem, h->o.tls_cert, h->o.tls_key, err, errlen);
}

int http_start(struct http *h, struct cluster *c, char *err, size_t errlen)
{
    h->cluster = c;
    char threads[16], timeout[16], ports[160];
    bool tls = h->o.tls_cert[0] != '\0';
    struct tls_pem pem = {.fd = -1};
    snprintf(ports, sizeof(ports), "127.0.0.1:0");
    if (tls) {
        if (tls_prepare(h, &pem, ports, sizeof(ports), err, errlen) != 0) {
            return -1;
        }
    } else {
        mg_init_library(MG_FEATURES_WEBSOCKET);
    }
    /* civetweb holds a thread per connection, idle ones included: keep
     * plenty, and give up on a request that has not arrived in 5 s (our
     * own waiting for the cluster is not socket time). */
    snprintf(threads, sizeof(threads), "%u", h->o.threads ? h->o.threads : 256);
    snprintf(timeout, sizeof(timeout), "%u", 5000u);
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        threads,
        "request_timeout_ms",
        timeout,
        "websocket_timeout_ms",
        "45000",
        "enable_keep_alive",
        "yes",
        "tcp_nodelay",
        "1",
        /* request_uri stays the path as sent (see request_handler). */
        "decode_url",
        "no",
        /* Only with TLS: the joined certificate and key; TLS 1.2 and up. */
        tls ? "ssl_certificate" : NULL,
        pem.path,
        "ssl_protocol_version",
        "4",
        NULL,
    };
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof(callbacks));
    callbacks.log_message = log_message;
    callbacks.http_error = http_error;
    char why[256] = "";
    unsigned code = 0;
    struct mg_init_data init = {
        .callbacks = &callbacks, .user_data = h, .configuration_options = options};
    struct mg_error_data error = {.code = &code, .text = why, .text_buffer_size = sizeof(why)};
    h->ctx = mg_start2(&init, &error);
    tls_pem_close(&pem); /* loaded, or never will be */
    if (h->ctx == NULL) {
        snprintf(err, errlen, "cannot start the HTTP%s server on %s: %s", tls ? "S" : "",
                 tls ? h->o.listen : "127.0.0.1", why[0] ? why : "civetweb failed");
        return -1;
    }
    struct mg_server_port port;
    if (mg_get_server_ports(h->ctx, 1, &port) != 1) {
        snprintf(err, errlen, "the HTTP server has no port");
        return -1;
    }
    h->port = (unsigned)port.port;
    /* The auth handler first: with TLS the public port is open already,
     * and no request may reach a handler before it is in place. */
    mg_set_auth_handler(h->ctx, "/", auth_handler, h);
    mg_set_request_handler(h->ctx, "/", request_handler, h);
    mg_set_websocket_handler(h->ctx, "/api/ws", NULL, ws_ready, ws_data, ws_close, h);
    return 0;
}

unsigned http_port(const struct http *h)
{
    return h->port;
}

void http_stop(struct http *h)
{
    if (h->ctx) {
        mg_stop(h->ctx); /* closes every connection: ws_close runs for each */
        h->ctx = NULL;
    }
}

void http_free(struct http *h)
{
    http_stop(h);
    mg_exit_library();
    pthread_mutex_destroy(&h->ws_mu);
    free(h);
}
