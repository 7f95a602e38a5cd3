/* File helpers: maps, whole reads, atomic writes. */
#include "core/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int lb_map_file(const char *path, lb_mapping *map, lb_error *err)
{
    map->data = NULL;
    map->size = 0;
    map->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lb_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lb_fail(err, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return lb_fail(err, "%s: cannot map: %s", path, strerror(errno));
        }
        map->data = p;
        map->size = (size_t)st.st_size;
        map->fd = fd;
        return 0;
    }
    close(fd);
    return 0;
}

void lb_unmap(lb_mapping *map)
{
    if (map->data) {
        munmap(map->data, map->size);
        close(map->fd);
    }
    map->data = NULL;
    map->size = 0;
    map->fd = -1;
}

bool lb_mapping_holds(const lb_mapping *map, const void *at, size_t n)
{
    uintptr_t lo = (uintptr_t)map->data, p = (uintptr_t)at;
    return map->data && p >= lo && p - lo <= map->size && n <= map->size - (p - lo);
}

int lb_mapping_read(const lb_mapping *map, const void *at, void *dst, size_t n)
{
    if (!lb_mapping_holds(map, at, n))
        return -1;
    off_t from = (off_t)((uintptr_t)at - (uintptr_t)map->data);
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(map->fd, (char *)dst + done, n - done, from + (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        done += (size_t)got;
    }
    return 0;
}

int lb_read_file(const char *path, size_t max_bytes, char **data, size_t *len, lb_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lb_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return lb_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return lb_fail(err, "%s: file is %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = lb_malloc(n + 1);
    if (n && fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return lb_fail(err, "%s: read failed", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

bool lb_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool lb_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *lb_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/')
        a--;
    char *p = lb_malloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

char *lb_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return lb_strdup(".");
    if (slash == path)
        return lb_strdup("/");
    return lb_strndup(path, (size_t)(slash - path));
}

static void unlink_path(const char *p)
{
    unlink(p);
}

void lb_atomic_clean_stale(const char *path, void (*remove_fn)(const char *))
{
    char *dir = lb_path_dir(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t nb = strlen(base);
    DIR *d = nb ? opendir(dir) : NULL;
    if (!d) {
        free(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, nb) != 0 || strncmp(name + nb, ".tmp.", 5) != 0)
            continue;
        const char *digits = name + nb + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || errno || pid <= 0 || pid == (long)getpid())
            continue;
        /* only a writer that is gone: a live one (another process) is still at work */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = lb_path_join(dir, name);
        (remove_fn ? remove_fn : unlink_path)(p);
        free(p);
    }
    closedir(d);
    free(dir);
}

int lb_atomic_open(lb_atomic_file *f, const char *path, lb_error *err)
{
    lb_atomic_clean_stale(path, NULL);
    size_t n = strlen(path) + 32;
    f->path = lb_strdup(path);
    f->tmp_path = lb_malloc(n);
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        int e = errno;
        free(f->path);
        free(f->tmp_path);
        f->path = f->tmp_path = NULL;
        return lb_fail(err, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int lb_atomic_commit(lb_atomic_file *f, lb_error *err)
{
    int rc = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp) || fsync(fileno(f->fp)) != 0)
        rc = lb_fail(err, "%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && rc == 0)
        rc = lb_fail(err, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (rc == 0 && rename(f->tmp_path, f->path) != 0)
        rc = lb_fail(err, "%s: cannot rename into place: %s", f->path, strerror(errno));
    if (rc != 0)
        unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    f->path = f->tmp_path = NULL;
    return rc;
}

void lb_atomic_abort(lb_atomic_file *f)
{
    if (f->fp)
        fclose(f->fp);
    if (f->tmp_path)
        unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    f->fp = NULL;
    f->path = f->tmp_path = NULL;
}
