/* Preloaded into a command under test (LD_PRELOAD): its TORN_WRITE_AT-th pwrite of at least TORN_WRITE_MIN
 * bytes (default 64 KiB) to a file whose path ends in TORN_WRITE_SUFFIX writes only the first half, then the
 * process kills itself with SIGKILL. That is what Linux leaves when a process is killed while it copies a
 * large write into the page cache (the copy stops at a page once a fatal signal is pending): a torn block.
 * With TORN_WRITE_LOG set, each counted write appends "index length offset" to that file.
 * Used by tests/reliability/test_checkpoint_tear.py (docs/reliability.md A6). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static long counted;

static int wanted(int fd) {
    const char *suffix = getenv("TORN_WRITE_SUFFIX");
    char link[64], path[4096];
    if (!suffix) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t ls = strlen(suffix);
    return (size_t)n >= ls && strcmp(path + n - ls, suffix) == 0;
}

static ssize_t torn(int fd, const void *buf, size_t n, off_t off) {
    if (!real_pwrite) real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    const char *at = getenv("TORN_WRITE_AT");
    const char *min = getenv("TORN_WRITE_MIN");
    if (at && n >= (size_t)(min ? atol(min) : 65536) && wanted(fd)) {
        counted++;
        const char *log = getenv("TORN_WRITE_LOG");
        if (log) {
            FILE *f = fopen(log, "a");
            if (f) {
                fprintf(f, "%ld %zu %lld\n", counted, n, (long long)off);
                fclose(f);
            }
        }
        if (counted == atol(at)) {
            real_pwrite(fd, buf, n / 2, off);
            kill(getpid(), SIGKILL);
        }
    }
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return torn(fd, buf, n, off); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return torn(fd, buf, n, off); }
