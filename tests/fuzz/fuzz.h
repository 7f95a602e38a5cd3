/* Shared by the libFuzzer targets: most loaders read files, so each input is written to a
 * per-process file on tmpfs and loaded from there. A target succeeds whether the loader
 * accepts or refuses the input; what libFuzzer catches is a crash, a hang, a leak or a
 * sanitizer report. */
#ifndef LB_FUZZ_H
#define LB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the process wrote on tmpfs goes when it exits normally (a crash leaves it for a look). */
static char fuzz_file_path_[256], fuzz_dir_path_[256];
static inline int fuzz_remove_one_(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(p);
    return 0;
}
static inline void fuzz_cleanup_(void)
{
    if (fuzz_file_path_[0]) unlink(fuzz_file_path_);
    if (fuzz_dir_path_[0]) nftw(fuzz_dir_path_, fuzz_remove_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes the input to a file named after the process and suffix; returns its path. */
static inline const char *fuzz_input_file(const uint8_t *data, size_t size, const char *suffix)
{
    char *path = fuzz_file_path_;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (!path[0] && !fuzz_dir_path_[0]) atexit(fuzz_cleanup_);
    snprintf(fuzz_file_path_, sizeof fuzz_file_path_, "%s/lowbit-fuzz-%d%s", dir, (int)getpid(), suffix);
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
    char *dir = fuzz_dir_path_;
    if (!dir[0]) {
        if (!fuzz_file_path_[0]) atexit(fuzz_cleanup_);
        snprintf(dir, sizeof fuzz_dir_path_, "%s/lowbit-fuzz-%d.d",
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
