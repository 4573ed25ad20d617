/*
 * common/flags.h — command-line flags with environment-variable twins, as
 * both binaries take them: one table drives --help, the environment and
 * getopt_long. A flag given on the command line wins over its variable.
 */
#ifndef COMMON_FLAGS_H
#define COMMON_FLAGS_H

#include <stddef.h>

struct flag {
    const char *name; /* long option, without the dashes */
    const char *env;  /* its environment twin */
    const char *arg;  /* placeholder shown in --help; NULL: a switch, given "true" */
    const char *help;
};

struct flag_set {
    const char *prog;
    const char *about;  /* shown under the usage line */
    const char *footer; /* shown after the flags, or NULL */
    const struct flag *flags;
    size_t n;
    /* Take one value: 0, or -1 when it is not acceptable. */
    int (*apply)(void *ctx, const char *name, const char *value);
    void *ctx;
};

/* 0: carry on; 1: --help was printed (exit 0); 2: an error was printed. */
int flags_parse(const struct flag_set *fs, int argc, char **argv);
/* A decimal number in [min, max] (digits only). 0, or -1. */
int flags_uint(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out);
/* A duration with its unit: "500ms", "30s", "2m", "1h", or "0" (none).
 * At most max_ms. 0 with *out_ms set, or -1. */
int flags_duration_ms(const char *s, unsigned long long max_ms, unsigned long long *out_ms);
/* Copy a text value (a path, an address, a name) that must fit whole in
 * cap bytes and hold no control character. 0, or -1. */
int flags_text(char *dst, size_t cap, const char *v);

#endif
