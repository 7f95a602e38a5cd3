/* Downloads model repositories from the Hugging Face hub (or any server speaking its API)
 * with libcurl: lists a revision's files, fetches each through the resolve URL into
 * "<file>.part", resumes partial downloads with Range requests, checks sizes and SHA-256
 * hashes, and renames the finished file into place. Nothing here prints; the caller gets
 * progress and notices through callbacks. */
#ifndef LB_HUB_H
#define LB_HUB_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#define LB_HUB_DEFAULT_ENDPOINT "https://huggingface.co"

typedef struct {
    const char *name;        /* the file's path in the repository */
    uint64_t done;           /* bytes of the file on disk, resumed part included */
    int64_t total;           /* -1 when unknown */
    uint64_t transferred;    /* bytes received in this run */
    double elapsed_s;        /* since this file's first request */
    bool finished;
} lb_hub_progress;

typedef struct {
    const char *endpoint;       /* e.g. "https://huggingface.co"; a trailing '/' is ignored */
    const char *token;          /* sent as "Authorization: Bearer ..."; NULL for none */
    const char *user_agent;     /* NULL: "lowbit" */
    long connect_timeout_s;     /* 0: 30 */
    long stall_timeout_s;       /* abort when nothing arrives for this long; 0: 60 */
    int retries;                /* further attempts after a transient failure; <0: none */
    double retry_delay_s;       /* first back-off, doubled each time; 0: 1 s */
    void (*progress)(const lb_hub_progress *p, void *user);
    void (*notice)(const char *line, void *user);   /* retries, restarts */
    void *user;
} lb_hub_opts;

typedef struct {
    char *path;          /* "rfilename": relative, '/'-separated, checked safe */
    int64_t size;        /* -1 when the listing does not say */
    char sha256[65];     /* LFS content hash, "" when unknown */
} lb_hub_file;

typedef struct {
    char *commit;        /* the revision's commit id, NULL when the listing has none */
    lb_hub_file *files;
    int n_files;
} lb_hub_listing;

/* ORG/NAME (or a bare NAME): letters, digits, '.', '_', '-'; no "." or ".." parts. */
int lb_hub_check_repo(const char *repo, lb_error *err);
/* A relative path with no empty, "." or ".." component and no control characters. */
bool lb_hub_safe_path(const char *path);
/* The files a model needs when no --include is given (configs, tokenizer, safetensors). */
bool lb_hub_default_file(const char *path);

/* Parses the JSON of GET /api/models/{repo}/revision/{rev}[?blobs=true]. */
int lb_hub_parse_listing(const char *json, size_t len, const char *what, lb_hub_listing *out,
                         lb_error *err);
/* Fetches and parses the listing of repo at revision. */
int lb_hub_list(const lb_hub_opts *o, const char *repo, const char *revision,
                lb_hub_listing *out, lb_error *err);
void lb_hub_listing_free(lb_hub_listing *l);

typedef struct {
    bool up_to_date;         /* the local copy was already complete; nothing was fetched */
    bool verified;           /* a SHA-256 was known and matched */
    uint64_t size;           /* the final file's size */
    uint64_t resumed_from;   /* bytes kept from an earlier .part (0: started fresh) */
    uint64_t transferred;    /* bytes received in this run */
    int attempts;            /* requests made for the body */
    double seconds;
    char sha256[65];         /* the hash checked, "" when none was known */
} lb_hub_result;

/* Downloads one listed file to dest_dir/f->path (directories created as needed) through
 * {endpoint}/{repo}/resolve/{revision}/{path}. A complete local copy (right size, and right
 * hash when known) is left alone. */
int lb_hub_fetch_file(const lb_hub_opts *o, const char *repo, const char *revision,
                      const lb_hub_file *f, const char *dest_dir, lb_hub_result *res,
                      lb_error *err);

#endif
