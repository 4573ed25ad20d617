/*
 * tests/unit/test_auth.c — the API token's rules (coordinator/auth.c):
 * token files, which paths need what, the Bearer header, and the decision
 * for every kind of token; and the front door's Authorization header
 * (coordinator/api_input.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_input.h"
#include "auth.h"

static char dir[] = "/tmp/replicacao-test-auth-XXXXXX";

static const char *write_file(const char *name, const char *content, size_t len)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    return p;
}

static int setup(void **state)
{
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_token_files(void **state)
{
    unsigned char d[32], e[32];
    char err[256];
    assert_int_equal(auth_load_file(write_file("a", "s3cret\n\n \t", 10), d, err, sizeof(err)), 0);
    assert_int_equal(auth_load_file(write_file("b", "s3cret", 6), e, err, sizeof(err)), 0);
    assert_memory_equal(d, e, 32); /* trailing white space is no part of it */
    assert_int_equal(auth_load_file(write_file("c", "s3cre", 5), e, err, sizeof(err)), 0);
    assert_memory_not_equal(d, e, 32);

    assert_int_equal(auth_load_file("/nonexistent/token", d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read"));
    assert_int_equal(auth_load_file(write_file("d", " \n\n", 3), d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(auth_load_file(write_file("e", "", 0), d, err, sizeof(err)), -1);
    assert_int_equal(auth_load_file(write_file("f", "two words", 9), d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "printable ASCII"));
    assert_int_equal(auth_load_file(write_file("g", "a\0b", 3), d, err, sizeof(err)), -1);
    assert_int_equal(auth_load_file(dir, d, err, sizeof(err)), -1); /* a directory */

    static char big[AUTH_TOKEN_MAX + 2];
    memset(big, 'x', sizeof(big));
    assert_int_equal(auth_load_file(write_file("h", big, AUTH_TOKEN_MAX), d, err, sizeof(err)), 0);
    assert_int_equal(auth_load_file(write_file("i", big, AUTH_TOKEN_MAX + 1), d, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "longer"));
    static char huge[3 * AUTH_TOKEN_MAX];
    memset(huge, ' ', sizeof(huge));
    huge[0] = 'x';
    assert_int_equal(auth_load_file(write_file("j", huge, sizeof(huge)), d, err, sizeof(err)), -1);
}

static void setup_auth(struct auth *a, bool read, bool metrics_open)
{
    char err[256];
    const char *full = write_file("full", "full-token\n", 11);
    const char *ro = read ? write_file("ro", "read-token\n", 11) : NULL;
    assert_int_equal(auth_setup(a, full, ro, metrics_open, err, sizeof(err)), 0);
}

static void test_setup(void **state)
{
    struct auth a;
    char err[256];
    assert_int_equal(auth_setup(&a, NULL, NULL, false, err, sizeof(err)), 0);
    assert_false(a.on);
    assert_int_equal(auth_setup(&a, "", "", false, err, sizeof(err)), 0);
    assert_false(a.on);
    const char *t = write_file("t", "same", 4);
    assert_int_equal(auth_setup(&a, NULL, t, false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--api-token-file"));
    assert_int_equal(auth_setup(&a, t, t, false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "differ"));
    setup_auth(&a, true, false);
    assert_true(a.on);
    assert_true(a.has_read);
}

static void test_need(void **state)
{
    struct auth a;
    char err[256];
    assert_int_equal(auth_setup(&a, NULL, NULL, false, err, sizeof(err)), 0);
    assert_int_equal(auth_need(&a, "POST", "/api/primary/fail"), AUTH_NEED_NONE);
    setup_auth(&a, false, false);
    assert_int_equal(auth_need(&a, "GET", "/api/cluster"), AUTH_NEED_READ);
    assert_int_equal(auth_need(&a, "HEAD", "/api/cluster"), AUTH_NEED_READ);
    assert_int_equal(auth_need(&a, "GET", "/api/ws"), AUTH_NEED_READ);
    assert_int_equal(auth_need(&a, "GET", "/api/nothing"), AUTH_NEED_READ);
    assert_int_equal(auth_need(&a, "POST", "/api/requests"), AUTH_NEED_WRITE);
    assert_int_equal(auth_need(&a, "DELETE", "/api/faults"), AUTH_NEED_WRITE);
    assert_int_equal(auth_need(&a, "OPTIONS", "/api/cluster"), AUTH_NEED_WRITE);
    assert_int_equal(auth_need(&a, "get", "/api/cluster"), AUTH_NEED_WRITE);
    assert_int_equal(auth_need(&a, "GET", "/metrics"), AUTH_NEED_READ);
    const char *open[] = {"/",      "/index.html", "/app.js", "/vendor/d3.min.js",
                          "/livez", "/healthz",    "/readyz", "/api",
                          "/apix",  "/metrics/x"};
    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++) {
        assert_int_equal(auth_need(&a, "GET", open[i]), AUTH_NEED_NONE);
    }
    setup_auth(&a, false, true);
    assert_int_equal(auth_need(&a, "GET", "/metrics"), AUTH_NEED_NONE);
    assert_int_equal(auth_need(&a, "GET", "/api/cluster"), AUTH_NEED_READ);
}

static void test_bearer(void **state)
{
    size_t n = 0;
    const char *h = "Bearer abc";
    assert_ptr_equal(auth_bearer(h, strlen(h), &n), h + 7);
    assert_int_equal(n, 3);
    h = "bEARER \t abc def \t ";
    assert_ptr_equal(auth_bearer(h, strlen(h), &n), h + 9);
    assert_int_equal(n, 7); /* "abc def": a wrong token, not a cut one */
    const char *none[] = {"",          "Bearer",    "Bearer ", "Bearer  \t ",
                          "Bearerabc", "Basic abc", "abc",     " Bearer abc"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_null(auth_bearer(none[i], strlen(none[i]), &n));
    }
    assert_null(auth_bearer(NULL, 0, &n));
}

static void test_check(void **state)
{
    struct auth a;
    setup_auth(&a, true, false);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", NULL, 0), AUTH_MISSING);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", "full-token", 10), AUTH_OK);
    assert_int_equal(auth_check(&a, "POST", "/api/requests", "full-token", 10), AUTH_OK);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", "read-token", 10), AUTH_OK);
    assert_int_equal(auth_check(&a, "POST", "/api/requests", "read-token", 10), AUTH_READ_ONLY);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", "full-toke", 9), AUTH_INVALID);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", "full-token ", 11), AUTH_INVALID);
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", "", 0), AUTH_INVALID);
    assert_int_equal(auth_check(&a, "GET", "/livez", NULL, 0), AUTH_OK);
    static char big[AUTH_TOKEN_MAX + 1];
    memset(big, 'x', sizeof(big));
    assert_int_equal(auth_check(&a, "GET", "/api/cluster", big, sizeof(big)), AUTH_INVALID);
    /* Without a read-only token, its all-zero digest matches nothing. */
    setup_auth(&a, false, false);
    assert_int_equal(auth_level(&a, "read-token", 10), AUTH_LEVEL_NONE);
    assert_int_equal(auth_level(&a, "full-token", 10), AUTH_LEVEL_FULL);
}

static void test_front_header(void **state)
{
    struct api_head h;
    const char *rq = "POST /api/requests HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer t0k \r\n"
                     "Content-Length: 2\r\n\r\n{}";
    assert_int_equal(api_parse_head(rq, strlen(rq), 1024, &h), API_HEAD_READY);
    assert_true(h.has_auth);
    assert_int_equal(h.auth_len, 10);
    assert_memory_equal(rq + h.auth_off, "Bearer t0k", 10);
    rq = "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(api_parse_head(rq, strlen(rq), 1024, &h), API_HEAD_READY);
    assert_false(h.has_auth);
    rq = "POST /api/requests HTTP/1.1\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n"
         "Content-Length: 2\r\n\r\n{}";
    assert_int_equal(api_parse_head(rq, strlen(rq), 1024, &h), API_HEAD_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_files), cmocka_unit_test(test_setup),
        cmocka_unit_test(test_need),        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_check),       cmocka_unit_test(test_front_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
