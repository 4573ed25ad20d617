/*
 * coordinator/tls.c — see tls.h.
 */
#define _GNU_SOURCE /* memfd_create */
#include "tls.h"

#include <civetweb.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PEM_MAX (1u << 20) /* a certificate chain is a few KiB */

/* The whole file, NUL-terminated, or NULL with a reason. */
static char *read_pem(const char *what, const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    bool failed = buf == NULL || ferror(f) != 0;
    int saved = errno;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path,
                 buf ? strerror(saved) : "out of memory");
        free(buf);
        return NULL;
    }
    if (n > PEM_MAX) {
        snprintf(err, errlen, "%s %s is larger than %u bytes", what, path, PEM_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= (size_t)w;
    }
    return true;
}

int tls_pem_open(struct tls_pem *p, const char *cert, const char *key, char *err, size_t errlen)
{
    p->fd = -1;
    p->path[0] = '\0';
    size_t cn = 0, kn = 0;
    char *c = read_pem("the certificate (--tls-cert)", cert, &cn, err, errlen);
    char *k = c ? read_pem("the key (--tls-key)", key, &kn, err, errlen) : NULL;
    int rc = -1;
    if (c == NULL || k == NULL) {
        goto out;
    }
    if (strstr(c, "-----BEGIN CERTIFICATE-----") == NULL) {
        snprintf(err, errlen, "the certificate (--tls-cert) %s holds no PEM certificate", cert);
        goto out;
    }
    if (strstr(k, "PRIVATE KEY-----") == NULL) {
        snprintf(err, errlen, "the key (--tls-key) %s holds no PEM private key", key);
        goto out;
    }
    p->fd = memfd_create("replicacao-tls", MFD_CLOEXEC);
    if (p->fd < 0) {
        snprintf(err, errlen, "cannot hold the certificate and key: memfd_create: %s",
                 strerror(errno));
        goto out;
    }
    /* The certificate (chain) first, as in the PEM files civetweb's
     * documentation shows; OpenSSL finds each block by its type. */
    if (!write_all(p->fd, c, cn) || !write_all(p->fd, "\n", 1) || !write_all(p->fd, k, kn)) {
        snprintf(err, errlen, "cannot hold the certificate and key: %s", strerror(errno));
        tls_pem_close(p);
        goto out;
    }
    snprintf(p->path, sizeof(p->path), "/proc/self/fd/%d", p->fd);
    rc = 0;
out:
    if (k != NULL) {
        explicit_bzero(k, kn);
    }
    free(k);
    free(c);
    return rc;
}

void tls_pem_close(struct tls_pem *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
}

int tls_listening_port(const char *listen, char *out, size_t len)
{
    int n = snprintf(out, len, "%ss", listen);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Open one stand-in (sslcompat.c) from where the build or the install puts
 * it, relative to this binary. */
static int open_compat(const char *dir, const char *part, char *err, size_t errlen)
{
    const char *tries[] = {"%s/libreplicacao-%s.so", "%s/../lib/replicacao/libreplicacao-%s.so"};
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        snprintf(path, sizeof(path), tries[i], dir, part);
        if (access(path, R_OK) != 0) {
            continue;
        }
        /* Kept open for the life of the process (civetweb's lookups). */
        if (dlopen(path, RTLD_NOW | RTLD_GLOBAL) == NULL) {
            snprintf(err, errlen, "--tls-cert: cannot load %s: %s", path, dlerror());
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen,
             "--tls-cert: libreplicacao-%s.so is neither next to the coordinator (%s) nor in "
             "%s/../lib/replicacao",
             part, dir, dir);
    return -1;
}

int tls_load_openssl(char *err, size_t errlen)
{
    if ((mg_check_feature(MG_FEATURES_SSL) & MG_FEATURES_SSL) == 0) {
        snprintf(err, errlen, "--tls-cert: this civetweb was built without HTTPS support");
        return -1;
    }
    char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    dir[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    return open_compat(dir, "crypto", err, errlen) == 0 && open_compat(dir, "ssl", err, errlen) == 0
               ? 0
               : -1;
}

int tls_check(const char *cert, const char *key, char *err, size_t errlen)
{
    if (tls_load_openssl(err, errlen) != 0) {
        return -1;
    }
    struct tls_pem p;
    if (tls_pem_open(&p, cert, key, err, errlen) != 0) {
        return -1;
    }
    tls_pem_close(&p);
    return 0;
}
