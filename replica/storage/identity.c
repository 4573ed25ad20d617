/*
 * replica/storage/identity.c — see identity.h.
 */
#include "identity.h"
#include "bounds.h"
#include "validate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_NAME IDENTITY_FILE ".tmp"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Reads dir/id into out: 1 found, 0 absent, <0 error. */
static int read_id(int dfd, const char *dir, char *out, size_t outlen, char *err, size_t errlen)
{
    int fd = openat(dfd, IDENTITY_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return fail(err, errlen, -errno, "cannot open %s/%s: %s", dir, IDENTITY_FILE,
                    strerror(errno));
    }
    char buf[LIMIT_ID_BYTES + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int saved = errno;
    close(fd);
    if (n < 0) {
        return fail(err, errlen, -saved, "cannot read %s/%s: %s", dir, IDENTITY_FILE,
                    strerror(saved));
    }
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    }
    if (!validate_id(buf) || (size_t)n >= outlen) {
        return fail(err, errlen, -EINVAL,
                    "%s/%s does not hold a replica id (1 to %d characters of A-Z a-z 0-9 . _ : "
                    "-); it is not ours to fix: move the directory away or restore the file",
                    dir, IDENTITY_FILE, LIMIT_ID_BYTES - 1);
    }
    memcpy(out, buf, (size_t)n + 1);
    return 1;
}

/* Whether dir holds anything of a log: any entry besides the id file and
 * what an aborted write of it left. Conservative on purpose: an unknown
 * file means data we must not disown. */
static int holds_data(int dfd, const char *dir, bool *data, char *err, size_t errlen)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return fail(err, errlen, rc, "cannot list %s: %s", dir, strerror(-rc));
    }
    struct dirent *de;
    *data = false;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && strcmp(name, TMP_NAME) != 0 &&
            strcmp(name, "wal.lock") != 0) {
            *data = true;
        }
    }
    closedir(d);
    return 0;
}

/* "<host>-<8 hex>", host cut so the whole fits an id. */
static int generate(const char *host, char *out, size_t outlen, char *err, size_t errlen)
{
    uint32_t r;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        return fail(err, errlen, -errno, "getrandom: %s", strerror(errno));
    }
    size_t room = (outlen < LIMIT_ID_BYTES ? outlen : LIMIT_ID_BYTES) - 1 - 9;
    snprintf(out, outlen, "%.*s-%08x", (int)room, host, (unsigned)r);
    return 0;
}

/* id -> dir/id through a synced temporary file and a synced rename: after a
 * crash the file is either absent (the next start generates again, nothing
 * was done under the first id) or complete. */
static int store(int dfd, const char *dir, const char *id, char *err, size_t errlen)
{
    int fd = openat(dfd, TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return fail(err, errlen, -errno, "cannot create %s/%s: %s", dir, TMP_NAME, strerror(errno));
    }
    char line[LIMIT_ID_BYTES + 1];
    int n = snprintf(line, sizeof(line), "%s\n", id);
    int rc = 0;
    if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
        rc = -(errno ? errno : EIO);
    }
    close(fd);
    if (rc == 0 && (renameat(dfd, TMP_NAME, dfd, IDENTITY_FILE) != 0 || fsync(dfd) != 0)) {
        rc = -errno;
    }
    if (rc != 0) {
        unlinkat(dfd, TMP_NAME, 0);
        return fail(err, errlen, rc, "cannot store the id in %s/%s: %s", dir, IDENTITY_FILE,
                    strerror(-rc));
    }
    return 0;
}

/* Creates dir's last level, syncing its parent so the entry survives. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) != 0) {
        if (errno == EEXIST) {
            return 0;
        }
        return fail(err, errlen, -errno, "cannot create data dir %s: %s", dir, strerror(errno));
    }
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        strcpy(parent, ".");
    } else if (slash == parent) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

int identity_bind(const char *dir, const char *explicit_id, const char *host, char *out,
                  size_t outlen, bool *generated, char *err, size_t errlen)
{
    bool has_explicit = explicit_id != NULL && explicit_id[0] != '\0';
    *generated = false;
    if (outlen < 2) {
        return fail(err, errlen, -EINVAL, "no room for an id");
    }
    int rc = make_dir(dir, err, errlen);
    if (rc < 0) {
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return fail(err, errlen, -errno, "cannot open data dir %s: %s", dir, strerror(errno));
    }
    char stored[LIMIT_ID_BYTES];
    rc = read_id(dfd, dir, stored, sizeof(stored), err, errlen);
    if (rc > 0) {
        close(dfd);
        if (has_explicit && strcmp(stored, explicit_id) != 0) {
            return fail(err, errlen, -EEXIST,
                        "data dir %s belongs to replica '%s', not '%s' (--id): give each replica "
                        "its own data dir, or start with an empty one to join as a new member",
                        dir, stored, explicit_id);
        }
        snprintf(out, outlen, "%s", stored);
        return 0;
    }
    bool data = false;
    if (rc == 0) {
        rc = holds_data(dfd, dir, &data, err, errlen);
    }
    if (rc == 0) {
        if (has_explicit) {
            snprintf(out, outlen, "%s", explicit_id);
        } else if (data) {
            snprintf(out, outlen, "%s", host);
        } else {
            rc = generate(host, out, outlen, err, errlen);
            *generated = rc == 0;
        }
    }
    if (rc == 0 && !validate_id(out)) {
        rc = fail(err, errlen, -EINVAL,
                  "'%s' is not a valid id (1 to %d characters of A-Z a-z 0-9 . _ : -); give "
                  "--id",
                  out, LIMIT_ID_BYTES - 1);
    }
    if (rc == 0) {
        rc = store(dfd, dir, out, err, errlen);
    }
    close(dfd);
    return rc;
}
