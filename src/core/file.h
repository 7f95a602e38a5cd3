/* Whole-file access: read-only memory maps for model weights, whole reads for small files,
 * and atomic writes (temporary name in the same directory, renamed when complete). */
#ifndef LB_FILE_H
#define LB_FILE_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    void *data;   /* NULL for an empty file */
    size_t size;
    int fd;       /* the file, open while data is mapped (lb_mapping_read); else unused */
} lb_mapping;

int lb_map_file(const char *path, lb_mapping *map, lb_error *err);
/* Unmaps and closes; nothing for a mapping whose data is NULL (empty, or handed over). */
void lb_unmap(lb_mapping *map);
/* True when [at, at + n) lies inside the mapping. */
bool lb_mapping_holds(const lb_mapping *map, const void *at, size_t n);
/* Copies n bytes of the mapping, those at address `at` inside it, into dst by reading the
 * file instead of touching the mapped pages: bytes read once in a while (a few rows of a
 * large table) then add nothing to the process's resident memory. -1 when [at, at + n) is
 * not inside the mapping or the read fails; the caller can still read the mapping itself. */
int lb_mapping_read(const lb_mapping *map, const void *at, void *dst, size_t n);

/* Reads a whole file and NUL-terminates it (the terminator is not counted in *len).
 * Refuses files larger than max_bytes. */
int lb_read_file(const char *path, size_t max_bytes, char **data, size_t *len, lb_error *err);

bool lb_file_exists(const char *path);
bool lb_is_dir(const char *path);

/* Joins dir and name with one '/'; the result is malloc'd. */
char *lb_path_join(const char *dir, const char *name);
/* The directory part of path ("." when there is none); malloc'd. */
char *lb_path_dir(const char *path);

/* Atomic output: lb_atomic_open creates "<path>.tmp.<pid>" beside path; lb_atomic_commit
 * flushes, fsyncs and renames it over path; lb_atomic_abort closes and removes it. */
typedef struct {
    FILE *fp;
    char *path;
    char *tmp_path;
} lb_atomic_file;

/* Opening also removes the "<path>.tmp.<pid>" files of writers that were killed (their process
 * is gone), so an interrupted write leaves its temporary file only until the next write of the
 * same path. */
int lb_atomic_open(lb_atomic_file *f, const char *path, lb_error *err);
int lb_atomic_commit(lb_atomic_file *f, lb_error *err);
void lb_atomic_abort(lb_atomic_file *f);

/* Removes every "<path>.tmp.<pid>" beside path whose process no longer exists; remove_fn
 * deletes one (NULL: unlink; a directory writer passes its own tree removal). */
void lb_atomic_clean_stale(const char *path, void (*remove_fn)(const char *));

#endif
