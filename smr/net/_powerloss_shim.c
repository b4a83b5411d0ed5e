/*
 * smr power-loss shim: an LD_PRELOAD library that remembers, for every file under one directory,
 * what a power cut would take back -- everything written since that file's last fsync/fdatasync.
 *
 * Built at run time by smr/net/_powerloss.py (which also documents the model and applies the undo
 * logs after a cut).  Written for this project; it copies no code from LazyFS or elsewhere.
 *
 * Environment:
 *   SMR_POWERLOSS_ROOT  absolute, symlink-free directory whose regular files are tracked
 *   SMR_POWERLOSS_UNDO  absolute directory (outside the root) that receives one undo log per file
 * Either unset: every call passes straight through.
 *
 * Before each write or truncate of a tracked file, one undo record is appended to that file's log:
 *     "SMRU" | u64 offset | u64 size_before | u64 old_len | old_len bytes that the call overwrites
 * (native byte order).  Applied newest first -- write the old bytes back at offset, then truncate
 * to size_before -- the records return the file to its state at its last sync.  A successful
 * fsync or fdatasync of the file empties its log (sync, syncfs and a successful fsync of a
 * directory do not: only a file's own sync makes its data durable here).  Creating, renaming and
 * unlinking a file count as durable at once: the shim models file contents, not directory entries.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536
#define CHUNK 65536
#define MAGIC "SMRU"

/* ------------------------------------------------------------------ the real functions */
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
static open_fn real_open, real_open64;
static openat_fn real_openat, real_openat64;
static int (*real_creat)(const char *, mode_t), (*real_creat64)(const char *, mode_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off64_t, int);
static int (*real_ftruncate)(int, off_t), (*real_ftruncate64)(int, off64_t);
static int (*real_truncate)(const char *, off_t), (*real_truncate64)(const char *, off64_t);
static int (*real_fallocate)(int, int, off_t, off_t), (*real_fallocate64)(int, int, off64_t, off64_t);
static int (*real_posix_fallocate)(int, off_t, off_t), (*real_posix_fallocate64)(int, off64_t, off64_t);
static ssize_t (*real_copy_file_range)(int, off64_t *, int, off64_t *, size_t, unsigned int);
static ssize_t (*real_sendfile)(int, int, off_t *, size_t), (*real_sendfile64)(int, int, off64_t *, size_t);
static int (*real_fsync)(int), (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_dup)(int), (*real_dup2)(int, int), (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...), (*real_fcntl64)(int, int, ...);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_unlink)(const char *), (*real_unlinkat)(int, const char *, int);

/* ------------------------------------------------------------------ state */
/* One per open tracked fd: the file it names, a descriptor to read its old bytes through (the
   tracked fd may be write-only), its undo log, and its identity (to notice an fd reused behind our
   back, e.g. closed by close_range and reopened as a socket). */
struct tracked {
    char *path;      /* absolute */
    int read_fd;     /* O_RDONLY on the same file, or -1 */
    int log_fd;      /* O_WRONLY|O_APPEND on the undo log */
    dev_t dev;
    ino_t ino;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread int inside;             /* this thread is already in the shim: pass straight through */
static struct tracked *table[MAX_FDS];  /* under lock */
static unsigned char flagged[MAX_FDS];  /* read without the lock: 1 if table[fd] may be set */
static char root[PATH_MAX], undo[PATH_MAX];
static size_t root_len;
static int enabled;

/* Calls that met a tracked file, by entry point (read with smr_powerloss_stats). */
enum { C_OPEN, C_WRITE, C_PWRITE, C_PWRITE64, C_WRITEV, C_PWRITEV, C_TRUNCATE, C_FALLOCATE, C_COPY,
       C_FSYNC, C_FDATASYNC, C_CLOSE, C_DUP, C_RENAME, C_UNLINK, C_RECORDS, C_OLD_BYTES, C_UNTRACKABLE,
       C_COUNT };
static const char *counter_names[C_COUNT] = {
    "open", "write", "pwrite", "pwrite64", "writev", "pwritev", "truncate", "fallocate", "copy",
    "fsync", "fdatasync", "close", "dup", "rename", "unlink", "records", "old_bytes", "untrackable"};
static unsigned long long counters[C_COUNT];

#define RESOLVE(name) (*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name))

static void resolve_all(void) {
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(creat); RESOLVE(creat64);
    RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev); RESOLVE(pwritev);
    RESOLVE(pwritev64); RESOLVE(pwritev2); RESOLVE(pwritev64v2); RESOLVE(ftruncate); RESOLVE(ftruncate64);
    RESOLVE(truncate); RESOLVE(truncate64); RESOLVE(fallocate); RESOLVE(fallocate64);
    RESOLVE(posix_fallocate); RESOLVE(posix_fallocate64); RESOLVE(copy_file_range); RESOLVE(sendfile);
    RESOLVE(sendfile64); RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(close); RESOLVE(dup); RESOLVE(dup2);
    RESOLVE(dup3); RESOLVE(fcntl); RESOLVE(fcntl64); RESOLVE(rename); RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(unlink); RESOLVE(unlinkat);
}

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }

static void init(void) {
    resolve_all();
    const char *r = getenv("SMR_POWERLOSS_ROOT"), *u = getenv("SMR_POWERLOSS_UNDO");
    if (r && u && r[0] == '/' && u[0] == '/' && strlen(r) < sizeof root - 1 && strlen(u) < sizeof undo - 1) {
        strcpy(root, r);
        strcpy(undo, u);
        root_len = strlen(root);
        while (root_len > 1 && root[root_len - 1] == '/')
            root[--root_len] = '\0';
        enabled = 1;
    }
    pthread_atfork(before_fork, after_fork, after_fork);
}

__attribute__((constructor)) static void shim_constructor(void) { pthread_once(&once, init); }

/* Enter the shim: 1 if this call should be looked at (the caller then leaves with `leave`). */
static int enter(void) {
    pthread_once(&once, init);
    if (!enabled || inside)
        return 0;
    inside = 1;
    return 1;
}

static void leave(void) { inside = 0; }

/* Say on stderr, and in ERRORS in the undo directory (the reverting side refuses to trust a cut
   after it), that a change could not be recorded. */
static void complain(const char *what) {
    char line[256], errors[PATH_MAX + 16];
    int n = snprintf(line, sizeof line, "smr power-loss shim (pid %d): %s\n", (int)getpid(), what);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    counters[C_UNTRACKABLE]++;
    real_write(2, line, len);
    snprintf(errors, sizeof errors, "%s/ERRORS", undo);
    int fd = real_open(errors, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        real_write(fd, line, len);
        real_close(fd);
    }
}

/* ------------------------------------------------------------------ paths */
/* Make `path` (relative to dirfd) absolute and lexically normal in `out`; 1 if it lies under root. */
static int under_root(int dirfd, const char *path, char *out) {
    char joined[2 * PATH_MAX];
    if (path == NULL)
        return 0;
    if (path[0] == '/') {
        if (strlen(path) >= sizeof joined)
            return 0;
        strcpy(joined, path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (getcwd(base, sizeof base) == NULL)
                return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0)
                return 0;
            base[n] = '\0';
        }
        if (snprintf(joined, sizeof joined, "%s/%s", base, path) >= (int)sizeof joined)
            return 0;
    }
    /* normalise: drop empty and "." components, resolve ".." lexically */
    size_t len = 0;
    char *save = NULL;
    out[0] = '\0';
    for (char *part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
            out[len] = '\0';
            continue;
        }
        size_t plen = strlen(part);
        if (len + 1 + plen >= PATH_MAX)
            return 0;
        out[len++] = '/';
        memcpy(out + len, part, plen);
        len += plen;
        out[len] = '\0';
    }
    if (len == 0)
        strcpy(out, "/");
    return strncmp(out, root, root_len) == 0 && out[root_len] == '/' && out[root_len + 1] != '\0';
}

/* The undo log of tracked file `path`: its path below root, with every byte outside [A-Za-z0-9._-]
   written as %XX, plus ".undo". */
static int log_path(const char *path, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(out, PATH_MAX, "%s/", undo);
    for (const unsigned char *p = (const unsigned char *)path + root_len + 1; *p; p++) {
        if (n + 10 >= PATH_MAX)
            return 0;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
            *p == '_' || *p == '-') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    strcpy(out + n, ".undo");
    return 1;
}

static int open_log(const char *path) {
    char log[PATH_MAX];
    if (!log_path(path, log))
        return -1;
    return real_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Forget a file's unsynced past: its log is emptied (every open fd of it shares the log file). */
static void drop_log(const char *path) {
    char log[PATH_MAX];
    if (log_path(path, log))
        real_unlink(log);
}

/* ------------------------------------------------------------------ the fd table (under lock) */
static void untrack(int fd) {
    if (fd < 0 || fd >= MAX_FDS || table[fd] == NULL)
        return;
    struct tracked *t = table[fd];
    table[fd] = NULL;
    __atomic_store_n(&flagged[fd], 0, __ATOMIC_RELEASE);
    if (t->read_fd >= 0)
        real_close(t->read_fd);
    if (t->log_fd >= 0)
        real_close(t->log_fd);
    free(t->path);
    free(t);
}

static void track(int fd, const char *path, const struct stat *st) {
    untrack(fd);
    if (fd >= MAX_FDS) {
        complain("a tracked file got an fd beyond the table: its writes are not tracked");
        return;
    }
    struct tracked *t = calloc(1, sizeof *t);
    char *copy = strdup(path);
    int log_fd = open_log(path);
    if (t == NULL || copy == NULL || log_fd < 0) {
        complain("cannot open an undo log (or out of memory): a tracked file's writes are not tracked");
        free(t);
        free(copy);
        if (log_fd >= 0)
            real_close(log_fd);
        return;
    }
    t->path = copy;
    t->log_fd = log_fd;
    t->read_fd = real_open(path, O_RDONLY | O_CLOEXEC);
    t->dev = st->st_dev;
    t->ino = st->st_ino;
    table[fd] = t;
    __atomic_store_n(&flagged[fd], 1, __ATOMIC_RELEASE);
}

/* The entry of `fd` if it still names the file it was opened as (else the stale entry is dropped). */
static struct tracked *lookup(int fd) {
    if (fd < 0 || fd >= MAX_FDS || table[fd] == NULL)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != table[fd]->dev || st.st_ino != table[fd]->ino) {
        untrack(fd);
        return NULL;
    }
    return table[fd];
}

static int maybe_tracked(int fd) {
    return fd >= 0 && fd < MAX_FDS && __atomic_load_n(&flagged[fd], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ undo records (under lock) */
static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = real_write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Append the record that undoes a change of [offset, offset + length) in the file behind `source`
   (a readable fd of it) whose size is now `size`: the bytes of that range that exist now. */
static void record(struct tracked *t, int source, uint64_t offset, uint64_t length, uint64_t size) {
    static char buf[CHUNK];
    uint64_t old_len = offset < size ? (length < size - offset ? length : size - offset) : 0;
    char head[28];
    memcpy(head, MAGIC, 4);
    memcpy(head + 4, &offset, 8);
    memcpy(head + 12, &size, 8);
    memcpy(head + 20, &old_len, 8);
    int failed = write_all(t->log_fd, head, sizeof head) != 0;
    for (uint64_t done = 0; !failed && done < old_len;) {
        size_t want = old_len - done < CHUNK ? (size_t)(old_len - done) : CHUNK;
        ssize_t n = pread(source, buf, want, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* unreadable, or shrunk meanwhile by another process: pad, so the log stays whole */
            if (n < 0)
                complain("cannot read the bytes a write overwrites: its undo record is wrong");
            memset(buf, 0, want);
            n = (ssize_t)want;
        }
        failed = write_all(t->log_fd, buf, (size_t)n) != 0;
        done += (uint64_t)n;
    }
    if (failed) {
        complain("cannot write an undo record (is the undo directory's disk full?)");
        return;
    }
    counters[C_RECORDS]++;
    counters[C_OLD_BYTES] += old_len;
}

/* Record the undo of changing `length` bytes at `offset` (offset < 0: at the fd's position, or at
   the end for an O_APPEND fd), or of truncating to `offset` (truncate != 0). */
static void before_change(struct tracked *t, int fd, int64_t offset, uint64_t length, int truncating) {
    int source = t->read_fd >= 0 ? t->read_fd : fd;
    struct stat st;
    if (fstat(source, &st) != 0) {
        complain("cannot stat a tracked file: a change of it is not recorded");
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (truncating) {
        uint64_t to = offset < 0 ? 0 : (uint64_t)offset;
        record(t, source, to < size ? to : size, to < size ? size - to : 0, size);
        return;
    }
    if (offset < 0) {
        int flags = real_fcntl(fd, F_GETFL);
        offset = (flags >= 0 && (flags & O_APPEND)) ? (int64_t)size : (int64_t)lseek(fd, 0, SEEK_CUR);
        if (offset < 0) {
            complain("cannot tell where a write lands: it is not recorded");
            return;
        }
    }
    record(t, source, (uint64_t)offset, length, size);
}

static uint64_t iov_total(const struct iovec *iov, int count) {
    uint64_t total = 0;
    for (int i = 0; iov && i < count; i++)
        total += iov[i].iov_len;
    return total;
}

/* ------------------------------------------------------------------ opening */
static int do_open(int dirfd, const char *path, int flags, mode_t mode, int (*call)(int, const char *, int, mode_t)) {
    if (!enter())
        return call(dirfd, path, flags, mode);
    char abs_path[PATH_MAX];
    int saved = errno;
    if ((flags & O_TMPFILE) == O_TMPFILE || !under_root(dirfd, path, abs_path)) {
        leave();
        errno = saved;
        return call(dirfd, path, flags, mode);
    }
    pthread_mutex_lock(&lock);
    struct stat before;
    int existed = stat(abs_path, &before) == 0;
    if (existed && S_ISREG(before.st_mode) && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY &&
        before.st_size > 0) {
        /* O_TRUNC cuts the file: record it like a truncate to 0, through a temporary entry */
        int old = real_open(abs_path, O_RDONLY | O_CLOEXEC);
        int log_fd = open_log(abs_path);
        if (old >= 0 && log_fd >= 0) {
            struct tracked tmp = {.path = abs_path, .read_fd = old, .log_fd = log_fd};
            counters[C_TRUNCATE]++;
            record(&tmp, old, 0, (uint64_t)before.st_size, (uint64_t)before.st_size);
        } else {
            complain("cannot record an O_TRUNC open");
        }
        if (old >= 0)
            real_close(old);
        if (log_fd >= 0)
            real_close(log_fd);
    }
    errno = saved;
    int fd = call(dirfd, path, flags, mode);
    saved = errno;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            if (!existed)
                drop_log(abs_path); /* a new file: a log left by an unlinked namesake is not its past */
            counters[C_OPEN]++;
            track(fd, abs_path, &st);
        } else {
            untrack(fd);
        }
    }
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return fd;
}

static int call_open(int dirfd, const char *path, int flags, mode_t mode) { (void)dirfd; return real_open(path, flags, mode); }
static int call_open64(int dirfd, const char *path, int flags, mode_t mode) { (void)dirfd; return real_open64(path, flags, mode); }
static int call_openat(int dirfd, const char *path, int flags, mode_t mode) { return real_openat(dirfd, path, flags, mode); }
static int call_openat64(int dirfd, const char *path, int flags, mode_t mode) { return real_openat64(dirfd, path, flags, mode); }

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    pthread_once(&once, init);
    return do_open(AT_FDCWD, path, flags, mode, call_open);
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    pthread_once(&once, init);
    return do_open(AT_FDCWD, path, flags, mode, call_open64);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    pthread_once(&once, init);
    return do_open(dirfd, path, flags, mode, call_openat);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    pthread_once(&once, init);
    return do_open(dirfd, path, flags, mode, call_openat64);
}

int creat(const char *path, mode_t mode) {
    pthread_once(&once, init);
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, call_open);
}

int creat64(const char *path, mode_t mode) {
    pthread_once(&once, init);
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, call_open64);
}

/* ------------------------------------------------------------------ writing */
/* Run `body` (which calls the real function into `result`) after recording the undo of changing
   `length` bytes at `offset` of tracked `fd` (offset -1: the fd's position). */
#define TRACKED_CHANGE(counter, fd, offset, length, truncating, body)                                    \
    do {                                                                                                 \
        if (!maybe_tracked(fd) || !enter()) {                                                            \
            body;                                                                                        \
            return result;                                                                               \
        }                                                                                                \
        int saved_ = errno;                                                                              \
        pthread_mutex_lock(&lock);                                                                       \
        struct tracked *t_ = lookup(fd);                                                                 \
        if (t_ != NULL) {                                                                                \
            counters[counter]++;                                                                         \
            before_change(t_, fd, (offset), (length), (truncating));                                     \
        }                                                                                                \
        errno = saved_;                                                                                  \
        body;                                                                                            \
        saved_ = errno;                                                                                  \
        pthread_mutex_unlock(&lock);                                                                     \
        leave();                                                                                         \
        errno = saved_;                                                                                  \
        return result;                                                                                   \
    } while (0)

ssize_t write(int fd, const void *buf, size_t count) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_WRITE, fd, -1, count, 0, result = real_write(fd, buf, count));
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITE, fd, offset, count, 0, result = real_pwrite(fd, buf, count, offset));
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITE64, fd, offset, count, 0, result = real_pwrite64(fd, buf, count, offset));
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_WRITEV, fd, -1, iov_total(iov, iovcnt), 0, result = real_writev(fd, iov, iovcnt));
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITEV, fd, offset, iov_total(iov, iovcnt), 0, result = real_pwritev(fd, iov, iovcnt, offset));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t offset) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITEV, fd, offset, iov_total(iov, iovcnt), 0,
                   result = real_pwritev64(fd, iov, iovcnt, offset));
}

/* pwritev2 with offset -1 writes at (and moves) the fd's position, as writev. */
ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITEV, fd, offset < 0 ? -1 : offset, iov_total(iov, iovcnt), 0,
                   result = real_pwritev2(fd, iov, iovcnt, offset, flags));
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_PWRITEV, fd, offset < 0 ? -1 : offset, iov_total(iov, iovcnt), 0,
                   result = real_pwritev64v2(fd, iov, iovcnt, offset, flags));
}

int ftruncate(int fd, off_t length) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_TRUNCATE, fd, length, 0, 1, result = real_ftruncate(fd, length));
}

int ftruncate64(int fd, off64_t length) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_TRUNCATE, fd, length, 0, 1, result = real_ftruncate64(fd, length));
}

/* fallocate may grow the file: undone by truncating back (its record holds no bytes). */
int fallocate(int fd, int mode, off_t offset, off_t len) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_FALLOCATE, fd, offset, (uint64_t)len, 0, result = real_fallocate(fd, mode, offset, len));
}

int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_FALLOCATE, fd, offset, (uint64_t)len, 0, result = real_fallocate64(fd, mode, offset, len));
}

int posix_fallocate(int fd, off_t offset, off_t len) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_FALLOCATE, fd, offset, (uint64_t)len, 0, result = real_posix_fallocate(fd, offset, len));
}

int posix_fallocate64(int fd, off64_t offset, off64_t len) {
    int result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_FALLOCATE, fd, offset, (uint64_t)len, 0, result = real_posix_fallocate64(fd, offset, len));
}

ssize_t copy_file_range(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out, size_t len, unsigned int flags) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_COPY, fd_out, off_out ? *off_out : -1, len, 0,
                   result = real_copy_file_range(fd_in, off_in, fd_out, off_out, len, flags));
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_COPY, out_fd, -1, count, 0, result = real_sendfile(out_fd, in_fd, offset, count));
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count) {
    ssize_t result;
    pthread_once(&once, init);
    TRACKED_CHANGE(C_COPY, out_fd, -1, count, 0, result = real_sendfile64(out_fd, in_fd, offset, count));
}

static int path_truncate(const char *path, off64_t length, int (*call)(const char *, off64_t)) {
    if (!enter())
        return call(path, length);
    char abs_path[PATH_MAX];
    int saved = errno;
    if (!under_root(AT_FDCWD, path, abs_path)) {
        leave();
        errno = saved;
        return call(path, length);
    }
    pthread_mutex_lock(&lock);
    int old = real_open(abs_path, O_RDONLY | O_CLOEXEC);
    int log_fd = old >= 0 ? open_log(abs_path) : -1;
    if (old >= 0 && log_fd >= 0) {
        struct tracked tmp = {.path = abs_path, .read_fd = old, .log_fd = log_fd};
        counters[C_TRUNCATE]++;
        before_change(&tmp, old, length, 0, 1);
    }
    if (old >= 0)
        real_close(old);
    if (log_fd >= 0)
        real_close(log_fd);
    errno = saved;
    int result = call(path, length);
    saved = errno;
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return result;
}

static int call_truncate(const char *path, off64_t length) { return real_truncate(path, (off_t)length); }
static int call_truncate64(const char *path, off64_t length) { return real_truncate64(path, length); }

int truncate(const char *path, off_t length) {
    pthread_once(&once, init);
    return path_truncate(path, length, call_truncate);
}

int truncate64(const char *path, off64_t length) {
    pthread_once(&once, init);
    return path_truncate(path, length, call_truncate64);
}

/* ------------------------------------------------------------------ syncing */
/* A successful sync of a tracked fd makes its file's content durable: its undo log is emptied.
   The lock is held across the sync, so no write of this process slips between the two. */
static int do_sync(int fd, int counter, int (*call)(int)) {
    if (!maybe_tracked(fd) || !enter())
        return call(fd);
    int saved = errno;
    pthread_mutex_lock(&lock);
    struct tracked *t = lookup(fd);
    errno = saved;
    int result = call(fd);
    saved = errno;
    if (t != NULL && result == 0) {
        counters[counter]++;
        real_ftruncate(t->log_fd, 0);
    }
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return result;
}

int fsync(int fd) {
    pthread_once(&once, init);
    return do_sync(fd, C_FSYNC, real_fsync);
}

int fdatasync(int fd) {
    pthread_once(&once, init);
    return do_sync(fd, C_FDATASYNC, real_fdatasync);
}

/* ------------------------------------------------------------------ closing and duplicating */
int close(int fd) {
    pthread_once(&once, init);
    if (maybe_tracked(fd) && enter()) {
        int saved = errno;
        pthread_mutex_lock(&lock);
        if (table[fd] != NULL)
            counters[C_CLOSE]++;
        untrack(fd); /* before the real close: the number may be reused the moment it is free */
        pthread_mutex_unlock(&lock);
        leave();
        errno = saved;
    }
    return real_close(fd);
}

static int real_fcntl_dup(int fd) { return real_fcntl(fd, F_DUPFD_CLOEXEC, 0); }

/* `made` became a copy of `fd` (or failed, if negative): track it as `fd` is tracked. */
static int duplicated(int fd, int made, int target_replaced) {
    int saved = errno;
    if (!enter()) {
        errno = saved;
        return made;
    }
    pthread_mutex_lock(&lock);
    if (made != fd) { /* dup2(fd, fd) changes nothing */
        if (made >= 0 || target_replaced >= 0)
            untrack(made >= 0 ? made : target_replaced);
        struct tracked *t = made >= 0 ? lookup(fd) : NULL;
        if (t != NULL && made < MAX_FDS) {
            struct tracked *copy = calloc(1, sizeof *copy);
            char *path = strdup(t->path);
            int log_fd = real_fcntl_dup(t->log_fd);
            if (copy == NULL || path == NULL || log_fd < 0) {
                complain("cannot track a duplicated fd");
                free(copy);
                free(path);
                if (log_fd >= 0)
                    real_close(log_fd);
            } else {
                *copy = *t;
                copy->path = path;
                copy->log_fd = log_fd;
                copy->read_fd = t->read_fd >= 0 ? real_fcntl_dup(t->read_fd) : -1;
                counters[C_DUP]++;
                table[made] = copy;
                __atomic_store_n(&flagged[made], 1, __ATOMIC_RELEASE);
            }
        } else if (t != NULL) {
            complain("a duplicated tracked fd is beyond the table: its writes are not tracked");
        }
    }
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return made;
}

int dup(int fd) {
    pthread_once(&once, init);
    int made = real_dup(fd);
    return maybe_tracked(fd) ? duplicated(fd, made, -1) : made;
}

int dup2(int fd, int target) {
    pthread_once(&once, init);
    int made = real_dup2(fd, target);
    return maybe_tracked(fd) || maybe_tracked(target) ? duplicated(fd, made, made < 0 ? -1 : target) : made;
}

int dup3(int fd, int target, int flags) {
    pthread_once(&once, init);
    int made = real_dup3(fd, target, flags);
    return maybe_tracked(fd) || maybe_tracked(target) ? duplicated(fd, made, made < 0 ? -1 : target) : made;
}

/* fcntl's F_DUPFD and F_DUPFD_CLOEXEC duplicate too (CPython's os.dup uses the latter); every other
   command passes straight through.  The third argument is forwarded as a pointer-sized word, as
   glibc's own fcntl reads it. */
static int do_fcntl(int (*call)(int, int, ...), int fd, int cmd, void *arg) {
    if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
        return call(fd, cmd, arg);
    int made = call(fd, cmd, arg);
    return maybe_tracked(fd) ? duplicated(fd, made, -1) : made;
}

int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    pthread_once(&once, init);
    return do_fcntl(real_fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    pthread_once(&once, init);
    return do_fcntl(real_fcntl64 ? real_fcntl64 : real_fcntl, fd, cmd, arg);
}

/* ------------------------------------------------------------------ renaming and unlinking */
/* A rename is durable at once.  The moved file's unsynced past moves with it (its log is renamed),
   and whatever the target named before is gone (its log with it).  A file moved out of the root
   keeps its content as it is; one moved in arrives with no unsynced past.  Open fds of a moved file
   keep writing to the moved log.  (Renaming a directory that holds tracked files is not followed.) */
static void renamed(const char *from, int from_in, const char *to, int to_in) {
    char from_log[PATH_MAX], to_log[PATH_MAX];
    counters[C_RENAME]++;
    if (from_in && to_in && log_path(from, from_log) && log_path(to, to_log)) {
        if (real_rename(from_log, to_log) != 0)
            real_unlink(to_log); /* the moved file had no log: the target's old one must not stay */
        for (int fd = 0; fd < MAX_FDS; fd++) {
            if (table[fd] != NULL && strcmp(table[fd]->path, from) == 0) {
                char *copy = strdup(to);
                if (copy != NULL) {
                    free(table[fd]->path);
                    table[fd]->path = copy;
                }
            }
        }
    } else if (from_in) {
        drop_log(from);
    } else if (to_in) {
        drop_log(to);
    }
}

static int do_rename(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags, int kind) {
    int result;
    if (!enter()) {
        if (kind == 0)
            return real_rename(from, to);
        if (kind == 1)
            return real_renameat(from_dir, from, to_dir, to);
        return real_renameat2(from_dir, from, to_dir, to, flags);
    }
    char from_abs[PATH_MAX], to_abs[PATH_MAX];
    int saved = errno;
    int from_in = under_root(from_dir, from, from_abs), to_in = under_root(to_dir, to, to_abs);
    pthread_mutex_lock(&lock);
    errno = saved;
    if (kind == 0)
        result = real_rename(from, to);
    else if (kind == 1)
        result = real_renameat(from_dir, from, to_dir, to);
    else
        result = real_renameat2(from_dir, from, to_dir, to, flags);
    saved = errno;
    if (result == 0 && (from_in || to_in))
        renamed(from_abs, from_in, to_abs, to_in);
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return result;
}

int rename(const char *from, const char *to) {
    pthread_once(&once, init);
    return do_rename(AT_FDCWD, from, AT_FDCWD, to, 0, 0);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    pthread_once(&once, init);
    return do_rename(from_dir, from, to_dir, to, 0, 1);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
    pthread_once(&once, init);
    return do_rename(from_dir, from, to_dir, to, flags, 2);
}

/* An unlink is durable at once: the file and its unsynced past are gone (fds still open on it write
   into a log no revert will find). */
static int do_unlink(int dirfd, const char *path, int flags, int at) {
    if (!enter())
        return at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    char abs_path[PATH_MAX];
    int saved = errno;
    int in = !(flags & AT_REMOVEDIR) && under_root(dirfd, path, abs_path);
    pthread_mutex_lock(&lock);
    errno = saved;
    int result = at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    saved = errno;
    if (result == 0 && in) {
        counters[C_UNLINK]++;
        drop_log(abs_path);
    }
    pthread_mutex_unlock(&lock);
    leave();
    errno = saved;
    return result;
}

int unlink(const char *path) {
    pthread_once(&once, init);
    return do_unlink(AT_FDCWD, path, 0, 0);
}

int unlinkat(int dirfd, const char *path, int flags) {
    pthread_once(&once, init);
    return do_unlink(dirfd, path, flags, 1);
}

/* ------------------------------------------------------------------ counters */
/* Write "name=count ..." for every counter into buf (for a test to read through ctypes); its length. */
int smr_powerloss_stats(char *buf, size_t size) {
    pthread_once(&once, init);
    size_t used = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < C_COUNT && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s=%llu", i ? " " : "", counter_names[i],
                                 counters[i]);
    pthread_mutex_unlock(&lock);
    return enabled ? (int)(used < size ? used : size) : -1;
}
