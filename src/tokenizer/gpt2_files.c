/* GPT-2's original tokenizer files: vocab.json (an object, piece in the byte alphabet → id)
 * and merges.txt (one "left right" pair a line, best first, after an optional "#version"
 * line). The only special token is <|endoftext|>, both BOS and EOS, never added by itself. */
#include "core/file.h"
#include "tokenizer/loaders.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB_JSON_BYTES (256u << 20)
#define MAX_MERGES_BYTES (256u << 20)
#define MAX_VOCAB_TOKENS (1 << 24)

static int load_vocab(const char *path, lb_tokenizer **out, lb_error *err)
{
    char *data;
    size_t size;
    if (lb_read_file(path, MAX_VOCAB_JSON_BYTES, &data, &size, err))
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(data, size, 0, &jerr);
    free(data);
    if (!root)
        return lb_fail(err, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root) || json_object_size(root) == 0) {
        json_decref(root);
        return lb_fail(err, "%s: expected a non-empty JSON object of piece → id", path);
    }
    /* Ids must be dense 0..n-1; find n first. */
    const char *piece;
    json_t *val;
    json_int_t max_id = -1;
    json_object_foreach(root, piece, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_VOCAB_TOKENS) {
            lb_fail(err, "%s: the id of piece \"%.64s\" must be an integer in 0..%d", path, piece,
                    MAX_VOCAB_TOKENS - 1);
            json_decref(root);
            return -1;
        }
        if (id > max_id)
            max_id = id;
    }
    int n = (int)max_id + 1;
    lb_tokenizer *t = tok_create(LB_TOK_BPE, n);
    json_object_foreach(root, piece, val) {
        int id = (int)json_integer_value(val);
        if (t->pieces[id]) {
            lb_fail(err, "%s: id %d is given to both \"%.64s\" and \"%.64s\"", path, id,
                    t->pieces[id], piece);
            tok_free(t);
            json_decref(root);
            return -1;
        }
        tok_set_piece(t, id, piece, strlen(piece), 0.0f, LB_TOKEN_NORMAL);
    }
    json_decref(root);
    for (int i = 0; i < n; i++)
        if (!t->pieces[i]) {
            tok_free(t);
            return lb_fail(err, "%s: no piece has id %d (ids must run 0..%d without holes)", path,
                           i, n - 1);
        }
    *out = t;
    return 0;
}

static int load_merges(const char *path, lb_tokenizer *t, lb_error *err)
{
    char *data;
    size_t size;
    if (lb_read_file(path, MAX_MERGES_BYTES, &data, &size, err))
        return -1;
    size_t pos = 0;
    int line = 0;
    while (pos < size) {
        line++;
        char *s = data + pos;
        char *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + (nl != NULL);
        if (len && s[len - 1] == '\r')
            len--;
        if (len == 0 || (line == 1 && len >= 8 && memcmp(s, "#version", 8) == 0))
            continue;
        /* The separator is the first space after the first character (pieces never hold a
         * plain space: it is "Ġ" in the byte alphabet). */
        char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1))) {
            free(data);
            return lb_fail(err, "%s: line %d: expected two pieces separated by one space", path,
                           line);
        }
        tok_add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1));
    }
    free(data);
    if (t->n_merges == 0)
        return lb_fail(err, "%s: no merges", path);
    return 0;
}

int tok_load_gpt2_files(const char *vocab_json, const char *merges_txt, lb_tokenizer **out,
                        lb_error *err)
{
    *out = NULL;
    lb_tokenizer *t;
    if (load_vocab(vocab_json, &t, err))
        return -1;
    if (load_merges(merges_txt, t, err)) {
        tok_free(t);
        return -1;
    }
    t->pretok = LB_PRETOK_GPT2;
    t->add_bos = false;
    t->add_eos = false;
    t->add_space_prefix = false;
    for (int i = 0; i < t->n_vocab; i++)
        if (strcmp(t->pieces[i], "<|endoftext|>") == 0) {
            t->bos_id = t->eos_id = i;
            t->types[i] = LB_TOKEN_CONTROL;
        }
    if (tok_finalize(t, err)) {
        tok_free(t);
        return lb_fail_prefix(err, "%s: ", vocab_json);
    }
    *out = t;
    return 0;
}
