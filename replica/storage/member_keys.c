/*
 * replica/storage/member_keys.c — see member_keys.h.
 */
#include "member_keys.h"
#include "bounds.h"
#include "logging.h"
#include "validate.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEED_BYTES 32

struct pin {
    char id[LIMIT_ID_BYTES];
    uint8_t key[AUTH_KEY_BYTES];
};

struct member_keys {
    char dir[512];
    struct pin *pins; /* oldest first */
    size_t n;
};

/* Write `len` bytes to dir/name through a synced temporary file and a
 * synced rename: after a crash the file is whole, old or new. */
static int store(const char *dir, const char *name, const char *text, size_t len, mode_t mode,
                 char *err, size_t errlen)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (ok && rename(tmp, path) == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        return 0;
    }
    saved = ok ? errno : saved;
    unlink(tmp);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
    return -1;
}

/* Read dir/name whole (at most cap - 1 bytes) into buf: its length, 0
 * when absent, -1 on error. */
static ssize_t load(const char *dir, const char *name, char *buf, size_t cap, char *err,
                    size_t errlen)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

static int member_key(const char *dir, struct peer_auth *auth, char *err, size_t errlen)
{
    char hex[2 * SEED_BYTES + 8];
    uint8_t seed[SEED_BYTES];
    ssize_t n = load(dir, MEMBER_KEY_FILE, hex, sizeof(hex), err, errlen);
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        peer_auth_random(seed, sizeof(seed));
        sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
        size_t len = strlen(hex);
        hex[len++] = '\n';
        if (store(dir, MEMBER_KEY_FILE, hex, len, 0600, err, errlen) != 0) {
            return -1;
        }
    } else {
        size_t got = 0;
        if (sodium_hex2bin(seed, sizeof(seed), hex, (size_t)n, "\n", &got, NULL) != 0 ||
            got != sizeof(seed)) {
            snprintf(err, errlen,
                     "%s/%s does not hold a member key (64 hex digits); it is not ours to fix: "
                     "move the data directory away or restore the file",
                     dir, MEMBER_KEY_FILE);
            return -1;
        }
    }
    peer_auth_member_key_from_seed(auth, seed);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(hex, sizeof(hex));
    return 0;
}

static struct pin *find(struct member_keys *mk, const char *id)
{
    for (size_t i = 0; i < mk->n; i++) {
        if (strcmp(mk->pins[i].id, id) == 0) {
            return &mk->pins[i];
        }
    }
    return NULL;
}

static void add(struct member_keys *mk, const char *id, const uint8_t key[AUTH_KEY_BYTES])
{
    if (mk->n == PEER_KEYS_MAX) {
        memmove(&mk->pins[0], &mk->pins[1], (mk->n - 1) * sizeof(mk->pins[0]));
        mk->n--;
    }
    struct pin *p = &mk->pins[mk->n++];
    snprintf(p->id, sizeof(p->id), "%s", id);
    memcpy(p->key, key, sizeof(p->key));
}

/* Every remembered key, one "id hex" line each. */
static int save(const struct member_keys *mk, char *err, size_t errlen)
{
    size_t line = LIMIT_ID_BYTES + 2 * AUTH_KEY_BYTES + 3;
    char *text = malloc(mk->n * line + 1);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < mk->n; i++) {
        char hex[2 * AUTH_KEY_BYTES + 1];
        sodium_bin2hex(hex, sizeof(hex), mk->pins[i].key, AUTH_KEY_BYTES);
        len += (size_t)snprintf(text + len, line + 1, "%s %s\n", mk->pins[i].id, hex);
    }
    int rc = store(mk->dir, PEER_KEYS_FILE, text, len, 0644, err, errlen);
    free(text);
    return rc;
}

static int load_pins(struct member_keys *mk, char *err, size_t errlen)
{
    size_t cap = (size_t)PEER_KEYS_MAX * (LIMIT_ID_BYTES + 2 * AUTH_KEY_BYTES + 3) + 1;
    char *text = malloc(cap);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ssize_t n = load(mk->dir, PEER_KEYS_FILE, text, cap, err, errlen);
    if (n < 0) {
        free(text);
        return -1;
    }
    char *save_ptr = NULL;
    for (char *l = strtok_r(text, "\n", &save_ptr); l != NULL;
         l = strtok_r(NULL, "\n", &save_ptr)) {
        char *space = strchr(l, ' ');
        uint8_t key[AUTH_KEY_BYTES];
        size_t got = 0;
        if (space != NULL) {
            *space = '\0';
        }
        if (space == NULL || !validate_id(l) ||
            sodium_hex2bin(key, sizeof(key), space + 1, strlen(space + 1), NULL, &got, NULL) != 0 ||
            got != sizeof(key)) {
            log_warn("%s/%s: skipping a line that is not \"id key\"", mk->dir, PEER_KEYS_FILE);
            continue;
        }
        struct pin *p = find(mk, l);
        if (p != NULL) {
            memcpy(p->key, key, sizeof(key));
        } else {
            add(mk, l, key);
        }
    }
    free(text);
    return 0;
}

static int admit(void *arg, const char *id, const uint8_t key[AUTH_KEY_BYTES], char *why,
                 size_t len)
{
    struct member_keys *mk = arg;
    struct pin *p = find(mk, id);
    if (p != NULL) {
        if (sodium_memcmp(p->key, key, AUTH_KEY_BYTES) == 0) {
            return 0;
        }
        snprintf(why, len,
                 "replica %s signed with a member key other than the one it first joined with: "
                 "another process claims its id",
                 id);
        return -1;
    }
    add(mk, id, key);
    char err[256];
    if (save(mk, err, sizeof(err)) != 0) {
        /* Remembered for this run; a full disk must not keep members out. */
        log_warn("member %s's key is not saved: %s", id, err);
    } else {
        log_info("member %s's key remembered", id);
    }
    return 0;
}

int member_keys_open(const char *dir, const char *self_id, struct peer_auth *auth,
                     struct member_keys **out, char *err, size_t errlen)
{
    struct member_keys *mk = calloc(1, sizeof(*mk));
    if (mk != NULL) {
        mk->pins = calloc(PEER_KEYS_MAX, sizeof(*mk->pins));
    }
    if (mk == NULL || mk->pins == NULL) {
        member_keys_free(mk);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(mk->dir, sizeof(mk->dir), "%s", dir);
    if (member_key(dir, auth, err, errlen) != 0 || load_pins(mk, err, errlen) != 0) {
        member_keys_free(mk);
        return -1;
    }
    /* Our own id is ours: another process that claims it is refused. */
    struct pin *self = find(mk, self_id);
    if (self != NULL) {
        memcpy(self->key, auth->member_pk, AUTH_KEY_BYTES);
    } else {
        add(mk, self_id, auth->member_pk);
    }
    auth->admit_member = admit;
    auth->admit_arg = mk;
    *out = mk;
    return 0;
}

void member_keys_free(struct member_keys *mk)
{
    if (mk != NULL) {
        free(mk->pins);
        free(mk);
    }
}
