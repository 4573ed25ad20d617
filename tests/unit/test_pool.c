/*
 * tests/unit/test_pool.c — the pool that holds cached entries and session
 * ids: blocks keep their contents while live, whatever order they are
 * freed in, and memory is handed back once a chunk's blocks are all freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pool.h"

enum { N = 20000 };

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        b[i] = (unsigned char)(seed * 31 + i);
    }
}

static void check(const unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(b[i], (unsigned char)(seed * 31 + i));
    }
}

static size_t size_of(unsigned i)
{
    /* Mostly small, now and then larger than a shared chunk takes. */
    return i % 97 == 0 ? 40000 + i % 5000 : 1 + (i * 7919u) % 300;
}

/* Allocated in order, freed oldest first (the cache's front), newest first
 * (a truncation) and in a scattered order: every live block intact. */
static void test_blocks_survive_any_free_order(void **state)
{
    (void)state;
    static unsigned char *blocks[N];
    struct pool p = {0};
    for (unsigned i = 0; i < N; i++) {
        blocks[i] = pool_alloc(&p, size_of(i));
        assert_non_null(blocks[i]);
        fill(blocks[i], size_of(i), i);
        if (i >= 1000 && i % 3 == 0) { /* FIFO: the oldest live one goes */
            unsigned j = i - 1000;
            if (blocks[j] != NULL) {
                check(blocks[j], size_of(j), j);
                pool_free(blocks[j]);
                blocks[j] = NULL;
            }
        }
    }
    for (unsigned i = N; i-- > N - 500;) { /* a truncation of the newest */
        if (blocks[i] != NULL) {
            check(blocks[i], size_of(i), i);
            pool_free(blocks[i]);
            blocks[i] = NULL;
        }
    }
    for (unsigned k = 0; k < N; k++) { /* the rest, scattered */
        unsigned i = (k * 7877u) % N;
        if (blocks[i] != NULL) {
            check(blocks[i], size_of(i), i);
            pool_free(blocks[i]);
            blocks[i] = NULL;
        }
    }
    pool_destroy(&p);
    pool_free(NULL);
}

/* A chunk whose blocks are all freed is reused, not grown: steady FIFO
 * traffic keeps allocating from the same memory. */
static void test_emptied_chunk_is_reused(void **state)
{
    (void)state;
    struct pool p = {0};
    void *first = pool_alloc(&p, 10);
    pool_free(first);
    void *again = pool_alloc(&p, 10);
    assert_non_null(again);
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(first, again);
#endif
    pool_free(again);
    assert_null(pool_alloc(&p, SIZE_MAX));
    pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_survive_any_free_order),
        cmocka_unit_test(test_emptied_chunk_is_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
