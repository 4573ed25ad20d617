/*
 * tests/unit/test_coord_view.c — the coordinator's typed view
 * (coordinator/view.c): the configuration fields of /api/cluster and the
 * reason /readyz gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "view.h"

/* A view of n replicas (r1..rn), `up` of them connected, with a
 * configuration of `voters` voters of which `reachable` are reachable. */
static struct view *make(size_t n, size_t up, size_t voters, unsigned reachable)
{
    struct view_replica *reps;
    struct view_peer *peers;
    struct view *v = view_alloc(n, 0, &reps, &peers);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        snprintf(reps[i].id, sizeof(reps[i].id), "r%zu", i + 1);
        reps[i].status = i < up ? REACH_UP : REACH_DOWN;
        reps[i].role = ROLE_BACKUP;
        reps[i].member = i < voters;
        reps[i].voter = i < voters;
    }
    for (size_t i = 0; i < voters; i++) {
        snprintf(v->voters[i], LIMIT_ID_BYTES, "r%zu", i + 1);
    }
    v->n_voters = voters;
    v->quorum = voters ? (unsigned)voters / 2 + 1 : 0;
    v->reachable_voters = reachable;
    return v;
}

static void test_ready_with_primary(void **state)
{
    (void)state;
    struct view *v = make(3, 3, 3, 3);
    struct view_replica *reps = (struct view_replica *)v->replicas;
    reps[1].role = ROLE_PRIMARY;
    reps[1].epoch = 4;
    v->primary = &reps[1];
    char reason[200];
    assert_true(view_ready(v, reason, sizeof(reason)));
    assert_string_equal(reason, "r2 is primary in epoch 4");
    /* A primary the coordinator lost is no primary. */
    reps[1].status = REACH_DOWN;
    assert_false(view_ready(v, reason, sizeof(reason)));
    view_release(v);
}

static void test_not_ready_reasons(void **state)
{
    (void)state;
    char reason[200];
    assert_false(view_ready(NULL, reason, sizeof(reason)));
    assert_string_equal(reason, "no replica is reachable");

    struct view *v = make(5, 0, 5, 0);
    assert_false(view_ready(v, reason, sizeof(reason)));
    assert_string_equal(reason, "no replica is reachable");
    view_release(v);

    v = make(5, 2, 5, 2);
    assert_false(view_ready(v, reason, sizeof(reason)));
    assert_string_equal(reason, "no primary: 2 of 5 voters reachable - a majority needs 3");
    view_release(v);

    v = make(3, 3, 3, 3);
    assert_false(view_ready(v, reason, sizeof(reason)));
    assert_string_equal(reason,
                        "no primary elected yet: 3 of 3 voters reachable (a majority needs 2)");
    view_release(v);

    v = make(2, 2, 0, 0);
    assert_false(view_ready(v, reason, sizeof(reason)));
    assert_string_equal(reason, "no primary: the cluster is still forming (2 replicas reachable)");
    view_release(v);
}

static void test_json_has_the_configuration(void **state)
{
    (void)state;
    struct view *v = make(4, 4, 3, 3);
    snprintf(v->cluster_id, sizeof(v->cluster_id), "abc123");
    snprintf(v->learners[0], LIMIT_ID_BYTES, "r4");
    v->n_learners = 1;
    v->config_index = 9;
    v->spawn = true;
    ((struct view_replica *)v->replicas)[3].start_failed = true;
    const char *json = view_json(v);
    assert_non_null(json);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "cluster_id")->valuestring, "abc123");
    assert_int_equal(cJSON_GetObjectItem(o, "config_index")->valueint, 9);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "voters")), 3);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "learners"), 0)->valuestring,
                        "r4");
    assert_int_equal(cJSON_GetObjectItem(o, "quorum")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(o, "reachable_voters")->valueint, 3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "spawn")));
    cJSON *reps = cJSON_GetObjectItem(o, "replicas");
    cJSON *r1 = cJSON_GetArrayItem(reps, 0), *r4 = cJSON_GetArrayItem(reps, 3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r1, "member")));
    assert_null(cJSON_GetObjectItem(r1, "start_failed"));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r4, "member")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r4, "start_failed")));
    cJSON_Delete(o);
    view_release(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_with_primary),
        cmocka_unit_test(test_not_ready_reasons),
        cmocka_unit_test(test_json_has_the_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
