/*
 * common/flags.c — see flags.h.
 */
#include "flags.h"
#include "validate.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(const struct flag_set *fs, FILE *out)
{
    fprintf(out, "usage: %s [options]\n\n%s\n\n", fs->prog, fs->about);
    for (size_t i = 0; i < fs->n; i++) {
        char left[64];
        const char *arg = fs->flags[i].arg;
        snprintf(left, sizeof(left), "--%s%s%s", fs->flags[i].name, arg ? " " : "", arg ? arg : "");
        fprintf(out, "  %-30s %s\n  %-30s [$%s]\n", left, fs->flags[i].help, "", fs->flags[i].env);
    }
    fprintf(out, "  %-30s %s\n", "--help", "this text");
    if (fs->footer != NULL) {
        fprintf(out, "\n%s\n", fs->footer);
    }
}

int flags_uint(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    uint64_t v;
    if (parse_u64(s, min, max, &v) != 0) {
        return -1;
    }
    *out = v;
    return 0;
}

int flags_duration_ms(const char *s, unsigned long long max_ms, unsigned long long *out_ms)
{
    static const struct {
        const char *unit;
        unsigned long long ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    size_t digits = strspn(s, "0123456789");
    char number[24];
    if (digits == 0 || digits >= sizeof(number)) {
        return -1;
    }
    memcpy(number, s, digits);
    number[digits] = '\0';
    uint64_t v;
    if (parse_u64(number, 0, max_ms, &v) != 0) {
        return -1;
    }
    if (s[digits] == '\0') {
        *out_ms = v; /* only "0" may go without a unit */
        return v == 0 ? 0 : -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s + digits, units[i].unit) == 0) {
            if (v > max_ms / units[i].ms) {
                return -1;
            }
            *out_ms = v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

int flags_text(char *dst, size_t cap, const char *v)
{
    size_t len = strlen(v);
    if (!validate_text(v, len, cap)) {
        return -1;
    }
    memcpy(dst, v, len + 1);
    return 0;
}

/* A switch's environment twin: 1/true/yes sets it, 0/false/no leaves
 * it unset; NULL for anything else. */
static const char *switch_value(const char *v)
{
    static const char *const on[] = {"1", "true", "yes"}, *const off[] = {"0", "false", "no"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(v, on[i]) == 0) {
            return "true";
        }
        if (strcmp(v, off[i]) == 0) {
            return "";
        }
    }
    return NULL;
}

int flags_parse(const struct flag_set *fs, int argc, char **argv)
{
    for (size_t i = 0; i < fs->n; i++) {
        const char *v = getenv(fs->flags[i].env);
        if (v != NULL && fs->flags[i].arg == NULL) {
            const char *sw = switch_value(v);
            if (sw == NULL) {
                fprintf(stderr, "%s: $%s wants 1/true/yes or 0/false/no, not '%s'\n", fs->prog,
                        fs->flags[i].env, v);
                return 2;
            }
            v = sw;
        }
        if (v != NULL && *v != '\0' && fs->apply(fs->ctx, fs->flags[i].name, v) != 0) {
            fprintf(stderr, "%s: bad value '%s' in $%s\n", fs->prog, v, fs->flags[i].env);
            return 2;
        }
    }
    struct option *longopts = calloc(fs->n + 2, sizeof(*longopts));
    if (longopts == NULL) {
        return 2;
    }
    for (size_t i = 0; i < fs->n; i++) {
        int has_arg = fs->flags[i].arg ? required_argument : no_argument;
        longopts[i] = (struct option){fs->flags[i].name, has_arg, NULL, (int)i};
    }
    longopts[fs->n] = (struct option){"help", no_argument, NULL, 'h' + 1000};
    int rc = 0, opt;
    while (rc == 0 && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h' + 1000) {
            usage(fs, stdout);
            rc = 1;
        } else if (opt < 0 || (size_t)opt >= fs->n) {
            usage(fs, stderr);
            rc = 2;
        } else if (fs->apply(fs->ctx, fs->flags[opt].name, optarg ? optarg : "true") != 0) {
            fprintf(stderr, "%s: bad value '%s' for --%s\n", fs->prog, optarg, fs->flags[opt].name);
            rc = 2;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", fs->prog, argv[optind]);
        rc = 2;
    }
    free(longopts);
    return rc;
}
