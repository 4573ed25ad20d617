/*
 * tests/unit/test_faults.c — the fault lab's two pure halves: the rules a
 * replica holds (common/faults.c: loss, delay, cut, pause, expiry) and the
 * coordinator's faults (coordinator/lab.c: parsing, per-replica rules).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "faults.h"
#include "lab.h"

static struct faults f;

/* ------------------------------------------------------------------------
 * The replica's rules
 * ------------------------------------------------------------------------ */

static void test_no_rules_pass(void **state)
{
    unsigned delay = 99;
    faults_init(&f, 1);
    assert_false(faults_any(&f));
    assert_int_equal(faults_outbound(&f, "r2", 0, &delay), FAULT_PASS);
    assert_int_equal(delay, 0);
    assert_false(faults_cut(&f, "r2", 0));
    assert_false(faults_paused(&f, 0));
    assert_int_equal(faults_next_deadline(&f), 0);
}

static void test_cut_and_delay_per_peer(void **state)
{
    unsigned delay;
    faults_init(&f, 1);
    assert_int_equal(faults_add(&f, 1000, 1, "r2", 1.0, 0, 0), 0);
    assert_int_equal(faults_add(&f, 1000, 2, "r3", 0.0, 200, 0), 0);
    assert_int_equal(faults_add(&f, 1000, 3, "r3", 0.0, 50, 0), 0);
    assert_true(faults_cut(&f, "r2", 1000));
    assert_false(faults_cut(&f, "r3", 1000));
    assert_int_equal(faults_outbound(&f, "r2", 1000, &delay), FAULT_DROP);
    /* The longest delay of the rules naming the peer. */
    assert_int_equal(faults_outbound(&f, "r3", 1000, &delay), FAULT_PASS);
    assert_int_equal(delay, 200);
    assert_int_equal(faults_outbound(&f, "r4", 1000, &delay), FAULT_PASS);
    assert_int_equal(delay, 0);
}

static void test_loss_is_a_share(void **state)
{
    faults_init(&f, 42);
    faults_add(&f, 0, 1, "r2", 0.3, 0, 0);
    unsigned dropped = 0, delay;
    for (int i = 0; i < 10000; i++) {
        dropped += faults_outbound(&f, "r2", 0, &delay) == FAULT_DROP;
    }
    /* 3000 expected; the bounds are 10 standard deviations wide. */
    assert_in_range(dropped, 2540, 3460);
    /* Two rules: independent losses, 1 - 0.7 * 0.5 = 0.65. */
    faults_add(&f, 0, 2, "r2", 0.5, 0, 0);
    dropped = 0;
    for (int i = 0; i < 10000; i++) {
        dropped += faults_outbound(&f, "r2", 0, &delay) == FAULT_DROP;
    }
    assert_in_range(dropped, 6020, 6980);
    assert_false(faults_cut(&f, "r2", 0)); /* lossy is not cut */
}

static void test_expiry(void **state)
{
    unsigned delay;
    faults_init(&f, 1);
    faults_add(&f, 1000, 1, "r2", 1.0, 0, 500);
    faults_add(&f, 1000, 2, "r3", 1.0, 0, 0);
    faults_pause(&f, 1000, 300, 7);
    assert_int_equal(faults_next_deadline(&f), 1300);
    assert_true(faults_paused(&f, 1299));
    assert_int_equal(faults_pause_left(&f, 1200), 100);
    assert_false(faults_expire(&f, 1299));
    assert_true(faults_expire(&f, 1300)); /* the pause is over */
    assert_false(faults_paused(&f, 1300));
    assert_int_equal(faults_pause_left(&f, 1300), 0);
    assert_int_equal(faults_next_deadline(&f), 1500);
    /* An expired rule no longer applies, even before it is dropped. */
    assert_false(faults_cut(&f, "r2", 1500));
    assert_int_equal(faults_outbound(&f, "r2", 1500, &delay), FAULT_PASS);
    assert_true(faults_expire(&f, 1500));
    assert_int_equal(f.n, 1);
    assert_true(faults_cut(&f, "r3", 1 << 30)); /* never expires */
    assert_int_equal(faults_next_deadline(&f), 0);
    faults_clear(&f);
    assert_false(faults_any(&f));
}

static void test_table_is_bounded(void **state)
{
    faults_init(&f, 1);
    for (unsigned i = 0; i < LIMIT_FAULT_RULES; i++) {
        assert_int_equal(faults_add(&f, 0, i, "r2", 0.1, 0, 0), 0);
    }
    assert_int_equal(faults_add(&f, 0, 9, "r2", 0.1, 0, 0), -1);
}

/* ------------------------------------------------------------------------
 * The coordinator's faults
 * ------------------------------------------------------------------------ */

static int parse(const char *body, struct lab_fault *out, struct api_error *err)
{
    return lab_parse_fault(body, strlen(body), out, err);
}

static void test_parse_kinds(void **state)
{
    struct lab_fault lf;
    struct api_error e;
    assert_int_equal(
        parse("{\"kind\":\"partition\",\"groups\":[[\"r1\"],[\"r2\",\"r3\"]]}", &lf, &e), 0);
    assert_int_equal(lf.kind, LAB_PARTITION);
    assert_int_equal(lf.n_ids, 3);
    assert_int_equal(lf.n_groups, 2);
    assert_int_equal(lf.group[0], 0);
    assert_int_equal(lf.group[2], 1);
    assert_int_equal(parse("{\"kind\":\"link\",\"between\":[\"r1\",\"r2\"],\"delay_ms\":200,"
                           "\"loss\":0.3,\"duration_ms\":5000}",
                           &lf, &e),
                     0);
    assert_int_equal(lf.delay_ms, 200);
    assert_true(lf.loss == 0.3);
    assert_int_equal(lf.duration_ms, 5000);
    assert_int_equal(parse("{\"kind\":\"pause\",\"replica\":\"r2\",\"ms\":3000}", &lf, &e), 0);
    assert_int_equal(lf.pause_ms, 3000);
    assert_int_equal(parse("{\"kind\":\"isolate\",\"replica\":\"r1\"}", &lf, &e), 0);
    assert_string_equal(lf.ids[0], "r1");
}

static void test_parse_refusals(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"kind\":\"partition\",\"groups\":[[\"r1\"]]}",
        "{\"kind\":\"partition\",\"groups\":[[\"r1\"],[\"r1\"]]}",
        "{\"kind\":\"link\",\"between\":[\"r1\",\"r2\"],\"loss\":1.01}",
        "{\"kind\":\"link\",\"between\":[\"r1\",\"r2\"],\"delay_ms\":-5}",
        "{\"kind\":\"link\",\"between\":[\"r1\",\"r2\"],\"delay_ms\":60001}",
        "{\"kind\":\"pause\",\"replica\":\"r1\",\"ms\":600001}",
        "{\"kind\":\"isolate\",\"replica\":\"r1\",\"extra\":1}",
        "{\"kind\":\"isolate\",\"replica\":\"r1\"} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct lab_fault lf;
        struct api_error e;
        if (parse(bad[i], &lf, &e) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
        assert_int_equal(e.status, 400);
        assert_true(strlen(e.message) > 0);
    }
}

static void test_timing(void **state)
{
    struct lab_timing t;
    struct api_error e;
    const char *slow = "{\"slow_motion\":10}";
    assert_int_equal(lab_parse_timing(slow, strlen(slow), &t, &e), 0);
    assert_int_equal(t.slow_motion, 10);
    const char *x = "{\"heartbeat_ms\":100,\"election_min_ms\":900,\"election_max_ms\":1800}";
    assert_int_equal(lab_parse_timing(x, strlen(x), &t, &e), 0);
    assert_int_equal(t.slow_motion, 0);
    assert_int_equal(t.election_max_ms, 1800);
    const char *both = "{\"slow_motion\":2,\"heartbeat_ms\":100}";
    assert_int_equal(lab_parse_timing(both, strlen(both), &t, &e), -1);
}

/* Rules for one replica: a partition cuts it from the other groups, an
 * isolated replica from everybody (and everybody from it), a link only
 * between its two ends; expiry is what is left of the fault's life. */
static void test_rules(void **state)
{
    const char *all[] = {"r1", "r2", "r3", "r4"};
    struct lab_rule out[LIMIT_MEMBERS];
    struct lab_fault lf;
    struct api_error e;
    assert_int_equal(
        parse("{\"kind\":\"partition\",\"groups\":[[\"r1\",\"r2\"],[\"r3\"]],\"duration_ms\":1000}",
              &lf, &e),
        0);
    lab_start(&lf, 5, 10000, 0);
    assert_int_equal(lab_rules(&lf, "r1", all, 4, 10400, out), 1);
    assert_string_equal(out[0].peer, "r3");
    assert_true(out[0].loss == 1.0);
    assert_int_equal(out[0].expires_in_ms, 600);
    assert_int_equal(out[0].fault_id, 5);
    assert_int_equal(lab_rules(&lf, "r3", all, 4, 10400, out), 2);
    assert_int_equal(lab_rules(&lf, "r4", all, 4, 10400, out), 0); /* not named */

    assert_int_equal(parse("{\"kind\":\"isolate\",\"replica\":\"r2\"}", &lf, &e), 0);
    lab_start(&lf, 6, 0, 0);
    assert_int_equal(lab_rules(&lf, "r2", all, 4, 0, out), 3);
    assert_int_equal(lab_rules(&lf, "r4", all, 4, 0, out), 1);
    assert_string_equal(out[0].peer, "r2");
    assert_int_equal(out[0].expires_in_ms, 0);

    assert_int_equal(
        parse("{\"kind\":\"link\",\"between\":[\"r1\",\"r3\"],\"delay_ms\":70,\"loss\":0.5}", &lf,
              &e),
        0);
    lab_start(&lf, 7, 0, 0);
    assert_int_equal(lab_rules(&lf, "r3", all, 4, 0, out), 1);
    assert_string_equal(out[0].peer, "r1");
    assert_int_equal(out[0].delay_ms, 70);
    assert_true(out[0].loss == 0.5);
    assert_int_equal(lab_rules(&lf, "r2", all, 4, 0, out), 0);

    assert_int_equal(
        parse("{\"kind\":\"pause\",\"replica\":\"r4\",\"ms\":3000,\"duration_ms\":9000}", &lf, &e),
        0);
    lab_start(&lf, 8, 0, 0);
    assert_int_equal(lf.expires_at, 3000); /* a pause is over when its ms are */
    assert_int_equal(lab_rules(&lf, "r4", all, 4, 0, out), 0);
    assert_int_equal(lab_pause_left(&lf, "r4", 1000), 2000);
    assert_int_equal(lab_pause_left(&lf, "r1", 1000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_rules_pass),
        cmocka_unit_test(test_cut_and_delay_per_peer),
        cmocka_unit_test(test_loss_is_a_share),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_table_is_bounded),
        cmocka_unit_test(test_parse_kinds),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_timing),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
