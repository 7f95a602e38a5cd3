/* Opening lowbit-extras.so: see extras.h. */
#include "core/extras.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXTRAS_NAME "lowbit-extras.so"

/* Where `cmake --install` puts the module, relative to the program's directory. */
#ifndef LB_EXTRAS_FROM_BIN
#define LB_EXTRAS_FROM_BIN "../lib/lowbit"
#endif

/* dir + name into path (size bytes); -1 when it does not fit. */
static int join(char *path, size_t size, const char *dir, size_t dir_len, const char *name)
{
    int n = snprintf(path, size, "%.*s%s", (int)dir_len, dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* LOWBIT_EXTRAS; else beside the running program (a build tree), else where an installed
 * tree keeps it; when neither exists, the first, for the error to name. The program's path
 * is /proc/self/exe, not argv[0], which a PATH lookup or a symlink may have made something
 * else. *other receives the second place looked in, or "" when there is none. */
static int extras_path(char *path, size_t size, char *other, size_t other_size, lb_error *err)
{
    other[0] = '\0';
    const char *env = getenv("LOWBIT_EXTRAS");
    if (env && *env) {
        if (strlen(env) >= size)
            return lb_fail(err, "LOWBIT_EXTRAS: path of %zu bytes is too long", strlen(env));
        strcpy(path, env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return lb_fail(err, "cannot find the program's own path to open %s beside it", EXTRAS_NAME);
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    size_t dir = slash ? (size_t)(slash - exe) + 1 : 0;
    if (join(path, size, exe, dir, EXTRAS_NAME) ||
        join(other, other_size, exe, dir, LB_EXTRAS_FROM_BIN "/" EXTRAS_NAME))
        return lb_fail(err, "%s: path too long", exe);
    if (access(path, F_OK) != 0 && access(other, F_OK) == 0) {
        strcpy(path, other);
        other[0] = '\0';
    }
    return 0;
}

void *lb_extras_symbol(const char *name, lb_error *err)
{
    static void *handle;
    static char path[PATH_MAX];
    if (!handle) {
        char other[PATH_MAX];
        if (extras_path(path, sizeof path, other, sizeof other, err))
            return NULL;
        /* every symbol bound now: a module from another build fails here, not mid-command */
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            if (other[0] && access(path, F_OK) != 0)
                lb_fail(err, "cannot open %s (this command needs it; nor is it at %s): %s", path,
                        other, dlerror());
            else
                lb_fail(err, "cannot open %s (this command needs it): %s", path, dlerror());
            return NULL;
        }
    }
    void *sym = dlsym(handle, name);
    if (!sym)
        lb_fail(err, "%s has no %s: it is not this program's build", path, name);
    return sym;
}
