/* Opening lowbit-extras.so: see extras.h. */
#include "core/extras.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXTRAS_NAME "lowbit-extras.so"

/* LOWBIT_EXTRAS, else the directory of the running program (not of argv[0], which a PATH
 * lookup or a symlink may have made something else). */
static int extras_path(char *path, size_t size, lb_error *err)
{
    const char *env = getenv("LOWBIT_EXTRAS");
    if (env && *env) {
        if (strlen(env) >= size)
            return lb_fail(err, "LOWBIT_EXTRAS: path of %zu bytes is too long", strlen(env));
        strcpy(path, env);
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", path, size - 1);
    if (n <= 0)
        return lb_fail(err, "cannot find the program's own path to open %s beside it", EXTRAS_NAME);
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    if (dir + sizeof EXTRAS_NAME > size)
        return lb_fail(err, "%s: path too long", path);
    memcpy(path + dir, EXTRAS_NAME, sizeof EXTRAS_NAME);
    return 0;
}

void *lb_extras_symbol(const char *name, lb_error *err)
{
    static void *handle;
    static char path[PATH_MAX];
    if (!handle) {
        if (extras_path(path, sizeof path, err))
            return NULL;
        /* every symbol bound now: a module from another build fails here, not mid-command */
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            lb_fail(err, "cannot open %s (this command needs it): %s", path, dlerror());
            return NULL;
        }
    }
    void *sym = dlsym(handle, name);
    if (!sym)
        lb_fail(err, "%s has no %s: it is not this program's build", path, name);
    return sym;
}
