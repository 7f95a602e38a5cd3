/* Calibration windows: see calib.h. */
#include "quant/calib.h"
#include "core/file.h"
#include "core/rng.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Larger calibration files than this are not useful and would only cost tokenizing time. */
#define CALIB_MAX_BYTES (1ull << 30)

typedef struct {
    int *ids;
    int64_t n, cap;
} token_buf;

static void buf_append(token_buf *b, const int *ids, int n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->ids = lb_realloc(b->ids, (size_t)b->cap * sizeof(int));
    }
    memcpy(b->ids + b->n, ids, (size_t)n * sizeof(int));
    b->n += n;
}

/* Tokenizes one piece of text (a line of a text file, a jsonl document) onto the buffer.
 * Pieces are encoded separately: SentencePiece-style merging over megabytes at once would be
 * slow and gains nothing for calibration. */
static int encode_piece(const lb_tokenizer *tok, const char *text, size_t len, token_buf *b,
                        lb_error *err)
{
    if (len == 0)
        return 0;
    int *ids = NULL, n = 0;
    if (tok_encode(tok, text, len, false, &ids, &n, err))
        return -1;
    buf_append(b, ids, n);
    free(ids);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int tokenize_text(const char *path, const char *data, size_t len,
                         const lb_tokenizer *tok, token_buf *b, lb_error *err)
{
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - data) + 1 : len;
        if (encode_piece(tok, data + start, end - start, b, err))
            return lb_fail_prefix(err, "%s: offset %zu: ", path, start);
        start = end;
    }
    return 0;
}

static int tokenize_jsonl(const char *path, const char *data, size_t len,
                          const lb_tokenizer *tok, token_buf *b, lb_error *err)
{
    size_t start = 0;
    int line = 0;
    while (start < len) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - data) : len;
        line++;
        size_t a = start;
        while (a < end && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r'))
            a++;
        if (a < end) {
            json_error_t jerr;
            json_t *doc = json_loadb(data + start, end - start, 0, &jerr);
            if (!doc)
                return lb_fail(err, "%s: line %d: expected a JSON object per line (%s)", path,
                               line, jerr.text);
            json_t *text = json_is_object(doc) ? json_object_get(doc, "text") : NULL;
            if (!json_is_string(text)) {
                json_decref(doc);
                return lb_fail(err, "%s: line %d: expected a \"text\" string field", path, line);
            }
            int rc = encode_piece(tok, json_string_value(text), json_string_length(text), b, err);
            json_decref(doc);
            if (rc)
                return lb_fail_prefix(err, "%s: line %d: ", path, line);
        }
        start = end + 1;
    }
    return 0;
}

int lb_calib_load(const char *path, const lb_tokenizer *tok, int n_samples, int seqlen,
                  uint64_t seed, lb_calib *out, lb_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_samples <= 0 || n_samples > 1000000)
        return lb_fail(err, "calibration samples must be 1..1000000 (got %d)", n_samples);
    if (seqlen < 2 || seqlen > 1000000)
        return lb_fail(err, "calibration window must be 2..1000000 tokens (got %d)", seqlen);
    if (lb_is_dir(path))
        return lb_fail(err, "%s: is a directory, expected a calibration text or jsonl file",
                       path);
    char *data;
    size_t len;
    if (lb_read_file(path, CALIB_MAX_BYTES, &data, &len, err))
        return -1;
    if (len == 0) {
        free(data);
        return lb_fail(err, "%s: calibration file is empty", path);
    }
    token_buf b = {0};
    int rc = ends_with(path, ".jsonl") ? tokenize_jsonl(path, data, len, tok, &b, err)
                                       : tokenize_text(path, data, len, tok, &b, err);
    free(data);
    if (rc) {
        free(b.ids);
        return -1;
    }
    /* A window is BOS plus seqlen - 1 tokens of text (all seqlen from the text without BOS). */
    int body = tok->bos_id >= 0 ? seqlen - 1 : seqlen;
    if (b.n == 0) {
        free(b.ids);
        return lb_fail(err, "%s: calibration file has no text", path);
    }
    if (b.n < body) {
        int64_t have = b.n;
        free(b.ids);
        return lb_fail(err, "%s: %lld tokens of text, shorter than one calibration window of %d "
                       "tokens (--calib-seqlen)", path, (long long)have, seqlen);
    }
    out->n_samples = n_samples;
    out->seqlen = seqlen;
    out->n_source = b.n;
    out->tokens = lb_malloc((size_t)n_samples * (size_t)seqlen * sizeof(int));
    lb_rng rng;
    lb_rng_seed(&rng, seed);
    uint64_t starts = (uint64_t)(b.n - body) + 1;
    for (int s = 0; s < n_samples; s++) {
        int *w = out->tokens + (size_t)s * seqlen;
        int64_t from = (int64_t)(lb_rng_next(&rng) % starts);
        int k = 0;
        if (tok->bos_id >= 0)
            w[k++] = tok->bos_id;
        memcpy(w + k, b.ids + from, (size_t)body * sizeof(int));
    }
    free(b.ids);
    return 0;
}

void lb_calib_free(lb_calib *c)
{
    if (!c)
        return;
    free(c->tokens);
    memset(c, 0, sizeof *c);
}
