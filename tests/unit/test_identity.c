/*
 * tests/unit/test_identity.c — a replica's id bound to its data dir
 * (replica/storage/identity.c): generated once for a new dir and read back
 * later, a new dir under the same hostname is a new member, --id keeps
 * working but cannot take over another replica's dir, a dir written before
 * ids were stored keeps the hostname, and bad id files are refused. Every
 * test works in its own mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/identity.h"

struct fx {
    char root[64];
    char dir[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/test_identity.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof(f->dir), "%s/data", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void read_file(const char *dir, const char *name, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(out, 1, len - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

static int bind(const char *dir, const char *explicit_id, const char *host, char *out,
                bool *generated, char *err)
{
    return identity_bind(dir, explicit_id, host, out, 64, generated, err, 256);
}

static void generated_once_then_read_back(void **state)
{
    struct fx *f = *state;
    char id[64], again[64], err[256], text[80];
    bool gen;
    assert_int_equal(bind(f->dir, NULL, "replica-2", id, &gen, err), 0);
    assert_true(gen);
    /* "<host>-<8 hex>" */
    assert_int_equal(strlen(id), strlen("replica-2-") + 8);
    assert_memory_equal(id, "replica-2-", 10);
    assert_int_equal(strspn(id + 10, "0123456789abcdef"), 8);
    read_file(f->dir, IDENTITY_FILE, text, sizeof(text));
    char want[80];
    snprintf(want, sizeof(want), "%s\n", id);
    assert_string_equal(text, want);
    /* Later starts, whatever the hostname is now. */
    assert_int_equal(bind(f->dir, "", "somewhere-else", again, &gen, err), 0);
    assert_false(gen);
    assert_string_equal(again, id);
    /* Its own id given explicitly is fine. */
    assert_int_equal(bind(f->dir, id, "replica-2", again, &gen, err), 0);
    assert_string_equal(again, id);
}

static void empty_dir_same_host_is_a_new_member(void **state)
{
    struct fx *f = *state;
    char first[64], second[64], err[256], cmd[256];
    bool gen;
    assert_int_equal(bind(f->dir, NULL, "replica-1", first, &gen, err), 0);
    /* The volume is lost; the task comes back with the same hostname. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bind(f->dir, NULL, "replica-1", second, &gen, err), 0);
    assert_true(gen);
    assert_string_not_equal(first, second);
    assert_memory_equal(second, "replica-1-", 10);
}

static void explicit_id_is_stored_and_guarded(void **state)
{
    struct fx *f = *state;
    char id[64], err[256] = "";
    bool gen;
    assert_int_equal(bind(f->dir, "r1", "host", id, &gen, err), 0);
    assert_false(gen);
    assert_string_equal(id, "r1");
    /* Without --id the dir still says who it is. */
    assert_int_equal(bind(f->dir, NULL, "host", id, &gen, err), 0);
    assert_string_equal(id, "r1");
    /* Another replica's --id cannot take the dir over. */
    assert_int_equal(bind(f->dir, "r2", "host", id, &gen, err), -EEXIST);
    assert_non_null(strstr(err, "belongs to replica 'r1', not 'r2'"));
}

static void log_without_id_keeps_the_hostname(void **state)
{
    struct fx *f = *state;
    char id[64], err[256];
    bool gen;
    /* A data dir from before ids were stored: a log, no id file. */
    assert_int_equal(mkdir(f->dir, 0755), 0);
    write_file(f->dir, "wal-0000000000000001.seg", "x");
    assert_int_equal(bind(f->dir, NULL, "abc123", id, &gen, err), 0);
    assert_false(gen);
    assert_string_equal(id, "abc123");
    assert_int_equal(bind(f->dir, NULL, "other", id, &gen, err), 0);
    assert_string_equal(id, "abc123");
}

static void long_hostname_is_cut_to_fit(void **state)
{
    struct fx *f = *state;
    char host[200], id[64], err[256];
    bool gen;
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    assert_int_equal(bind(f->dir, NULL, host, id, &gen, err), 0);
    assert_int_equal(strlen(id), 63);
    assert_int_equal(id[54], '-');
}

static void bad_input_is_refused(void **state)
{
    struct fx *f = *state;
    char id[64], err[256] = "";
    bool gen;
    assert_int_equal(mkdir(f->dir, 0755), 0);
    write_file(f->dir, IDENTITY_FILE, "not an id!\n");
    assert_int_equal(bind(f->dir, NULL, "host", id, &gen, err), -EINVAL);
    assert_non_null(strstr(err, "does not hold a replica id"));
    write_file(f->dir, IDENTITY_FILE, "");
    assert_int_equal(bind(f->dir, NULL, "host", id, &gen, err), -EINVAL);
    /* A hostname that cannot be an id, in a new dir. */
    char other[160];
    snprintf(other, sizeof(other), "%s/other", f->root);
    assert_int_equal(bind(other, NULL, "bad host", id, &gen, err), -EINVAL);
    assert_non_null(strstr(err, "give --id"));
    /* A data dir whose parent is missing. */
    snprintf(other, sizeof(other), "%s/missing/data", f->root);
    assert_true(bind(other, NULL, "host", id, &gen, err) < 0);
    assert_non_null(strstr(err, "cannot create data dir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(generated_once_then_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_dir_same_host_is_a_new_member, setup, teardown),
        cmocka_unit_test_setup_teardown(explicit_id_is_stored_and_guarded, setup, teardown),
        cmocka_unit_test_setup_teardown(log_without_id_keeps_the_hostname, setup, teardown),
        cmocka_unit_test_setup_teardown(long_hostname_is_cut_to_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
