/* Hugging Face hub client over libcurl. The hub's conventions this follows:
 *  - GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true lists the files ("siblings")
 *    with their sizes and, for files kept in Git LFS, "lfs.sha256";
 *  - GET {endpoint}/{repo}/resolve/{rev}/{path} serves a file; LFS files answer 302 to a CDN
 *    and carry X-Linked-ETag (the sha256) and X-Linked-Size on that redirect;
 *  - errors come with X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
 * A download goes to "<file>.part", is resumed with "Range: bytes=N-" (206 appends, 200 starts
 * again), is hashed as it arrives (the kept prefix is hashed first), and is renamed over the
 * final name only after the size and hash are right. */
#include "io/hub.h"

#include "core/file.h"
#include "core/sha256.h"
#include "core/timer.h"
#include "core/vec.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTING_BYTES ((size_t)64 << 20)   /* far above the largest real repository */
#define MAX_ERROR_BODY 2048

/* ---- names and selection --------------------------------------------------------------- */

static bool repo_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

int lb_hub_check_repo(const char *repo, lb_error *err)
{
    int parts = 0;
    const char *p = repo;
    for (;;) {
        const char *start = p;
        while (*p && *p != '/') {
            if (!repo_char(*p))
                return lb_fail(err, "repository '%.200s': expected ORG/NAME of letters, digits, "
                               "'.', '_' and '-'", repo);
            p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 0 || n > 96 || (n == 1 && start[0] == '.') ||
            (n == 2 && start[0] == '.' && start[1] == '.'))
            return lb_fail(err, "repository '%.200s': expected ORG/NAME (each part 1 to 96 "
                           "characters, not '.' or '..')", repo);
        parts++;
        if (!*p)
            break;
        p++;
    }
    if (parts > 2)
        return lb_fail(err, "repository '%.200s': expected ORG/NAME, not a deeper path", repo);
    return 0;
}

bool lb_hub_safe_path(const char *path)
{
    if (!path[0] || path[0] == '/')
        return false;
    const char *p = path;
    for (;;) {
        const char *start = p;
        for (; *p && *p != '/'; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
                return false;
        size_t n = (size_t)(p - start);
        if (n == 0 || (n == 1 && start[0] == '.') ||
            (n == 2 && start[0] == '.' && start[1] == '.'))
            return false;
        if (!*p)
            return true;
        p++;
    }
}

bool lb_hub_default_file(const char *path)
{
    static const char *const wanted[] = {
        "config.json",      "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "tokenizer.model",  "vocab.json",             "merges.txt",
        "model.safetensors.index.json", "*.safetensors",
    };
    /* FNM_PATHNAME: only the repository's top level, where the model itself lives. */
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        if (fnmatch(wanted[i], path, FNM_PATHNAME) == 0)
            return true;
    return false;
}

/* ---- listing --------------------------------------------------------------------------- */

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return s[n] == '\0';
}

void lb_hub_listing_free(lb_hub_listing *l)
{
    for (int i = 0; i < l->n_files; i++)
        free(l->files[i].path);
    free(l->files);
    free(l->commit);
    l->files = NULL;
    l->commit = NULL;
    l->n_files = 0;
}

int lb_hub_parse_listing(const char *json, size_t len, const char *what, lb_hub_listing *out,
                         lb_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root)
        return lb_fail(err, "%s: bad JSON at line %d, column %d: %s", what, je.line, je.column,
                       je.text);
    int rc = -1;
    if (!json_is_object(root)) {
        lb_fail(err, "%s: expected a JSON object", what);
        goto done;
    }
    json_t *sha = json_object_get(root, "sha");
    /* The commit pins every file to the same snapshot; anything but a git id is ignored. */
    if (json_is_string(sha) && json_string_length(sha) == 40 && is_hex(json_string_value(sha), 40))
        out->commit = lb_strdup(json_string_value(sha));
    json_t *siblings = json_object_get(root, "siblings");
    if (!json_is_array(siblings)) {
        lb_fail(err, "%s: field 'siblings' is missing or not an array", what);
        goto done;
    }
    size_t n = json_array_size(siblings);
    out->files = lb_calloc(n ? n : 1, sizeof *out->files);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(siblings, i);
        if (!json_is_object(s)) {
            lb_fail(err, "%s: siblings[%zu] is not an object", what, i);
            goto done;
        }
        json_t *name = json_object_get(s, "rfilename");
        if (!json_is_string(name)) {
            lb_fail(err, "%s: siblings[%zu].rfilename is missing or not a string", what, i);
            goto done;
        }
        const char *path = json_string_value(name);
        if (strlen(path) != json_string_length(name) || !lb_hub_safe_path(path)) {
            lb_fail(err, "%s: siblings[%zu].rfilename '%.200s' is not a safe relative path", what,
                    i, path);
            goto done;
        }
        lb_hub_file *f = &out->files[out->n_files++];
        f->path = lb_strdup(path);
        f->size = -1;
        json_t *size = json_object_get(s, "size");
        if (size && !json_is_null(size)) {
            if (!json_is_integer(size) || json_integer_value(size) < 0) {
                lb_fail(err, "%s: siblings[%zu].size is not a non-negative integer", what, i);
                goto done;
            }
            f->size = (int64_t)json_integer_value(size);
        }
        json_t *lfs = json_object_get(s, "lfs");
        if (lfs && !json_is_null(lfs)) {
            if (!json_is_object(lfs)) {
                lb_fail(err, "%s: siblings[%zu].lfs is not an object", what, i);
                goto done;
            }
            json_t *h = json_object_get(lfs, "sha256");
            if (h) {
                const char *hv = json_is_string(h) ? json_string_value(h) : "";
                if (strlen(hv) != 64 || !is_hex(hv, 64)) {
                    lb_fail(err, "%s: siblings[%zu].lfs.sha256 is not 64 hex digits", what, i);
                    goto done;
                }
                for (int k = 0; k < 64; k++)
                    f->sha256[k] = (char)tolower((unsigned char)hv[k]);
                f->sha256[64] = '\0';
            }
            json_t *lsize = json_object_get(lfs, "size");
            if (lsize && (!json_is_integer(lsize) || json_integer_value(lsize) < 0)) {
                lb_fail(err, "%s: siblings[%zu].lfs.size is not a non-negative integer", what, i);
                goto done;
            }
            if (lsize) {
                int64_t ls = (int64_t)json_integer_value(lsize);
                if (f->size >= 0 && f->size != ls) {
                    lb_fail(err, "%s: siblings[%zu] ('%.200s'): size %" PRId64 " but lfs.size %"
                            PRId64, what, i, path, f->size, ls);
                    goto done;
                }
                f->size = ls;
            }
        }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc)
        lb_hub_listing_free(out);
    return rc;
}

/* ---- one HTTP request ------------------------------------------------------------------ */

typedef struct {
    const lb_hub_opts *o;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    /* Headers of the response being read; cleared at each status line of a redirect chain. */
    char etag[96], error_code[64], error_message[256], content_range[96];
    /* The hub sets these on its redirect, so they are kept from any response in the chain. */
    char linked_etag[96];
    int64_t linked_size;
    /* Body sink: memory (listing) or the .part file (download). */
    lb_buf *mem;
    FILE *fp;
    const char *part;
    lb_sha256 *hash;
    uint64_t offset;     /* bytes in the file before this request; 0 after a restart */
    uint64_t written;    /* body bytes this request stored */
    bool decided;        /* the status was looked at when the body began */
    bool error_body;
    bool restarted;      /* asked for a range, got the whole file */
    lb_buf errbody;
    char failure[512];   /* why a callback stopped the transfer */
    /* progress */
    const char *name;
    int64_t total;
    uint64_t transferred_before;
    double t0, last_report;
} xfer;

static void copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
    xfer *x = user;
    size_t len = size * nitems;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        x->etag[0] = x->error_code[0] = x->error_message[0] = x->content_range[0] = '\0';
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
#define HEADER_IS(h) (nlen == sizeof(h) - 1 && strncasecmp(buf, h, nlen) == 0)
    if (HEADER_IS("etag"))
        copy_field(x->etag, sizeof x->etag, v, vlen);
    else if (HEADER_IS("x-linked-etag"))
        copy_field(x->linked_etag, sizeof x->linked_etag, v, vlen);
    else if (HEADER_IS("x-error-code"))
        copy_field(x->error_code, sizeof x->error_code, v, vlen);
    else if (HEADER_IS("x-error-message"))
        copy_field(x->error_message, sizeof x->error_message, v, vlen);
    else if (HEADER_IS("content-range"))
        copy_field(x->content_range, sizeof x->content_range, v, vlen);
    else if (HEADER_IS("x-linked-size")) {
        char tmp[32];
        copy_field(tmp, sizeof tmp, v, vlen);
        char *e;
        long long s = strtoll(tmp, &e, 10);
        if (e != tmp && *e == '\0' && s >= 0)
            x->linked_size = s;
    }
#undef HEADER_IS
    return len;
}

/* The status is known once the body starts: decide there whether the bytes append to the
 * kept prefix (206), replace it (200), or are an error page (>= 300). */
static int decide(xfer *x)
{
    x->decided = true;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) {
        x->error_body = true;
        return 0;
    }
    if (!x->fp)
        return 0;
    if (code == 206) {
        uint64_t start;
        if (x->offset == 0 || sscanf(x->content_range, "bytes %" SCNu64 "-", &start) != 1 ||
            start != x->offset) {
            snprintf(x->failure, sizeof x->failure,
                     "answered 206 with Content-Range '%s' to a request for bytes %" PRIu64 "-",
                     x->content_range, x->offset);
            return -1;
        }
        return 0;
    }
    if (x->offset > 0) {
        if (fflush(x->fp) != 0 || ftruncate(fileno(x->fp), 0) != 0 ||
            fseeko(x->fp, 0, SEEK_SET) != 0) {
            snprintf(x->failure, sizeof x->failure, "cannot truncate %s: %s", x->part,
                     strerror(errno));
            return -1;
        }
        lb_sha256_init(x->hash);
        x->offset = 0;
        x->restarted = true;
    }
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *user)
{
    xfer *x = user;
    size_t len = size * nitems;
    if (!x->decided && decide(x))
        return 0;
    if (x->error_body) {
        if (x->errbody.n < MAX_ERROR_BODY)
            lb_buf_append(&x->errbody, data,
                          len < MAX_ERROR_BODY - x->errbody.n ? len : MAX_ERROR_BODY - x->errbody.n);
        return len;
    }
    if (x->mem) {
        if (x->mem->n + len > MAX_LISTING_BYTES) {
            snprintf(x->failure, sizeof x->failure, "the listing is larger than %zu bytes",
                     MAX_LISTING_BYTES);
            return 0;
        }
        lb_buf_append(x->mem, data, len);
        return len;
    }
    if (fwrite(data, 1, len, x->fp) != len) {
        snprintf(x->failure, sizeof x->failure, "cannot write %s: %s", x->part, strerror(errno));
        return 0;
    }
    lb_sha256_update(x->hash, data, len);
    x->written += len;
    return len;
}

static void report(xfer *x, bool finished)
{
    if (!x->o->progress || !x->name)
        return;
    int64_t total = x->total;
    if (total < 0 && x->linked_size >= 0)
        total = x->linked_size;
    if (total < 0 && x->curl) {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl >= 0)
            total = (int64_t)(x->offset + (uint64_t)cl);
    }
    lb_hub_progress p = {x->name, x->offset + x->written, total,
                         x->transferred_before + x->written, (lb_now_ms() - x->t0) / 1e3,
                         finished};
    x->o->progress(&p, x->o->user);
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer *x = user;
    double now = lb_now_ms();
    if (now - x->last_report >= 100.0) {
        x->last_report = now;
        report(x, false);
    }
    return 0;
}

/* Runs one GET; the caller looks at the curl code and the HTTP status. */
static CURLcode perform(const lb_hub_opts *o, const char *url, xfer *x, bool listing, long *code)
{
    *code = 0;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(x->failure, sizeof x->failure, "cannot start libcurl");
        return CURLE_FAILED_INIT;
    }
    x->curl = c;
    x->errbuf[0] = '\0';
    struct curl_slist *headers = NULL;
    if (o->token && o->token[0]) {
        lb_buf auth = {0};
        lb_buf_appendf(&auth, "Authorization: Bearer %s", o->token);
        headers = curl_slist_append(headers, lb_buf_cstr(&auth));
        lb_buf_free(&auth);
    }
    char range[48];
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "lowbit");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s > 0 ? o->connect_timeout_s : 30L);
    /* No fixed total timeout (a model can take hours); a stalled connection is what hangs. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s > 0 ? o->stall_timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    /* Compression only for the listing: a compressed file body would break byte ranges. */
    if (listing)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (x->offset > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", x->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    /* An empty body never reaches on_body; the restart decision still has to be made. */
    if (rc == CURLE_OK && !x->decided && decide(x))
        rc = CURLE_WRITE_ERROR;
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    x->curl = NULL;
    return rc;
}

/* The hub's own words for an error: X-Error-Message, or the "error" field of a JSON body. */
static void hub_detail(xfer *x, char *out, size_t cap)
{
    out[0] = '\0';
    const char *msg = x->error_message;
    json_t *j = NULL;
    if (!msg[0] && x->errbody.n) {
        j = json_loadb(x->errbody.v, x->errbody.n, 0, NULL);
        json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
        if (json_is_string(e))
            msg = json_string_value(e);
    }
    if (msg[0]) {
        snprintf(out, cap, "; hub: %.200s", msg);
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
    }
    json_decref(j);
}

typedef enum { REQ_OK, REQ_RETRY, REQ_FAIL, REQ_RANGE } req_status;

/* Turns the outcome of a request into OK, a transient failure worth retrying, a range the
 * server cannot serve (416), or a final failure; err gets one line for the last two. */
static req_status judge(xfer *x, CURLcode rc, long code, const char *url, const char *repo,
                        const char *revision, const char *file, lb_error *err)
{
    if (x->failure[0]) {
        lb_fail(err, "%s: %s", url, x->failure);
        return REQ_FAIL;
    }
    if (rc != CURLE_OK) {
        const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            lb_fail(err, "%s: timed out: %s", url, why);
            return REQ_RETRY;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
            lb_fail(err, "%s: %s", url, why);
            return REQ_RETRY;
        default:
            /* Refused connections and unknown hosts fail at once: retrying rarely helps and
             * the user should hear about it now. */
            lb_fail(err, "cannot download %s: %s", url, why);
            return REQ_FAIL;
        }
    }
    if (code >= 200 && code < 300)
        return REQ_OK;
    char detail[300];
    hub_detail(x, detail, sizeof detail);
    const char *ec = x->error_code;
    if (code == 416)
        return REQ_RANGE;
    if (strcmp(ec, "RepoNotFound") == 0 || strcmp(ec, "RevisionNotFound") == 0 ||
        (code == 404 && !file)) {
        lb_fail(err, "%s: repository or revision not found (HTTP %ld from %s%s)%s", repo, code,
                url, detail,
                code == 404 ? "" : "; if it is private, it needs a token (HF_TOKEN)");
        return REQ_FAIL;
    }
    if (strcmp(ec, "EntryNotFound") == 0 || (code == 404 && file)) {
        lb_fail(err, "%s: file '%s' not found at revision '%s' (HTTP 404 from %s%s)", repo,
                file, revision, url, detail);
        return REQ_FAIL;
    }
    if (strcmp(ec, "GatedRepo") == 0) {
        lb_fail(err, "%s is gated: accept its conditions on the hub; the download needs a token "
                "(HF_TOKEN) of an account with access (HTTP %ld from %s%s)", repo, code, url,
                detail);
        return REQ_FAIL;
    }
    if (code == 401 || code == 403) {
        if (x->o->token && x->o->token[0])
            lb_fail(err, "%s: HTTP %ld from %s: the token was refused or has no access to %s; "
                    "needs a token (HF_TOKEN) with read access%s", repo, code, url, repo, detail);
        else
            lb_fail(err, "%s: HTTP %ld from %s: needs a token (HF_TOKEN or --token): the "
                    "repository is private or gated%s", repo, code, url, detail);
        return REQ_FAIL;
    }
    lb_fail(err, "%s: HTTP %ld from %s%s", repo, code, url, detail);
    return code == 408 || code == 429 || code >= 500 ? REQ_RETRY : REQ_FAIL;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void notice(const lb_hub_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(const lb_hub_opts *o, const char *fmt, ...)
{
    if (!o->notice)
        return;
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->notice(line, o->user);
}

/* Escapes a URL component; '/' stays when keep_slash (file paths keep their folders). */
static void append_escaped(lb_buf *b, const char *s, bool keep_slash)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
            lb_buf_append(b, s, 1);
        else
            lb_buf_appendf(b, "%%%02X", c);
    }
}

static void append_endpoint(lb_buf *b, const lb_hub_opts *o)
{
    const char *e = o->endpoint && o->endpoint[0] ? o->endpoint : LB_HUB_DEFAULT_ENDPOINT;
    size_t n = strlen(e);
    while (n > 0 && e[n - 1] == '/')
        n--;
    lb_buf_append(b, e, n);
}

static int attempts_allowed(const lb_hub_opts *o)
{
    return 1 + (o->retries > 0 ? o->retries : 0);
}

static double first_delay(const lb_hub_opts *o)
{
    return o->retry_delay_s > 0 ? o->retry_delay_s : 1.0;
}

/* ---- listing over HTTP ----------------------------------------------------------------- */

int lb_hub_list(const lb_hub_opts *o, const char *repo, const char *revision,
                lb_hub_listing *out, lb_error *err)
{
    memset(out, 0, sizeof *out);
    if (lb_hub_check_repo(repo, err))
        return -1;
    lb_buf url = {0};
    append_endpoint(&url, o);
    lb_buf_appendf(&url, "/api/models/%s/revision/", repo);
    append_escaped(&url, revision, false);
    lb_buf_appendf(&url, "?blobs=true");
    const char *u = lb_buf_cstr(&url);

    int rc = -1;
    double delay = first_delay(o);
    for (int attempt = 1;; attempt++) {
        lb_buf body = {0};
        xfer x = {.o = o, .mem = &body, .linked_size = -1};
        long code;
        CURLcode cc = perform(o, u, &x, true, &code);
        req_status st = judge(&x, cc, code, u, repo, revision, NULL, err);
        lb_buf_free(&x.errbody);
        if (st == REQ_OK) {
            rc = lb_hub_parse_listing(body.v ? body.v : "", body.n, u, out, err);
            lb_buf_free(&body);
            break;
        }
        lb_buf_free(&body);
        if (st == REQ_RANGE)
            lb_fail(err, "%s: HTTP 416 for a request without a range", u);
        if (st != REQ_RETRY)
            break;
        if (attempt >= attempts_allowed(o)) {
            lb_fail_prefix(err, "after %d attempts: ", attempt);
            break;
        }
        notice(o, "listing %s: %s; retrying in %.0f s", repo, err->msg, delay);
        sleep_s(delay);
        delay = delay * 2 > 30 ? 30 : delay * 2;
    }
    lb_buf_free(&url);
    return rc;
}

/* ---- one file -------------------------------------------------------------------------- */

/* mkdir -p of the directory that will hold path. */
static int make_parents(const char *path, lb_error *err)
{
    char *dir = lb_path_dir(path);
    int rc = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            rc = lb_fail(err, "cannot create directory %s: %s", dir, strerror(errno));
            break;
        }
        if (!lb_is_dir(dir)) {
            rc = lb_fail(err, "cannot create directory %s: a file of that name exists", dir);
            break;
        }
        *p = saved;
        if (!saved)
            break;
    }
    free(dir);
    return rc;
}

/* A quoted or weak ETag that is a sha256 (the hub's for LFS files), lower-cased into out. */
static bool etag_sha256(const char *etag, char out[65])
{
    if (strncmp(etag, "W/", 2) == 0)
        etag += 2;
    if (*etag == '"')
        etag++;
    size_t n = strlen(etag);
    if (n > 0 && etag[n - 1] == '"')
        n--;
    if (n != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)etag[i]))
            return false;
        out[i] = (char)tolower((unsigned char)etag[i]);
    }
    out[64] = '\0';
    return true;
}

typedef enum { LOCAL_NONE, LOCAL_FRESH, LOCAL_DIFFERS, LOCAL_UNKNOWN } local_state;

/* Whether the final file is already the hub's: same size, and same hash when one is known.
 * Without a size from the listing nothing can be said, and the file is fetched again. */
static int check_local(const lb_hub_file *f, const char *path, lb_hub_result *res,
                       local_state *state, lb_error *err)
{
    *state = LOCAL_NONE;
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (!S_ISREG(st.st_mode))
        return lb_fail(err, "%s exists and is not a regular file", path);
    *state = f->size < 0 ? LOCAL_UNKNOWN : LOCAL_DIFFERS;
    if (f->size < 0 || (uint64_t)st.st_size != (uint64_t)f->size)
        return 0;
    if (f->sha256[0]) {
        char hex[65];
        if (lb_sha256_file(path, hex, NULL, err))
            return -1;
        if (strcmp(hex, f->sha256) != 0)
            return 0;
        res->verified = true;
        memcpy(res->sha256, hex, sizeof hex);
    }
    res->up_to_date = true;
    res->size = (uint64_t)st.st_size;
    *state = LOCAL_FRESH;
    return 0;
}

int lb_hub_fetch_file(const lb_hub_opts *o, const char *repo, const char *revision,
                      const lb_hub_file *f, const char *dest_dir, lb_hub_result *res,
                      lb_error *err)
{
    memset(res, 0, sizeof *res);
    double t0 = lb_now_ms();
    if (!lb_hub_safe_path(f->path))
        return lb_fail(err, "'%.200s' is not a safe relative path", f->path);
    char *final = lb_path_join(dest_dir, f->path);
    lb_buf part_name = {0}, url = {0};
    lb_buf_appendf(&part_name, "%s.part", final);
    const char *part = lb_buf_cstr(&part_name);
    append_endpoint(&url, o);
    lb_buf_appendf(&url, "/%s/resolve/", repo);
    append_escaped(&url, revision, false);
    lb_buf_append(&url, "/", 1);
    append_escaped(&url, f->path, true);
    const char *u = lb_buf_cstr(&url);
    FILE *fp = NULL;
    int rc = -1;
    local_state local;

    if (make_parents(final, err) || check_local(f, final, res, &local, err))
        goto out;
    if (local == LOCAL_FRESH) {
        res->seconds = (lb_now_ms() - t0) / 1e3;
        rc = 0;
        goto out;
    }
    if (local == LOCAL_DIFFERS)
        notice(o, "%s: the local copy differs from the hub's; downloading it again", f->path);

    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        lb_fail(err, "cannot open %s: %s", part, strerror(errno));
        goto out;
    }
    /* Two pulls into one directory would interleave their bytes in the same .part. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        lb_fail(err, "%s is being written by another download (%s)", part, strerror(errno));
        close(fd);
        goto out;
    }
    fp = fdopen(fd, "r+b");
    if (!fp) {
        lb_fail(err, "cannot open %s: %s", part, strerror(errno));
        close(fd);
        goto out;
    }

    lb_sha256 hash;
    uint64_t hashed = UINT64_MAX;   /* bytes `hash` covers; UINT64_MAX: none yet */
    char header_sha[65] = "";
    int64_t header_size = -1, range_total = -1;
    double delay = first_delay(o);
    for (int attempt = 1;; attempt++) {
        struct stat st;
        if (fflush(fp) != 0 || fstat(fd, &st) != 0) {
            lb_fail(err, "cannot write %s: %s", part, strerror(errno));
            goto out;
        }
        uint64_t have = (uint64_t)st.st_size;
        if (f->size >= 0 && have > (uint64_t)f->size) {
            /* Longer than the file can be: not a prefix of it. */
            if (ftruncate(fd, 0) != 0) {
                lb_fail(err, "cannot truncate %s: %s", part, strerror(errno));
                goto out;
            }
            have = 0;
            hashed = UINT64_MAX;
        }
        if (hashed != have) {
            uint64_t fed;
            lb_sha256_init(&hash);
            if (have > 0 && lb_sha256_file_into(&hash, part, have, &fed, err))
                goto out;
            hashed = have;
        }
        if (attempt == 1)
            res->resumed_from = have;
        if (have > 0 && f->size >= 0 && have == (uint64_t)f->size) {
            break;   /* an earlier run stopped between the last byte and the rename */
        }
        if (fseeko(fp, (off_t)have, SEEK_SET) != 0) {
            lb_fail(err, "cannot seek in %s: %s", part, strerror(errno));
            goto out;
        }
        xfer x = {.o = o, .fp = fp, .part = part, .hash = &hash, .offset = have,
                  .linked_size = -1, .name = f->path, .total = f->size,
                  .transferred_before = res->transferred, .t0 = t0};
        long code;
        CURLcode cc = perform(o, u, &x, false, &code);
        hashed = x.offset + x.written;
        res->transferred += x.written;
        res->attempts = attempt;
        if (x.restarted) {
            res->resumed_from = 0;
            notice(o, "%s: the server ignored the resume request; starting again from zero",
                   f->path);
        }
        if (!header_sha[0] && !etag_sha256(x.linked_etag, header_sha))
            etag_sha256(x.etag, header_sha);
        if (x.linked_size >= 0)
            header_size = x.linked_size;
        const char *slash = strrchr(x.content_range, '/');
        if (slash && isdigit((unsigned char)slash[1]))
            range_total = strtoll(slash + 1, NULL, 10);
        req_status status = judge(&x, cc, code, u, repo, revision, f->path, err);
        report(&x, status == REQ_OK);
        lb_buf_free(&x.errbody);
        if (status == REQ_OK)
            break;
        if (status == REQ_RANGE) {
            if (range_total >= 0 && (uint64_t)range_total == have) {
                break;
            }
            if (ftruncate(fd, 0) != 0) {
                lb_fail(err, "cannot truncate %s: %s", part, strerror(errno));
                goto out;
            }
            hashed = UINT64_MAX;
            lb_fail(err, "%s: HTTP 416 for bytes %" PRIu64 "- and again from zero", u, have);
            if (attempt >= attempts_allowed(o))
                goto out;
            notice(o, "%s: the server cannot resume at byte %" PRIu64 "; starting again from "
                   "zero", f->path, have);
            continue;
        }
        if (status == REQ_FAIL)
            goto out;
        if (attempt >= attempts_allowed(o)) {
            lb_fail_prefix(err, "%s: after %d attempts: ", f->path, attempt);
            goto out;
        }
        notice(o, "%s: %s; resuming in %.0f s (attempt %d of %d)", f->path, err->msg, delay,
               attempt + 1, attempts_allowed(o));
        sleep_s(delay);
        delay = delay * 2 > 30 ? 30 : delay * 2;
    }
    struct stat st;
    if (fflush(fp) != 0 || fstat(fd, &st) != 0) {
        lb_fail(err, "cannot write %s: %s", part, strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    int64_t want_size = f->size >= 0 ? f->size : header_size >= 0 ? header_size : range_total;
    if (want_size >= 0 && size != (uint64_t)want_size) {
        unlink(part);
        lb_fail(err, "%s: downloaded %" PRIu64 " bytes, expected %" PRId64 " (removed %s)",
                f->path, size, want_size, part);
        goto out;
    }
    const char *want_sha = f->sha256[0] ? f->sha256 : header_sha;
    if (hashed != size) {
        uint64_t fed;
        lb_sha256_init(&hash);
        if (lb_sha256_file_into(&hash, part, size, &fed, err))
            goto out;
    }
    uint8_t digest[32];
    lb_sha256_final(&hash, digest);
    char got[65];
    lb_sha256_hex(digest, got);
    if (want_sha[0]) {
        if (strcmp(got, want_sha) != 0) {
            unlink(part);
            lb_fail(err, "%s: SHA-256 mismatch: expected %s, got %s (removed the download)",
                    f->path, want_sha, got);
            goto out;
        }
        res->verified = true;
        memcpy(res->sha256, got, sizeof got);
    }
    if (fsync(fd) != 0) {
        lb_fail(err, "cannot write %s: %s", part, strerror(errno));
        goto out;
    }
    if (rename(part, final) != 0) {
        lb_fail(err, "cannot rename %s to %s: %s", part, final, strerror(errno));
        goto out;
    }
    res->size = size;
    res->seconds = (lb_now_ms() - t0) / 1e3;
    rc = 0;
out:
    if (fp) {
        /* An empty .part after a failed first request only clutters the directory. */
        struct stat st;
        if (rc != 0 && fstat(fileno(fp), &st) == 0 && st.st_size == 0)
            unlink(part);
        fclose(fp);
    }
    free(final);
    lb_buf_free(&part_name);
    lb_buf_free(&url);
    return rc;
}
