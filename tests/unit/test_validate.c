/*
 * tests/unit/test_validate.c — the input checks of common/validate.c and
 * the HTTP input layer (coordinator/api_input.c), at and past every limit.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_input.h"
#include "validate.h"

static void test_ids(void **state)
{
    char id[LIMIT_ID_BYTES + 1];
    memset(id, 'a', sizeof id);
    id[LIMIT_ID_BYTES - 1] = '\0'; /* 63 bytes: the longest */
    assert_true(validate_id(id));
    id[LIMIT_ID_BYTES - 1] = 'a';
    id[LIMIT_ID_BYTES] = '\0';
    assert_false(validate_id(id));
    assert_true(validate_id("r1"));
    assert_true(validate_id("replicacao_replica_2"));
    assert_true(validate_id("0123456789ab.example.org:5000-x"));
    const char *bad[] = {"", "a b", "a\nb", "a/b", "a%b", "caf\xc3\xa9", "\x7f", "a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(validate_id(bad[i]));
    }
}

static void test_client_ids(void **state)
{
    char id[LIMIT_CLIENT_ID_BYTES + 1];
    memset(id, 'c', sizeof id);
    assert_true(validate_client_id(id, LIMIT_CLIENT_ID_BYTES - 1));
    assert_false(validate_client_id(id, LIMIT_CLIENT_ID_BYTES));
    assert_false(validate_client_id(id, 0));
    assert_true(validate_client_id("caf\xc3\xa9 au lait", 13));
    assert_false(validate_client_id("a\nb", 3));
    assert_false(validate_client_id("\xc2\x85", 2)); /* NEL, a C1 control */
    assert_false(validate_client_id("\x7f", 1));
    assert_false(validate_client_id("\xff", 1));
}

static void test_utf8(void **state)
{
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain", true},
        {"\xc3\xa9", true},
        {"\xf0\x9f\x98\x80", true},  /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", true},  /* U+10FFFF */
        {"\xf4\x90\x80\x80", false}, /* past U+10FFFF */
        {"\xc0\x80", false},         /* overlong NUL */
        {"\xe0\x80\xaf", false},     /* overlong '/' */
        {"\xed\xa0\x80", false},     /* a surrogate */
        {"\xc3", false},             /* cut short */
        {"\x80", false},             /* a lone continuation */
        {"\xfe\xff", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(utf8_valid((const uint8_t *)cases[i].s, strlen(cases[i].s)), cases[i].ok);
    }
    const uint8_t raw[] = {'a', 0xff, 0, 'b', 0xc3};
    char *clean = utf8_sanitize(raw, sizeof raw);
    assert_string_equal(clean, "a\xef\xbf\xbd\xef\xbf\xbd"
                               "b\xef\xbf\xbd");
    assert_true(utf8_valid((const uint8_t *)clean, strlen(clean)));
    free(clean);
}

static void test_json_depth(void **state)
{
    const char *flat = "{\"data\":\"[[[[{{{{\",\"a\":[1,2]}";
    assert_int_equal(json_depth(flat, strlen(flat), 16), 2);
    const char *escaped = "{\"d\":\"\\\"[[[\"}";
    assert_int_equal(json_depth(escaped, strlen(escaped), 16), 1);
    size_t n = 100000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    assert_int_equal(json_depth(deep, n, 16), 17); /* stops just past the bound */
    free(deep);
}

static void test_parse_u64(void **state)
{
    uint64_t v = 7;
    assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"18446744073709551616",   "", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.5",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_u64(bad[i], 0, UINT64_MAX, &v), -1);
    }
    assert_int_equal(parse_u64("0", 1, 10, &v), -1);
    assert_int_equal(parse_u64("11", 1, 10, &v), -1);
    assert_int_equal(parse_u64("10", 1, 10, &v), 0);
}

static void expect_write_error(const char *body, int status, const char *code)
{
    struct api_write w;
    struct api_error e;
    assert_int_equal(api_parse_write(body, strlen(body), 100, &w, &e), -1);
    assert_int_equal(e.status, status);
    assert_string_equal(e.code, code);
    assert_true(strlen(e.message) > 0);
}

static void test_api_write(void **state)
{
    struct api_write w;
    struct api_error e;
    const char *ok = " {\"data\":\"line\\nnext \xc3\xa9\",\"id\":\"k-1\",\"fault\":true}\r\n";
    assert_int_equal(api_parse_write(ok, strlen(ok), 100, &w, &e), 0);
    assert_string_equal(w.data, "line\nnext \xc3\xa9");
    assert_int_equal(w.len, 12);
    assert_string_equal(w.id, "k-1");
    assert_true(w.fault);
    api_write_free(&w);

    expect_write_error("{\"data\":\"x\"} x", 400, "bad_json");
    expect_write_error("[]", 400, "bad_json");
    expect_write_error("", 400, "bad_json");
    expect_write_error("{\"data\":\"x\",\"a\":[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]}", 400,
                       "bad_json");
    expect_write_error("{\"data\":\"\xff\"}", 400, "bad_encoding");
    expect_write_error("{\"data\":\"a\\u0000b\"}", 400, "bad_json");
    expect_write_error("{\"data\":7}", 400, "missing_data");
    expect_write_error("{\"data\":\"x\",\"id\":\"a\\nb\"}", 400, "bad_request");
    expect_write_error("{\"data\":\"x\",\"id\":\"\"}", 400, "bad_request");
    expect_write_error("{\"data\":\"x\",\"fault\":1}", 400, "bad_request");
    char big[200];
    snprintf(big, sizeof big, "{\"data\":\"%0101d\"}", 0);
    expect_write_error(big, 400, "too_large");
    /* Not NUL-terminated: the length is what counts. */
    const char cut[] = {'{', '"', 'd', 'a', 't', 'a', '"', ':', '"', 'x', '"', '}', '}'};
    assert_int_equal(api_parse_write(cut, sizeof cut - 1, 100, &w, &e), 0);
    api_write_free(&w);
}

static void test_api_page(void **state)
{
    struct api_page p;
    struct api_error e;
    assert_int_equal(api_parse_page(NULL, 100, 1000, &p, &e), 0);
    assert_true(p.after == 0 && p.limit == 100);
    assert_int_equal(api_parse_page("after=18446744073709551615&limit=1000", 100, 1000, &p, &e), 0);
    assert_true(p.after == UINT64_MAX && p.limit == 1000);
    const char *bad[] = {"after=18446744073709551616",
                         "limit=0",
                         "limit=1001",
                         "after=-1",
                         "after=",
                         "after",
                         "after=1&after=2",
                         "after=%31",
                         "after=1e3",
                         "limit=4294967297"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(api_parse_page(bad[i], 100, 1000, &p, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "bad_query");
    }
    assert_int_equal(api_parse_page("x=1&after=5&y", 100, 1000, &p, &e), 0);
    assert_true(p.after == 5);
}

static void test_api_fail_query(void **state)
{
    struct api_error e;
    bool replace = true;
    assert_int_equal(api_parse_fail_query(NULL, &replace, &e), 0);
    assert_false(replace);
    assert_int_equal(api_parse_fail_query("", &replace, &e), 0);
    assert_false(replace);
    assert_int_equal(api_parse_fail_query("replace=true", &replace, &e), 0);
    assert_true(replace);
    assert_int_equal(api_parse_fail_query("x=1&replace=false&y", &replace, &e), 0);
    assert_false(replace);
    assert_int_equal(api_parse_fail_query("other=1", &replace, &e), 0);
    assert_false(replace);
    const char *bad[] = {"replace",
                         "replace=",
                         "replace=TRUE",
                         "replace=1",
                         "replace=yes",
                         "replace=%74rue",
                         "replace=true&replace=true",
                         "replace=truex",
                         "replace=true%00",
                         "replace= true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(api_parse_fail_query(bad[i], &replace, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "bad_query");
    }
}

static void test_api_replica_id(void **state)
{
    char id[LIMIT_ID_BYTES];
    assert_int_equal(api_parse_replica_id("r1/fail", 2, id), 0);
    assert_string_equal(id, "r1");
    assert_int_equal(api_parse_replica_id("", 0, id), -1);
    assert_int_equal(api_parse_replica_id("a\nb", 3, id), -1);
    assert_int_equal(api_parse_replica_id("a\0b", 3, id), -1);
    char longer[LIMIT_ID_BYTES + 1];
    memset(longer, 'a', sizeof longer);
    assert_int_equal(api_parse_replica_id(longer, LIMIT_ID_BYTES, id), -1);
    assert_int_equal(api_parse_replica_id(longer, LIMIT_ID_BYTES - 1, id), 0);
}

static enum api_head_result head(const char *b, size_t max_body, struct api_head *h)
{
    return api_parse_head(b, strlen(b), max_body, h);
}

static void test_api_head(void **state)
{
    struct api_head h;
    const char *ok = "POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                     "Content-Type: application/json\r\n\r\n{\"data\":\"a\"}";
    assert_int_equal(head(ok, 100, &h), API_HEAD_READY);
    assert_int_equal(h.head_len, strlen(ok) - 12);
    assert_int_equal(h.body_len, 12);
    assert_false(h.close);
    /* Every prefix of it is worth waiting for; the whole of it with the
     * next request's bytes behind it is ready. */
    for (size_t n = 0; n < strlen(ok); n++) {
        assert_int_equal(api_parse_head(ok, n, 100, &h), API_HEAD_MORE);
    }
    char two[512];
    snprintf(two, sizeof two, "%sPOST /api/req", ok);
    assert_int_equal(head(two, 100, &h), API_HEAD_READY);
    assert_int_equal(h.head_len + h.body_len, strlen(ok));
    /* No headers but the length; an empty body; case and spaces. */
    assert_int_equal(head("POST /api/requests HTTP/1.1\r\ncontent-length:0\r\n\r\n", 100, &h),
                     API_HEAD_READY);
    assert_int_equal(h.body_len, 0);
    assert_int_equal(
        head("POST /api/requests HTTP/1.1\r\nCONTENT-LENGTH: \t 3 \r\nConnection: Keep-Alive, "
             "close\r\n\r\n{}x",
             100, &h),
        API_HEAD_READY);
    assert_int_equal(h.body_len, 3);
    assert_true(h.close);
    /* At the body limit, and one past it (civetweb's 413). */
    assert_int_equal(head("POST /api/requests HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 100, &h),
                     API_HEAD_MORE);
    assert_int_equal(head("POST /api/requests HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100, &h),
                     API_HEAD_OTHER);
    /* Everything else is civetweb's. */
    const char *other[] = {
        "GET /api/requests HTTP/1.1\r\n\r\n",
        "GET /api/ws HTTP/1.1\r\nUpgrade: websocket\r\n",
        "G",
        "post /api/requests HTTP/1.1\r\n",
        "POST /api/requests?x=1 HTTP/1.1\r\n",
        "POST /api/requests/ HTTP/1.1\r\n",
        "POST /api/requests HTTP/1.0\r\n",
        "POST /api/requests HTTP/1.1\n",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\n\r\n",
        "POST /api/requests HTTP/1.1\r\nHost: x\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /api/requests HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nUpgrade: h2c\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nConnection: Upgrade\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nNo colon\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\n: empty name\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nBad Name: x\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nX: a\x01b\r\n\r\n{}",
        "POST /api/requests HTTP/1.1\r\n Content-Length: 2\r\n\r\n{}",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(head(other[i], 100, &h), API_HEAD_OTHER);
    }
    /* A head that never ends within API_HEAD_MAX bytes. */
    size_t big = API_HEAD_MAX + 100;
    char *b = malloc(big + 1);
    int n = snprintf(b, big + 1, "POST /api/requests HTTP/1.1\r\nContent-Length: 2\r\nX: ");
    memset(b + n, 'a', big - (size_t)n);
    b[big] = '\0';
    assert_int_equal(api_parse_head(b, API_HEAD_MAX - 1, 100, &h), API_HEAD_MORE);
    assert_int_equal(api_parse_head(b, API_HEAD_MAX, 100, &h), API_HEAD_OTHER);
    assert_int_equal(api_parse_head(b, big, 100, &h), API_HEAD_OTHER);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),       cmocka_unit_test(test_client_ids),
        cmocka_unit_test(test_utf8),      cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_parse_u64), cmocka_unit_test(test_api_write),
        cmocka_unit_test(test_api_page),  cmocka_unit_test(test_api_replica_id),
        cmocka_unit_test(test_api_head),  cmocka_unit_test(test_api_fail_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
