/* Shared by the libFuzzer targets: most loaders read files, so each input is written to a
 * per-process file on tmpfs and loaded from there. A target succeeds whether the loader
 * accepts or refuses the input; what libFuzzer catches is a crash, a hang, a leak or a
 * sanitizer report. */
#ifndef LB_FUZZ_H
#define LB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the input to a file named after the process and suffix; returns its path. */
static inline const char *fuzz_input_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/lowbit-fuzz-%d%s", dir, (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

/* A per-process scratch directory on tmpfs (created on first use) for loaders that read more
 * than one file or a directory tree; returns its path. */
static inline const char *fuzz_dir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/lowbit-fuzz-%d.d",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) abort();
    }
    return dir;
}

/* Writes n bytes to path (replacing it). */
static inline void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* The shared data directory: $LOWBIT_SHARED, else ../shared from the working directory. */
static inline const char *fuzz_shared(void)
{
    const char *s = getenv("LOWBIT_SHARED");
    return s ? s : "../shared";
}

#endif
