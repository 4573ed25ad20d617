/*
 * tests/integration/harness.c — see harness.h.
 *
 * Sections: failing and cleaning up, ports, processes, private mounts,
 * status and waiting, the writer, committed logs, raw sockets.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "clock.h"
#include "peer_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *g_binary;
static const char *g_name = "integration";
static char g_dir[256];
static struct it_cluster *g_cl;
static int64_t g_t0;
static pthread_t g_main_thread;
static pthread_mutex_t g_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_passed;

/* ========================================================================
 * Small things
 * ====================================================================== */

int64_t it_now_ms(void)
{
    return clock_mono_ms();
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void it_log(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int64_t t = it_now_ms() - g_t0;
    /* One write per line so threads do not interleave within a line. */
    printf("[%s +%lld.%03lld] %s\n", g_name, (long long)(t / 1000), (long long)(t % 1000), msg);
    fflush(stdout);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        IT_FAIL("out of memory");
    }
    return q;
}

/* ========================================================================
 * Failing and cleaning up
 * ====================================================================== */

static void describe_status(int st, char *out, size_t len)
{
    if (WIFEXITED(st)) {
        snprintf(out, len, "exited with status %d", WEXITSTATUS(st));
    } else if (WIFSIGNALED(st)) {
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        snprintf(out, len, "wait status 0x%x", st);
    }
}

static bool is_noise(const char *line)
{
    return strstr(line, "closing client it-") != NULL;
}

static void print_tail(const char *path, unsigned lines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("  (no log: %s)\n", strerror(errno));
        return;
    }
    /* Remember where the last `lines` lines start with a ring of offsets.
     * The harness's own short-lived connections (status polls, reads, writer
     * reconnects) each log a close; they are skipped so the tail shows the
     * protocol's story. */
    long ring[64] = {0};
    unsigned n = 0;
    int prev = '\n';
    long off = 0;
    char buf[1024];
    for (;;) {
        long start = off;
        if (fgets(buf, sizeof(buf), f) == NULL) {
            break;
        }
        off += (long)strlen(buf);
        if (prev == '\n' && !is_noise(buf)) {
            ring[n++ % lines] = start;
        }
        prev = buf[strlen(buf) - 1];
    }
    unsigned first = n > lines ? n - lines : 0;
    if (n > 0) {
        fseek(f, ring[first % lines], SEEK_SET);
    }
    while (fgets(buf, sizeof(buf), f) != NULL) {
        if (is_noise(buf)) {
            continue;
        }
        printf("  | %s", buf);
        if (strchr(buf, '\n') == NULL) {
            printf("\n");
        }
    }
    fclose(f);
}

/* A replica that hangs instead of exiting: keep its threads' stacks for
 * the report, when gdb is there to take them. */
static void dump_stacks(const struct it_replica *r)
{
    if (system("command -v gdb >/dev/null 2>&1") != 0) {
        return;
    }
    char cmd[1400];
    /* Thread states first: a sanitizer's tracer may hold the process. */
    snprintf(cmd, sizeof(cmd),
             "(for t in /proc/%d/task/*; do echo \"$t $(cut -d' ' -f3 $t/stat) $(cat $t/wchan)\"; "
             "done; ps -o pid,ppid,stat,wchan:32,cmd --ppid %d; "
             "gdb -batch -p %d -ex 'thread apply all bt') >'%s.stacks' 2>&1 </dev/null",
             (int)r->pid, (int)r->pid, (int)r->pid, r->log_path);
    if (system(cmd) != -1) {
        printf("[%s] stacks of the hung %s: %s.stacks\n", g_name, r->id, r->log_path);
        char path[600];
        snprintf(path, sizeof(path), "%s.stacks", r->log_path);
        print_tail(path, 60);
    }
}

/* Stop every process we started: SIGTERM, then SIGKILL whatever is left
 * after timeout_ms; reap all. A paused replica also gets SIGCONT, or it
 * could not act on the SIGTERM; a running one does not, because a stray
 * SIGCONT was seen to leave LeakSanitizer's exit-time check hung (its tracer
 * waiting for a thread that never stopped: 2 runs in 20 with it, 0 in 100
 * without). Returns how many did not exit with status 0. */
static unsigned stop_all(struct it_cluster *cl, int timeout_ms, bool report)
{
    if (cl == NULL) {
        return 0;
    }
    unsigned unclean = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        if (cl->r[i].pid > 0) {
            kill(cl->r[i].pid, SIGTERM);
            if (cl->r[i].paused) {
                kill(cl->r[i].pid, SIGCONT);
            }
        }
    }
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        bool left = false;
        for (unsigned i = 0; i < cl->n; i++) {
            struct it_replica *r = &cl->r[i];
            if (r->pid <= 0) {
                continue;
            }
            int st;
            pid_t w = waitpid(r->pid, &st, WNOHANG);
            if (w == 0) {
                left = true;
                continue;
            }
            if (w == r->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                unclean++;
                if (report) {
                    char d[96];
                    describe_status(st, d, sizeof(d));
                    printf("[%s] replica %s (pid %d) did not stop cleanly after SIGTERM: %s "
                           "(log %s)\n",
                           g_name, r->id, (int)r->pid, d, r->log_path);
                }
            }
            r->pid = 0;
            r->paused = false;
        }
        if (!left) {
            break;
        }
        if (it_now_ms() > deadline) {
            for (unsigned i = 0; i < cl->n; i++) {
                if (cl->r[i].pid > 0) {
                    printf("[%s] replica %s (pid %d) ignored SIGTERM for %d ms: SIGKILL\n", g_name,
                           cl->r[i].id, (int)cl->r[i].pid, timeout_ms);
                    dump_stacks(&cl->r[i]);
                    kill(cl->r[i].pid, SIGKILL);
                    waitpid(cl->r[i].pid, NULL, 0);
                    cl->r[i].pid = 0;
                    unclean++;
                }
            }
            break;
        }
        it_sleep_ms(10);
    }
    return unclean;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The tmpfs data dirs go before the run dir can; after a failure their
 * data dirs are copied next to the logs first, since the mounts vanish with
 * the test process. The replicas must be stopped. */
static void unmount_all(struct it_cluster *cl, bool keep)
{
    if (cl == NULL) {
        return;
    }
    for (unsigned i = 0; i < cl->n; i++) {
        struct it_replica *r = &cl->r[i];
        if (r->mount[0] == '\0') {
            continue;
        }
        if (keep) {
            char cmd[1400];
            snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s/%s-data' 2>/dev/null", r->data_dir, g_dir,
                     r->id);
            if (system(cmd) == 0) {
                printf("[%s] copied %s's tmpfs data dir to %s/%s-data\n", g_name, r->id, g_dir,
                       r->id);
            }
        }
        if (umount2(r->mount, MNT_DETACH) != 0) {
            printf("[%s] umount %s: %s\n", g_name, r->mount, strerror(errno));
        }
        rmdir(r->mount);
        r->mount[0] = '\0';
    }
}

/* A sanitizer report's head (what, where, freed by whom) is what matters,
 * and it may be far from the tail: print it separately. */
static void print_sanitizer_report(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    char buf[1024];
    int left = -1;
    while (fgets(buf, sizeof(buf), f) != NULL && left != 0) {
        if (left < 0 &&
            (strstr(buf, "Sanitizer") != NULL || strstr(buf, "runtime error:") != NULL)) {
            printf("  sanitizer report:\n");
            left = 30;
        }
        if (left > 0) {
            printf("  ! %s", buf);
            left--;
        }
    }
    fclose(f);
}

static void print_logs(void)
{
    if (g_cl == NULL) {
        return;
    }
    for (unsigned i = 0; i < g_cl->n; i++) {
        printf("---- %s: last lines of %s\n", g_cl->r[i].id, g_cl->r[i].log_path);
        print_tail(g_cl->r[i].log_path, 40);
        print_sanitizer_report(g_cl->r[i].log_path);
    }
}

void it_fail(const char *file, int line, const char *fmt, ...)
{
    /* The first failing thread reports and exits; any other blocks here
     * until the process is gone. */
    pthread_mutex_lock(&g_fail_lock);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fflush(stdout);
    printf("[%s] FAIL %s:%d: %s\n", g_name, file, line, msg);
    stop_all(g_cl, 3000, true);
    print_logs();
    unmount_all(g_cl, true);
    if (g_dir[0] != '\0') {
        printf("[%s] kept the run directory %s (data dirs and logs)\n", g_name, g_dir);
    }
    fflush(stdout);
    g_cl = NULL; /* stopped already: the exit handler has nothing left */
    exit(1);
}

static void at_exit(void)
{
    if (g_passed || g_cl == NULL) {
        return;
    }
    printf("[%s] exiting without it_finish: stopping the replicas\n", g_name);
    stop_all(g_cl, 3000, true);
    unmount_all(g_cl, true);
    printf("[%s] kept the run directory %s\n", g_name, g_dir);
    fflush(stdout);
}

void it_skip(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    stop_all(g_cl, 3000, true);
    unmount_all(g_cl, false);
    g_cl = NULL;
    if (g_dir[0] != '\0') {
        rm_rf(g_dir);
    }
    printf("[%s] SKIP: %s\n", g_name, msg);
    fflush(stdout);
    exit(IT_SKIP_CODE);
}

/* The test itself got a fatal signal: only async-signal-safe calls here.
 * SIGKILL every replica by pid, then die of the same signal. */
static void on_fatal_signal(int sig)
{
    if (g_cl != NULL) {
        for (unsigned i = 0; i < g_cl->n; i++) {
            if (g_cl->r[i].pid > 0) {
                kill(g_cl->r[i].pid, SIGKILL);
            }
        }
    }
    static const char msg[] = "integration test: fatal signal, replicas killed\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig);
}

void it_init(int argc, char **argv, const char *name)
{
    g_t0 = it_now_ms();
    g_name = name;
    g_main_thread = pthread_self();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || access(argv[1], X_OK) != 0) {
        fprintf(stderr, "usage: %s PATH_TO_REPLICA_BINARY\n", argv[0]);
        exit(2);
    }
    g_binary = argv[1];
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/replicacao-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (mkdtemp(g_dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_dir, strerror(errno));
        exit(2);
    }
    atexit(at_exit);
    int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
        signal(fatal[i], on_fatal_signal);
    }
    /* Our raw sockets may write to a closed connection; the replicas get the
     * default back before exec. */
    signal(SIGPIPE, SIG_IGN);
    it_log("run directory %s, replica binary %s", g_dir, g_binary);
}

/* ========================================================================
 * Ports
 * ====================================================================== */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Ports stay fixed across restarts, so they must not be in the kernel's
 * ephemeral range, where any outgoing connection (ours or a parallel
 * test's) could take one while its replica is down. Below that range, a
 * slot of 16 chosen from the pid keeps parallel ctest runs apart, and a
 * bind probe skips ports someone else holds. */
static void pick_ports(struct it_cluster *cl)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2) {
            lo = 32768;
        }
        fclose(f);
    }
    int base = 10000, top = lo - 1;
    if (top - base < 1000) {
        base = hi + 1; /* an unusual range: use what lies above it */
        top = 65535;
    }
    const int span = 16;
    unsigned slots = (unsigned)(top - base) / span;
    unsigned slot = ((unsigned)getpid() * 2654435761u) % slots;
    for (unsigned tries = 0; tries < slots; tries++, slot = (slot + 1) % slots) {
        unsigned got = 0;
        for (int p = base + (int)slot * span; p < base + ((int)slot + 1) * span && got < cl->n;
             p++) {
            if (port_free(p)) {
                snprintf(cl->r[got++].addr, sizeof(cl->r[0].addr), "127.0.0.1:%d", p);
            }
        }
        if (got == cl->n) {
            return;
        }
    }
    IT_FAIL("no free loopback ports between %d and %d", base, top);
}

/* ========================================================================
 * Processes
 * ====================================================================== */

struct it_cluster *it_cluster_new(unsigned n)
{
    if (n == 0 || n > IT_MAX_REPLICAS) {
        IT_FAIL("cluster size %u", n);
    }
    struct it_cluster *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        IT_FAIL("out of memory");
    }
    cl->n = n;
    cl->heartbeat_ms = 50;
    cl->election_min_ms = 300;
    cl->election_max_ms = 600;
    pick_ports(cl);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        struct it_replica *r = &cl->r[i];
        char id[16], addr[sizeof(r->addr)];
        snprintf(id, sizeof(id), "r%u", i + 1);
        memcpy(addr, r->addr, sizeof(addr));
        snprintf(r->id, sizeof(r->id), "%s", id);
        snprintf(r->data_dir, sizeof(r->data_dir), "%s/%s", g_dir, id);
        snprintf(r->log_path, sizeof(r->log_path), "%s/%s.log", g_dir, id);
        off +=
            (size_t)snprintf(cl->peers + off, sizeof(cl->peers) - off, "%s%s", i ? "," : "", addr);
    }
    g_cl = cl;
    it_log("cluster of %u: %s", n, cl->peers);
    return cl;
}

void it_cluster_secret(struct it_cluster *cl)
{
    static struct peer_auth auth; /* the client keeps a pointer */
    char err[256];
    snprintf(cl->secret_file, sizeof(cl->secret_file), "%s/cluster-secret", g_dir);
    if (peer_auth_create_secret(cl->secret_file, err, sizeof(err)) != 0 ||
        peer_auth_load(&auth, cl->secret_file, err, sizeof(err)) != 0) {
        IT_FAIL("%s", err);
    }
    client_use_auth(&auth);
}

bool it_up(const struct it_cluster *cl, unsigned i)
{
    return cl->r[i].pid > 0 && !cl->r[i].paused;
}

void it_start(struct it_cluster *cl, unsigned i)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid == 0, "%s is already running", r->id);
    char hb[16], emin[16], emax[16], size[16], seg[16];
    snprintf(hb, sizeof(hb), "%u", cl->heartbeat_ms);
    snprintf(emin, sizeof(emin), "%u", cl->election_min_ms);
    snprintf(emax, sizeof(emax), "%u", cl->election_max_ms);
    snprintf(size, sizeof(size), "%u", cl->initial_size ? cl->initial_size : cl->n);
    snprintf(seg, sizeof(seg), "%u", cl->segment_bytes);
    char *argv[32] = {(char *)g_binary,
                      "--id",
                      r->id,
                      "--name",
                      r->id,
                      "--listen",
                      r->addr,
                      "--advertise",
                      r->addr,
                      "--peers",
                      cl->peers,
                      "--initial-size",
                      size,
                      "--data-dir",
                      r->data_dir,
                      "--heartbeat-ms",
                      hb,
                      "--election-min-ms",
                      emin,
                      "--election-max-ms",
                      emax,
                      NULL};
    size_t na = 0;
    while (argv[na] != NULL) {
        na++;
    }
    if (cl->segment_bytes > 0) {
        argv[na++] = "--segment-bytes";
        argv[na++] = seg;
    }
    if (cl->secret_file[0] != '\0') {
        argv[na++] = "--cluster-secret-file";
        argv[na++] = cl->secret_file;
    }
    /* The replica reads REPLICA_* from the environment: keep the caller's
     * from leaking in. Built before fork: the child only execs. */
    size_t n_env = 0;
    while (environ[n_env] != NULL) {
        n_env++;
    }
    char **envp = calloc(n_env + 1, sizeof(*envp));
    if (envp == NULL) {
        IT_FAIL("out of memory");
    }
    size_t k = 0;
    for (size_t j = 0; j < n_env; j++) {
        if (strncmp(environ[j], "REPLICA_", 8) != 0) {
            envp[k++] = environ[j];
        }
    }
    int fd = open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        IT_FAIL("open %s: %s", r->log_path, strerror(errno));
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char banner[256];
    int blen = snprintf(banner, sizeof(banner), "==== harness: start #%u of %s on %s\n",
                        r->starts + 1, r->id, r->addr);
    if (write(fd, banner, (size_t)blen) < 0) {
        IT_FAIL("write %s: %s", r->log_path, strerror(errno));
    }
    pid_t parent = getpid();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        IT_FAIL("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* Die with the test, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        execve(g_binary, argv, envp);
        static const char msg[] = "harness: execve failed\n";
        ssize_t ignored = write(2, msg, sizeof(msg) - 1);
        (void)ignored;
        _exit(127);
    }
    close(fd);
    if (devnull >= 0) {
        close(devnull);
    }
    free(envp);
    r->pid = pid;
    r->paused = false;
    r->starts++;
}

void it_start_all(struct it_cluster *cl)
{
    cl->started_ms = it_now_ms();
    for (unsigned i = 0; i < cl->n; i++) {
        it_start(cl, i);
    }
    it_log("started %u replicas", cl->n);
}

void it_kill(struct it_cluster *cl, unsigned i, int sig)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid > 0, "%s is not running", r->id);
    if (kill(r->pid, sig) != 0) {
        IT_FAIL("kill %s: %s", r->id, strerror(errno));
    }
    if (r->paused) {
        kill(r->pid, SIGCONT);
    }
    int st;
    if (sig == SIGKILL) {
        if (waitpid(r->pid, &st, 0) != r->pid) {
            IT_FAIL("waitpid %s: %s", r->id, strerror(errno));
        }
        IT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: wait status 0x%x", r->id, st);
    } else {
        pid_t pid = r->pid;
        int64_t deadline = it_now_ms() + 10000;
        pid_t w;
        while ((w = waitpid(pid, &st, WNOHANG)) == 0 && it_now_ms() < deadline) {
            it_sleep_ms(5);
        }
        IT_CHECK(w == pid, "%s did not exit within 10 s of signal %d", r->id, sig);
        char d[96];
        describe_status(st, d, sizeof(d));
        IT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s after signal %d: %s", r->id, sig, d);
    }
    r->pid = 0;
    r->paused = false;
}

void it_pause(struct it_cluster *cl, unsigned i)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid > 0 && !r->paused, "%s is not running", r->id);
    kill(r->pid, SIGSTOP);
    int st;
    if (waitpid(r->pid, &st, WUNTRACED) != r->pid || !WIFSTOPPED(st)) {
        char d[96];
        describe_status(st, d, sizeof(d));
        IT_FAIL("%s did not stop: %s", r->id, d);
    }
    r->paused = true;
}

void it_resume(struct it_cluster *cl, unsigned i)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid > 0 && r->paused, "%s is not paused", r->id);
    kill(r->pid, SIGCONT);
    r->paused = false;
}

int it_wait_exit(struct it_cluster *cl, unsigned i, int timeout_ms)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid > 0, "%s is not running", r->id);
    int64_t deadline = it_now_ms() + timeout_ms;
    int st;
    pid_t w;
    while ((w = waitpid(r->pid, &st, WNOHANG)) == 0) {
        if (it_now_ms() > deadline) {
            return -1;
        }
        it_sleep_ms(5);
    }
    IT_CHECK(w == r->pid, "waitpid %s: %s", r->id, strerror(errno));
    r->pid = 0;
    r->paused = false;
    return st;
}

void it_wipe(struct it_cluster *cl, unsigned i)
{
    IT_CHECK(cl->r[i].pid == 0, "%s is running", cl->r[i].id);
    rm_rf(cl->r[i].data_dir);
    IT_CHECK(access(cl->r[i].data_dir, F_OK) != 0, "%s still exists", cl->r[i].data_dir);
}

void it_check_alive(void)
{
    if (g_cl == NULL || !pthread_equal(pthread_self(), g_main_thread)) {
        return;
    }
    for (unsigned i = 0; i < g_cl->n; i++) {
        struct it_replica *r = &g_cl->r[i];
        int st;
        if (r->pid > 0 && waitpid(r->pid, &st, WNOHANG) == r->pid) {
            char d[96];
            describe_status(st, d, sizeof(d));
            r->pid = 0;
            IT_FAIL("replica %s died unexpectedly: %s", r->id, d);
        }
    }
}

void it_finish(struct it_cluster *cl)
{
    it_check_alive();
    unsigned unclean = stop_all(cl, 10000, true);
    if (unclean > 0) {
        IT_FAIL("%u replica(s) did not shut down cleanly on SIGTERM (status 0 expected; a "
                "sanitizer report or a leak makes it non-zero)",
                unclean);
    }
    unmount_all(cl, getenv("IT_KEEP") != NULL);
    g_passed = true;
    if (getenv("IT_KEEP") == NULL) {
        rm_rf(g_dir);
    } else {
        it_log("IT_KEEP is set: kept %s", g_dir);
    }
    it_log("PASS in %.1f s", (double)(it_now_ms() - g_t0) / 1000.0);
    g_cl = NULL;
    free(cl);
}

int it_index_of_id(const struct it_cluster *cl, const char *id)
{
    for (unsigned i = 0; i < cl->n; i++) {
        if (strcmp(cl->r[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int it_index_of_addr(const struct it_cluster *cl, const char *addr)
{
    for (unsigned i = 0; i < cl->n; i++) {
        if (strcmp(cl->r[i].addr, addr) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ========================================================================
 * Private mounts
 * ====================================================================== */

int it_private_mounts(char *why, size_t len)
{
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(why, len, "unshare(CLONE_NEWNS): %s (euid %d; needs CAP_SYS_ADMIN)",
                 strerror(errno), (int)geteuid());
        return -1;
    }
    /* The new namespace starts as a copy whose mounts may still be shared
     * with the host's: make every one private, so ours stay here. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, len, "making / a private mount tree: %s", strerror(errno));
        return -1;
    }
    it_log("in a private mount namespace");
    return 0;
}

int it_mount_tmpfs(struct it_cluster *cl, unsigned i, unsigned size_kib, char *why, size_t len)
{
    struct it_replica *r = &cl->r[i];
    IT_CHECK(r->pid == 0 && r->starts == 0, "%s has been started already", r->id);
    char dir[sizeof(r->mount)], data[sizeof(r->data_dir)], opts[64];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s-fs", g_dir, r->id) >= sizeof(dir) ||
        (size_t)snprintf(data, sizeof(data), "%s/data", dir) >= sizeof(data)) {
        snprintf(why, len, "run directory path too long");
        return -1;
    }
    snprintf(opts, sizeof(opts), "size=%uk,mode=0755", size_kib);
    if (mkdir(dir, 0755) != 0) {
        snprintf(why, len, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        snprintf(why, len, "mount -t tmpfs -o %s tmpfs %s: %s", opts, dir, strerror(errno));
        rmdir(dir);
        return -1;
    }
    memcpy(r->mount, dir, sizeof(r->mount));
    memcpy(r->data_dir, data, sizeof(r->data_dir));
    it_log("%s: data dir on a %u KiB tmpfs at %s", r->id, size_kib, dir);
    return 0;
}

/* ========================================================================
 * Status and waiting
 * ====================================================================== */

int it_status(const struct it_cluster *cl, unsigned i, struct it_status *out)
{
    struct client c;
    char err[256];
    /* Short: a paused replica accepts (the kernel does) but never answers. */
    if (client_connect(&c, cl->r[i].addr, "it-status", 500, err, sizeof(err)) != 0) {
        return -1;
    }
    Envelope *r = client_call_status(&c, 1000, err, sizeof(err));
    client_close(&c);
    if (r == NULL) {
        return -1;
    }
    const Replicacao__Status *s = r->status;
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", s->id);
    snprintf(out->role, sizeof(out->role), "%s", s->role);
    snprintf(out->primary, sizeof(out->primary), "%s", s->primary);
    out->epoch = s->epoch;
    out->last_index = s->last_index;
    out->commit_index = s->commit_index;
    out->processed = s->processed;
    out->synced = s->synced;
    out->voter = s->voter;
    out->pending_requests = s->pending_requests;
    snprintf(out->disk, sizeof(out->disk), "%s", s->disk ? s->disk : "");
    wire_free(r);
    return 0;
}

int it_primary_now(const struct it_cluster *cl, struct it_status *out)
{
    int best = -1;
    for (unsigned i = 0; i < cl->n; i++) {
        struct it_status st;
        if (!it_up(cl, i) || it_status(cl, i, &st) != 0 || strcmp(st.role, "primary") != 0) {
            continue;
        }
        /* A deposed primary may not know yet: the higher epoch wins. */
        if (best < 0 || st.epoch > out->epoch) {
            best = (int)i;
            *out = st;
        }
    }
    return best;
}

int it_wait_primary(struct it_cluster *cl, struct it_status *out)
{
    int p = -1;
    IT_WAIT_UNTIL(30000, "a primary", (p = it_primary_now(cl, out)) >= 0);
    return p;
}

static bool follows(const struct it_status *st, const struct it_status *p)
{
    return strcmp(st->role, "backup") == 0 && st->epoch == p->epoch &&
           st->last_index == p->last_index && st->commit_index == p->commit_index;
}

bool it_is_caught_up(const struct it_cluster *cl, unsigned i)
{
    struct it_status p, st;
    int pi = it_primary_now(cl, &p);
    if (pi < 0 || p.commit_index != p.last_index) {
        return false;
    }
    if ((unsigned)pi == i) {
        return true;
    }
    return it_up(cl, i) && it_status(cl, i, &st) == 0 && follows(&st, &p);
}

static bool all_caught_up(const struct it_cluster *cl, unsigned skip_mask)
{
    struct it_status p, st;
    int pi = it_primary_now(cl, &p);
    if (pi < 0 || p.commit_index != p.last_index) {
        return false;
    }
    for (unsigned i = 0; i < cl->n; i++) {
        if ((skip_mask & (1u << i)) || (int)i == pi || !it_up(cl, i)) {
            continue;
        }
        if (it_status(cl, i, &st) != 0 || !follows(&st, &p)) {
            return false;
        }
    }
    return true;
}

void it_wait_caught_up(struct it_cluster *cl, unsigned skip_mask, int timeout_ms)
{
    IT_WAIT_UNTIL(timeout_ms, "every replica caught up with the primary",
                  all_caught_up(cl, skip_mask));
}

/* ========================================================================
 * The writer
 * ====================================================================== */

void it_acks_init(struct it_acks *acks)
{
    memset(acks, 0, sizeof(*acks));
    pthread_mutex_init(&acks->lock, NULL);
}

void it_acks_add(struct it_acks *acks, const struct it_ack *a)
{
    pthread_mutex_lock(&acks->lock);
    if (acks->n == acks->cap) {
        acks->cap = acks->cap ? acks->cap * 2 : 256;
        acks->a = xrealloc(acks->a, acks->cap * sizeof(*acks->a));
    }
    acks->a[acks->n++] = *a;
    pthread_mutex_unlock(&acks->lock);
}

void it_acks_free(struct it_acks *acks)
{
    free(acks->a);
    pthread_mutex_destroy(&acks->lock);
}

void it_writer_init(struct it_writer *w, const struct it_cluster *cl, int id)
{
    memset(w, 0, sizeof(*w));
    w->cl = cl;
    w->conn = -1;
    w->id = id;
    w->next = (unsigned)id;
    w->call_timeout_ms = 2000;
    snprintf(w->name, sizeof(w->name), "it-writer-%d", id);
}

void it_writer_close(struct it_writer *w)
{
    if (w->conn >= 0) {
        client_close(&w->c);
    }
    w->conn = -1;
}

int it_write(struct it_writer *w, const char *client_id, const char *data, int timeout_ms,
             struct it_ack *out)
{
    const struct it_cluster *cl = w->cl;
    int64_t start = it_now_ms(), deadline = start + timeout_ms;
    int hint = -1;
    unsigned attempts = 0;
    char err[256] = "";
    while (it_now_ms() < deadline) {
        if (w->conn < 0) {
            int target = hint >= 0 ? hint : (int)(w->next++ % cl->n);
            hint = -1;
            /* A paused replica accepts but never says hello: keep it short. */
            if (client_connect(&w->c, cl->r[target].addr, w->name, 300, err, sizeof(err)) != 0) {
                it_sleep_ms(2);
                continue;
            }
            w->conn = target;
        }
        int left = (int)(deadline - it_now_ms());
        attempts++;
        Envelope *r = client_call_request(&w->c, client_id, data, strlen(data),
                                          left < w->call_timeout_ms ? left : w->call_timeout_ms,
                                          err, sizeof(err));
        if (r == NULL) {
            /* Timeout or a closed connection: the outcome is unknown, so the
             * same id goes to the next replica. */
            it_writer_close(w);
            continue;
        }
        const Replicacao__ClientReply *rep = r->client_reply;
        switch (rep->status) {
        case REPLICACAO__CLIENT_REPLY__STATUS__OK:
            memset(out, 0, sizeof(*out));
            snprintf(out->client_id, sizeof(out->client_id), "%s", client_id);
            snprintf(out->data, sizeof(out->data), "%s", data);
            snprintf(out->primary, sizeof(out->primary), "%s", rep->primary);
            out->index = rep->index;
            out->epoch = rep->epoch;
            out->writer = w->id;
            out->latency_ms = it_now_ms() - start;
            out->attempts = attempts;
            wire_free(r);
            return 0;
        case REPLICACAO__CLIENT_REPLY__STATUS__REJECTED:
            IT_FAIL("request %s rejected by %s: %s", client_id, cl->r[w->conn].id, rep->message);
        case REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY: {
            int h = it_index_of_addr(cl, rep->primary_address);
            if (h < 0) {
                h = it_index_of_id(cl, rep->primary);
            }
            it_writer_close(w);
            if (h >= 0) {
                hint = h;
            } else {
                it_sleep_ms(5); /* no primary yet: give the election a moment */
            }
            break;
        }
        default: /* UNKNOWN: the primary stepped down before committing */
            it_writer_close(w);
            it_sleep_ms(5);
            break;
        }
        snprintf(err, sizeof(err), "%s", rep->message);
        wire_free(r);
    }
    it_log("write %s not acknowledged within %d ms after %u attempts (last: %s)", client_id,
           timeout_ms, attempts, err);
    return -1;
}

void it_write_ok(struct it_writer *w, const char *client_id, const char *data, int timeout_ms,
                 struct it_ack *out)
{
    if (it_write(w, client_id, data, timeout_ms, out) != 0) {
        IT_FAIL("write %s was not acknowledged within %d ms", client_id, timeout_ms);
    }
}

void it_write_series(struct it_writer *w, struct it_acks *acks, const char *prefix, unsigned first,
                     unsigned count, int timeout_ms)
{
    for (unsigned k = first; k < first + count; k++) {
        char id[IT_CLIENT_ID], data[64];
        struct it_ack a;
        snprintf(id, sizeof(id), "%s-%04u", prefix, k);
        snprintf(data, sizeof(data), "%s data %u", prefix, k);
        it_write_ok(w, id, data, timeout_ms, &a);
        it_acks_add(acks, &a);
    }
}

/* ========================================================================
 * Committed logs
 * ====================================================================== */

#define READ_PAGE 128 /* small enough that a few hundred entries need paging */

void it_read_log(const struct it_cluster *cl, unsigned i, int filter, struct it_log *out)
{
    memset(out, 0, sizeof(*out));
    struct client c;
    char err[256];
    if (client_connect(&c, cl->r[i].addr, "it-read", 2000, err, sizeof(err)) != 0) {
        IT_FAIL("read log of %s: %s", cl->r[i].id, err);
    }
    uint64_t after = 0;
    for (;;) {
        Envelope *r = client_call_read(&c, after, READ_PAGE, filter, 5000, err, sizeof(err));
        if (r == NULL) {
            IT_FAIL("read log of %s after %llu: %s", cl->r[i].id, (unsigned long long)after, err);
        }
        const Replicacao__ReadReply *rr = r->read_reply;
        out->commit_index = rr->commit_index;
        out->total = rr->total;
        IT_CHECK(rr->n_entries <= READ_PAGE, "%s returned %zu entries for limit %u", cl->r[i].id,
                 rr->n_entries, READ_PAGE);
        for (size_t k = 0; k < rr->n_entries; k++) {
            const Replicacao__Entry *e = rr->entries[k];
            IT_CHECK(e->index > after, "%s: entry %llu in a page after %llu", cl->r[i].id,
                     (unsigned long long)e->index, (unsigned long long)after);
            IT_CHECK(e->index <= rr->commit_index, "%s: entry %llu above commit index %llu",
                     cl->r[i].id, (unsigned long long)e->index,
                     (unsigned long long)rr->commit_index);
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 256;
                out->e = xrealloc(out->e, out->cap * sizeof(*out->e));
            }
            struct it_entry *d = &out->e[out->n++];
            memset(d, 0, sizeof(*d));
            d->index = e->index;
            d->epoch = e->epoch;
            snprintf(d->client_id, sizeof(d->client_id), "%s", e->client_id);
            snprintf(d->primary, sizeof(d->primary), "%s", e->primary);
            size_t len = e->data.len < sizeof(d->data) - 1 ? e->data.len : sizeof(d->data) - 1;
            memcpy(d->data, e->data.data, len);
            after = e->index;
        }
        size_t got = rr->n_entries;
        wire_free(r);
        if (got == 0) {
            break;
        }
    }
    client_close(&c);
}

void it_log_free(struct it_log *log)
{
    free(log->e);
    memset(log, 0, sizeof(*log));
}

static bool same_entry(const struct it_entry *a, const struct it_entry *b)
{
    return a->index == b->index && a->epoch == b->epoch &&
           strcmp(a->client_id, b->client_id) == 0 && strcmp(a->primary, b->primary) == 0 &&
           strcmp(a->data, b->data) == 0;
}

void it_check_prefix(const struct it_log *a, const char *a_name, const struct it_log *b,
                     const char *b_name)
{
    IT_CHECK(b->n <= a->n, "%s has %zu committed entries, more than %s's %zu", b_name, b->n, a_name,
             a->n);
    for (size_t k = 0; k < b->n; k++) {
        const struct it_entry *x = &a->e[k], *y = &b->e[k];
        IT_CHECK(same_entry(x, y),
                 "logs differ at position %zu: %s has (%llu, %llu, %s, %s, %s), %s has "
                 "(%llu, %llu, %s, %s, %s)",
                 k, a_name, (unsigned long long)x->index, (unsigned long long)x->epoch,
                 x->client_id, x->primary, x->data, b_name, (unsigned long long)y->index,
                 (unsigned long long)y->epoch, y->client_id, y->primary, y->data);
    }
}

static int cmp_entry_id(const void *a, const void *b)
{
    return strcmp((*(const struct it_entry *const *)a)->client_id,
                  (*(const struct it_entry *const *)b)->client_id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The entry with this client id in a log sorted by id, or NULL. */
static const struct it_entry *find_id(struct it_entry **sorted, size_t n, const char *id)
{
    struct it_entry key;
    snprintf(key.client_id, sizeof(key.client_id), "%s", id);
    struct it_entry *kp = &key;
    struct it_entry **hit = bsearch(&kp, sorted, n, sizeof(*sorted), cmp_entry_id);
    return hit ? *hit : NULL;
}

/* PROCESSED and SYNCED must split ALL by who processed each entry. */
static void check_filters(const struct it_cluster *cl, unsigned i, const struct it_log *all)
{
    struct it_log proc, sync;
    it_read_log(cl, i, 1, &proc);
    it_read_log(cl, i, 2, &sync);
    const char *id = cl->r[i].id;
    size_t pi = 0, si = 0;
    for (size_t k = 0; k < all->n; k++) {
        const struct it_entry *e = &all->e[k];
        bool mine = strcmp(e->primary, id) == 0;
        const struct it_log *side = mine ? &proc : &sync;
        size_t *pos = mine ? &pi : &si;
        IT_CHECK(*pos < side->n && same_entry(&side->e[*pos], e),
                 "%s: entry %llu (primary %s) missing from its %s read", id,
                 (unsigned long long)e->index, e->primary, mine ? "PROCESSED" : "SYNCED");
        (*pos)++;
    }
    IT_CHECK(pi == proc.n && si == sync.n, "%s: PROCESSED (%zu) + SYNCED (%zu) != ALL (%zu)", id,
             proc.n, sync.n, all->n);
    IT_CHECK(all->total == all->n, "%s: ReadReply.total %llu for ALL, %zu entries", id,
             (unsigned long long)all->total, all->n);
    IT_CHECK(proc.total == proc.n, "%s: ReadReply.total %llu for PROCESSED, %zu entries", id,
             (unsigned long long)proc.total, proc.n);
    IT_CHECK(sync.total == sync.n, "%s: ReadReply.total %llu for SYNCED, %zu entries", id,
             (unsigned long long)sync.total, sync.n);
    it_log_free(&proc);
    it_log_free(&sync);
}

void it_check_logs(const struct it_cluster *cl, const struct it_acks *acks,
                   const char *const *maybe, size_t n_maybe)
{
    struct it_log logs[IT_MAX_REPLICAS];
    int ref = -1;
    for (unsigned i = 0; i < cl->n; i++) {
        if (!it_up(cl, i)) {
            continue;
        }
        it_read_log(cl, i, 0, &logs[i]);
        if (ref < 0) {
            ref = (int)i;
            continue;
        }
        const struct it_log *a = &logs[ref], *b = &logs[i];
        IT_CHECK(a->commit_index == b->commit_index, "commit index %s %llu, %s %llu", cl->r[ref].id,
                 (unsigned long long)a->commit_index, cl->r[i].id,
                 (unsigned long long)b->commit_index);
        if (a->n >= b->n) {
            it_check_prefix(a, cl->r[ref].id, b, cl->r[i].id);
        } else {
            it_check_prefix(b, cl->r[i].id, a, cl->r[ref].id);
        }
        IT_CHECK(a->n == b->n, "%s has %zu committed entries, %s has %zu", cl->r[ref].id, a->n,
                 cl->r[i].id, b->n);
    }
    IT_CHECK(ref >= 0, "no replica is up to check");
    const struct it_log *log = &logs[ref];

    /* Indices only grow; epochs never go back. */
    for (size_t k = 1; k < log->n; k++) {
        IT_CHECK(log->e[k].index > log->e[k - 1].index && log->e[k].epoch >= log->e[k - 1].epoch,
                 "entry %llu (epoch %llu) follows %llu (epoch %llu)",
                 (unsigned long long)log->e[k].index, (unsigned long long)log->e[k].epoch,
                 (unsigned long long)log->e[k - 1].index, (unsigned long long)log->e[k - 1].epoch);
    }

    /* Applied once: no client id twice. */
    struct it_entry **sorted = xrealloc(NULL, (log->n + 1) * sizeof(*sorted));
    for (size_t k = 0; k < log->n; k++) {
        sorted[k] = &log->e[k];
    }
    qsort(sorted, log->n, sizeof(*sorted), cmp_entry_id);
    for (size_t k = 1; k < log->n; k++) {
        IT_CHECK(strcmp(sorted[k]->client_id, sorted[k - 1]->client_id) != 0,
                 "client id %s applied twice: indices %llu and %llu", sorted[k]->client_id,
                 (unsigned long long)sorted[k - 1]->index, (unsigned long long)sorted[k]->index);
    }

    /* Never lost, never moved: each ack where its OK reply put it. */
    uint64_t last_of_writer[64] = {0};
    const char **acked = xrealloc(NULL, (acks->n + 1) * sizeof(*acked));
    for (size_t k = 0; k < acks->n; k++) {
        const struct it_ack *a = &acks->a[k];
        acked[k] = a->client_id;
        const struct it_entry *e = find_id(sorted, log->n, a->client_id);
        IT_CHECK(e != NULL,
                 "acknowledged request %s (index %llu, epoch %llu, primary %s) is not "
                 "in the committed log",
                 a->client_id, (unsigned long long)a->index, (unsigned long long)a->epoch,
                 a->primary);
        IT_CHECK(
            e->index == a->index && e->epoch == a->epoch && strcmp(e->primary, a->primary) == 0,
            "%s acknowledged at (%llu, %llu, %s) but committed at (%llu, %llu, %s)", a->client_id,
            (unsigned long long)a->index, (unsigned long long)a->epoch, a->primary,
            (unsigned long long)e->index, (unsigned long long)e->epoch, e->primary);
        IT_CHECK(strcmp(e->data, a->data) == 0, "%s: data '%s', sent '%s'", a->client_id, e->data,
                 a->data);
        unsigned wi = (unsigned)a->writer % 64;
        IT_CHECK(e->index > last_of_writer[wi],
                 "writer %d: %s acknowledged after an entry at %llu but sits at %llu", a->writer,
                 a->client_id, (unsigned long long)last_of_writer[wi],
                 (unsigned long long)e->index);
        last_of_writer[wi] = e->index;
    }

    /* Nothing appears that nobody sent. */
    qsort(acked, acks->n, sizeof(*acked), cmp_str);
    for (size_t k = 0; k < acks->n; k++) {
        IT_CHECK(k == 0 || strcmp(acked[k], acked[k - 1]) != 0, "client id %s acknowledged twice",
                 acked[k]);
    }
    size_t n_unacked = 0;
    for (size_t k = 0; k < log->n; k++) {
        const char *id = log->e[k].client_id;
        if (bsearch(&id, acked, acks->n, sizeof(*acked), cmp_str) != NULL) {
            continue;
        }
        bool sent = false;
        for (size_t m = 0; m < n_maybe && !sent; m++) {
            sent = strcmp(maybe[m], id) == 0;
        }
        IT_CHECK(sent, "committed entry %llu has client id '%s', which the test never sent",
                 (unsigned long long)log->e[k].index, id);
        n_unacked++;
    }

    unsigned checked = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        if (it_up(cl, i)) {
            check_filters(cl, i, &logs[i]);
            checked++;
        }
    }
    it_log("logs agree on %u replicas: %zu committed entries, all %zu acks once each in place, "
           "%zu of unknown outcome, commit index %llu",
           checked, log->n, acks->n, n_unacked, (unsigned long long)log->commit_index);
    free(acked);
    free(sorted);
    for (unsigned i = 0; i < cl->n; i++) {
        if (it_up(cl, i)) {
            it_log_free(&logs[i]);
        }
    }
}

/* ========================================================================
 * Raw sockets
 * ====================================================================== */

int it_raw_connect(const struct it_cluster *cl, unsigned i)
{
    char host[32];
    snprintf(host, sizeof(host), "%s", cl->r[i].addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int it_raw_send(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int it_raw_send_env(int fd, const Envelope *env)
{
    size_t len;
    uint8_t *buf = wire_pack(env, &len);
    if (buf == NULL) {
        return -1;
    }
    int rc = it_raw_send(fd, buf, len);
    free(buf);
    return rc;
}

int it_raw_expect_closed(int fd, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - it_now_ms());
        if (left <= 0) {
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) {
            continue;
        }
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return 0;
        }
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            return 0; /* any other error also means the connection is gone */
        }
    }
}

struct it_cluster *it_cluster_warm(unsigned n, struct it_writer *w, struct it_acks *acks,
                                   const char *prefix, unsigned count)
{
    struct it_cluster *cl = it_cluster_new(n);
    it_acks_init(acks);
    it_start_all(cl);
    it_writer_init(w, cl, 0);
    it_write_series(w, acks, prefix, 0, count, 30000);
    it_wait_caught_up(cl, 0, 10000);
    return cl;
}
