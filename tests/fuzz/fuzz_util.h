/*
 * tests/fuzz/fuzz_util.h — what every fuzz target shares: reading structured
 * values out of the fuzzer's bytes, and invariant checks that abort (which
 * libFuzzer reports as a crash, saving the input that caused it).
 *
 * Reading past the end of the input yields zeros, so a target never has to
 * check lengths: a short input is simply a run with small values.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry point libFuzzer calls, declared for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set by a target that must undo something before the process dies on a
 * failed check (fuzz_wal: its temp dir). */
static void (*fuzz_cleanup)(void);

/* An invariant of the code under test. On failure: which one and why, on
 * stderr, then abort(): libFuzzer prints the stack and writes the input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "\n%s:%d: INVARIANT FAILED: %s\n  ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            if (fuzz_cleanup != NULL) {                                                            \
                fuzz_cleanup();                                                                    \
            }                                                                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t in_u8(struct fuzz_in *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static inline uint16_t in_u16(struct fuzz_in *in)
{
    uint16_t v = in_u8(in);
    return (uint16_t)(v | (uint16_t)in_u8(in) << 8);
}

static inline uint32_t in_u32(struct fuzz_in *in)
{
    uint32_t v = in_u16(in);
    return v | (uint32_t)in_u16(in) << 16;
}

static inline uint64_t in_u64(struct fuzz_in *in)
{
    uint64_t v = in_u32(in);
    return v | (uint64_t)in_u32(in) << 32;
}

static inline bool in_bool(struct fuzz_in *in)
{
    return in_u8(in) & 1;
}

/* Up to n bytes (fewer at the end of the input); returns how many. */
static inline size_t in_bytes(struct fuzz_in *in, size_t n, const uint8_t **out)
{
    if (n > in->left) {
        n = in->left;
    }
    *out = in->p;
    in->p += n;
    in->left -= n;
    return n;
}

/* A malloc'ed copy of exactly n bytes (at least one byte is allocated), so
 * that AddressSanitizer catches a read one past the end. */
static inline void *fuzz_dup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d == NULL) {
        abort();
    }
    if (n) {
        memcpy(d, p, n);
    }
    return d;
}

/* A NUL-terminated malloc'ed copy of n bytes. */
static inline char *fuzz_strndup(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL) {
        abort();
    }
    if (n) {
        memcpy(d, p, n);
    }
    d[n] = '\0';
    return d;
}

#endif
