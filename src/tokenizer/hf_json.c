/* Hugging Face tokenizer.json (the "tokenizers" library's serialization) for BPE models.
 *
 * One file format carries two different tokenizers, told apart by the pipeline around the
 * model rather than by the model itself:
 *  - byte-level BPE (GPT-2, Llama 3, Qwen2): a ByteLevel pre-tokenizer, alone (it then splits
 *    with GPT-2's regex) or after a Split with the model's own regex;
 *  - SentencePiece-style BPE (Llama 2, TinyLlama, Mistral): spaces become "▁" (a Replace
 *    normalizer, often with a Prepend "▁", or a Metaspace pre-tokenizer), unknown characters
 *    fall back to <0xXX> byte pieces (model.byte_fallback). Here pairs merge by the rank in
 *    model.merges, which spm.c honours when merge_ranks is set.
 * BOS/EOS come from the post-processor's template (a special token before $A means "add BOS")
 * and otherwise from the well-known names of special tokens. */
#include "core/file.h"
#include "core/log.h"
#include "tokenizer/loaders.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENIZER_JSON_BYTES (512u << 20)
#define MAX_VOCAB_TOKENS (1 << 24)

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 "▁" */

/* What the normalizer, pre-tokenizer, decoder and post-processor say, gathered in one walk. */
typedef struct {
    bool byte_level;          /* ByteLevel pre-tokenizer */
    bool byte_level_prefix;   /* its add_prefix_space */
    const char *split_regex;  /* first Split pre-tokenizer's regex */
    bool metaspace;           /* Metaspace pre-tokenizer */
    bool metaspace_prefix;    /* it prepends "▁" (prepend_scheme always/first, add_prefix_space) */
    bool norm_space_mark;     /* Replace " " → "▁" normalizer */
    bool norm_prepend;        /* Prepend "▁" normalizer */
    bool decoder_byte_level;
    bool decoder_space_mark;  /* Replace "▁" → " ", Metaspace or ByteFallback decoder */
    bool have_template;       /* a TemplateProcessing post-processor */
    const char *template_bos; /* special token before $A */
    const char *template_eos; /* special token after $A */
    json_t *template_specials;
} pipeline;

static const char *type_of(json_t *node)
{
    return json_string_value(json_object_get(node, "type"));
}

static bool is_type(json_t *node, const char *type)
{
    const char *t = type_of(node);
    return t && strcmp(t, type) == 0;
}

/* Pattern objects are {"String": "…"} or {"Regex": "…"}. */
static const char *pattern_string(json_t *node, const char *kind)
{
    return json_string_value(json_object_get(json_object_get(node, "pattern"), kind));
}

static bool bool_field(json_t *node, const char *key, bool fallback)
{
    json_t *v = json_object_get(node, key);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static bool str_field_is(json_t *node, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(node, key));
    return v && strcmp(v, want) == 0;
}

/* Calls visit on node and, for a "Sequence", on each of its parts (recursively). */
static void walk(json_t *node, pipeline *p, void (*visit)(json_t *, pipeline *))
{
    if (!json_is_object(node))
        return;
    if (is_type(node, "Sequence")) {
        static const char *const lists[] = {"normalizers", "pretokenizers", "decoders",
                                            "processors"};
        for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
            json_t *arr = json_object_get(node, lists[i]);
            size_t k;
            json_t *part;
            json_array_foreach(arr, k, part)
                walk(part, p, visit);
        }
        return;
    }
    visit(node, p);
}

static void visit_normalizer(json_t *n, pipeline *p)
{
    if (is_type(n, "Replace")) {
        const char *from = pattern_string(n, "String");
        if (from && strcmp(from, " ") == 0 && str_field_is(n, "content", SPACE_MARK))
            p->norm_space_mark = true;
    } else if (is_type(n, "Prepend") && str_field_is(n, "prepend", SPACE_MARK)) {
        p->norm_prepend = true;
    }
}

static void visit_pre_tokenizer(json_t *n, pipeline *p)
{
    if (is_type(n, "ByteLevel")) {
        p->byte_level = true;
        p->byte_level_prefix = bool_field(n, "add_prefix_space", false);
    } else if (is_type(n, "Split")) {
        if (!p->split_regex)
            p->split_regex = pattern_string(n, "Regex");
    } else if (is_type(n, "Metaspace")) {
        p->metaspace = true;
        const char *scheme = json_string_value(json_object_get(n, "prepend_scheme"));
        p->metaspace_prefix = scheme ? strcmp(scheme, "never") != 0
                                     : bool_field(n, "add_prefix_space", true);
    }
}

static void visit_decoder(json_t *n, pipeline *p)
{
    if (is_type(n, "ByteLevel"))
        p->decoder_byte_level = true;
    else if (is_type(n, "Metaspace") || is_type(n, "ByteFallback") ||
             (is_type(n, "Replace") && pattern_string(n, "String") &&
              strcmp(pattern_string(n, "String"), SPACE_MARK) == 0))
        p->decoder_space_mark = true;
}

static void visit_post_processor(json_t *n, pipeline *p)
{
    if (!is_type(n, "TemplateProcessing") || p->have_template)
        return;
    p->have_template = true;
    p->template_specials = json_object_get(n, "special_tokens");
    bool seen_sequence = false;
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(n, "single"), i, item) {
        const char *special = json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
        if (json_object_get(item, "Sequence"))
            seen_sequence = true;
        else if (special && !seen_sequence && !p->template_bos)
            p->template_bos = special;
        else if (special && seen_sequence && !p->template_eos)
            p->template_eos = special;
    }
}

/* The pre-tokenizer regex is recognized by the part that tells the three apart: how digits
 * group (GPT-2: " ?\p{N}+", Llama 3: "\p{N}{1,3}", Qwen2: one digit a word). */
static lb_pretok recognize_regex(const char *path, const char *re)
{
    if (!re)
        return LB_PRETOK_GPT2;
    if (strstr(re, "\\p{N}{1,3}"))
        return LB_PRETOK_LLAMA3;
    if (strstr(re, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") && strstr(re, "|\\p{N}|"))
        return LB_PRETOK_QWEN2;
    if (!strstr(re, " ?\\p{N}+"))
        lb_log_warn("%s: pre-tokenizer regex '%.200s' is not GPT-2's, Llama 3's or Qwen2's; "
                    "splitting as GPT-2 does", path, re);
    return LB_PRETOK_GPT2;
}

/* Id of a token by its text, or -1 (pieces are set, but piece_ids is not built yet). */
static int find_piece(const lb_tokenizer *t, const char *text)
{
    size_t len = strlen(text);
    for (int i = 0; i < t->n_vocab; i++)
        if (t->pieces[i] && (size_t)t->piece_len[i] == len && memcmp(t->pieces[i], text, len) == 0)
            return i;
    return -1;
}

static int template_token_id(const lb_tokenizer *t, const pipeline *p, const char *name)
{
    json_t *ids = json_object_get(json_object_get(p->template_specials, name), "ids");
    json_t *first = json_array_get(ids, 0);
    if (json_is_integer(first) && json_integer_value(first) >= 0 &&
        json_integer_value(first) < t->n_vocab)
        return (int)json_integer_value(first);
    return find_piece(t, name);
}

static int first_present(const lb_tokenizer *t, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int id = find_piece(t, names[i]);
        if (id >= 0)
            return id;
    }
    return -1;
}

static void choose_special_ids(lb_tokenizer *t, const pipeline *p, bool have_post_processor)
{
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>",
                                            "<|im_end|>", "<eos>", "<|eot_id|>"};
    int bos = p->template_bos ? template_token_id(t, p, p->template_bos) : -1;
    int eos = p->template_eos ? template_token_id(t, p, p->template_eos) : -1;
    t->add_bos = bos >= 0;
    t->add_eos = eos >= 0;
    if (bos < 0)
        bos = first_present(t, bos_names, sizeof bos_names / sizeof bos_names[0]);
    if (eos < 0)
        eos = first_present(t, eos_names, sizeof eos_names / sizeof eos_names[0]);
    t->bos_id = bos;
    t->eos_id = eos;
    /* Without any post-processor, SentencePiece models add BOS as sentencepiece itself does. */
    if (!have_post_processor && t->kind == LB_TOK_SPM && bos >= 0)
        t->add_bos = true;
}

static int fail_json(lb_error *err, json_t *root, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_json(lb_error *err, json_t *root, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    json_decref(root);
    return -1;
}

/* Checks an id from the file and widens *n_vocab to hold it. */
static bool valid_id(json_t *v, int *n_vocab)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= MAX_VOCAB_TOKENS)
        return false;
    if (json_integer_value(v) >= *n_vocab)
        *n_vocab = (int)json_integer_value(v) + 1;
    return true;
}

static bool is_byte_piece(const char *s)
{
    unsigned b;
    char tail;
    return strlen(s) == 6 && sscanf(s, "<0x%2X%c", &b, &tail) == 2 && tail == '>';
}

static int add_merges(lb_tokenizer *t, const char *path, json_t *merges, lb_error *err)
{
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *left, *right;
        size_t left_len, right_len;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp || sp + 1 == s + len || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)))
                return lb_fail(err, "%s: model.merges[%zu] must be two pieces separated by one "
                               "space", path, i);
            left = s;
            left_len = (size_t)(sp - s);
            right = sp + 1;
            right_len = (size_t)(s + len - sp - 1);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            left = json_string_value(json_array_get(m, 0));
            left_len = json_string_length(json_array_get(m, 0));
            right = json_string_value(json_array_get(m, 1));
            right_len = json_string_length(json_array_get(m, 1));
        } else {
            return lb_fail(err, "%s: model.merges[%zu] must be a string \"a b\" or a pair of "
                           "strings", path, i);
        }
        tok_add_merge(t, left, left_len, right, right_len);
    }
    return 0;
}

int tok_load_hf_json(const char *path, lb_tokenizer **out, lb_error *err)
{
    *out = NULL;
    char *data;
    size_t size;
    if (lb_read_file(path, MAX_TOKENIZER_JSON_BYTES, &data, &size, err))
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(data, size, 0, &jerr);
    free(data);
    if (!root)
        return lb_fail(err, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root))
        return fail_json(err, root, "%s: the top level must be an object", path);

    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return fail_json(err, root, "%s: model must be an object", path);
    json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return fail_json(err, root, "%s: model.type must be a string", path);
    if (type && strcmp(json_string_value(type), "BPE") != 0)
        return fail_json(err, root, "%s: model.type is '%.64s' (only 'BPE' is supported)", path,
                         json_string_value(type));
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return fail_json(err, root, "%s: model.vocab must be an object", path);
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return fail_json(err, root, "%s: model.merges must be an array", path);
    json_t *byte_fallback = json_object_get(model, "byte_fallback");
    if (byte_fallback && !json_is_boolean(byte_fallback) && !json_is_null(byte_fallback))
        return fail_json(err, root, "%s: model.byte_fallback must be true or false", path);
    json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_string(unk) && !json_is_null(unk))
        return fail_json(err, root, "%s: model.unk_token must be a string or null", path);
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added))
        return fail_json(err, root, "%s: added_tokens must be an array", path);

    /* The vocabulary size covers the model's ids and the added tokens' ids. */
    int n_vocab = 0;
    const char *piece;
    json_t *v;
    json_object_foreach(vocab, piece, v)
        if (!valid_id(v, &n_vocab))
            return fail_json(err, root, "%s: model.vocab[\"%.64s\"] must be an id in 0..%d", path,
                             piece, MAX_VOCAB_TOKENS - 1);
    size_t i;
    json_array_foreach(added, i, v) {
        if (!json_is_object(v) || !valid_id(json_object_get(v, "id"), &n_vocab))
            return fail_json(err, root, "%s: added_tokens[%zu].id must be an id in 0..%d", path,
                             i, MAX_VOCAB_TOKENS - 1);
        if (!json_is_string(json_object_get(v, "content")))
            return fail_json(err, root, "%s: added_tokens[%zu].content must be a string", path, i);
    }
    if (n_vocab == 0)
        return fail_json(err, root, "%s: model.vocab is empty", path);

    pipeline p = {0};
    json_t *post = json_object_get(root, "post_processor");
    walk(json_object_get(root, "normalizer"), &p, visit_normalizer);
    walk(json_object_get(root, "pre_tokenizer"), &p, visit_pre_tokenizer);
    walk(json_object_get(root, "decoder"), &p, visit_decoder);
    walk(post, &p, visit_post_processor);
    bool spm_signs = p.metaspace || p.norm_space_mark || json_is_true(byte_fallback);
    lb_tok_kind kind;
    if (p.byte_level || (p.decoder_byte_level && !spm_signs))
        kind = LB_TOK_BPE;
    else if (spm_signs || p.decoder_space_mark)
        kind = LB_TOK_SPM;
    else
        return fail_json(err, root, "%s: cannot tell the tokenizer kind: expected a ByteLevel "
                         "pre_tokenizer (byte-level BPE) or a Metaspace pre_tokenizer / Replace "
                         "\" \"→\"▁\" normalizer (SentencePiece-style BPE)", path);

    lb_tokenizer *t = tok_create(kind, n_vocab);
    json_object_foreach(vocab, piece, v) {
        int id = (int)json_integer_value(v);
        if (t->pieces[id])
            continue;   /* a duplicate id: the first piece keeps it */
        int ty = kind == LB_TOK_SPM && is_byte_piece(piece) ? LB_TOKEN_BYTE : LB_TOKEN_NORMAL;
        tok_set_piece(t, id, piece, strlen(piece), 0.0f, ty);
    }
    json_array_foreach(added, i, v) {
        json_t *content = json_object_get(v, "content");
        int id = (int)json_integer_value(json_object_get(v, "id"));
        bool special = json_is_true(json_object_get(v, "special"));
        /* Added tokens that are also in the vocabulary keep their type there for bytes. */
        int ty = special ? LB_TOKEN_CONTROL : LB_TOKEN_USER_DEFINED;
        if (t->pieces[id] && t->types[id] == LB_TOKEN_BYTE)
            ty = LB_TOKEN_BYTE;
        tok_set_piece(t, id, json_string_value(content), json_string_length(content), 0.0f, ty);
    }
    for (int k = 0; k < n_vocab; k++)
        if (!t->pieces[k])   /* ids nothing names (the model pads its vocabulary) */
            tok_set_piece(t, k, "", 0, 0.0f, LB_TOKEN_UNUSED);

    if (add_merges(t, path, merges, err)) {
        tok_free(t);
        json_decref(root);
        return -1;
    }
    if (!t->merge_ranks)   /* no merges at all: rank order still rules (nothing merges) */
        t->merge_ranks = lb_strmap_create(1);

    if (json_is_string(unk)) {
        t->unk_id = find_piece(t, json_string_value(unk));
        if (t->unk_id >= 0 && t->types[t->unk_id] != LB_TOKEN_BYTE)
            t->types[t->unk_id] = LB_TOKEN_UNKNOWN;
    }
    if (kind == LB_TOK_BPE) {
        t->pretok = recognize_regex(path, p.split_regex);
        t->add_space_prefix = p.byte_level_prefix;
        t->byte_fallback = false;
    } else {
        t->add_space_prefix = p.metaspace ? p.metaspace_prefix : p.norm_prepend;
        t->byte_fallback = json_is_true(byte_fallback);
    }
    choose_special_ids(t, &p, post && !json_is_null(post));
    json_decref(root);

    if (tok_finalize(t, err)) {
        tok_free(t);
        return lb_fail_prefix(err, "%s: ", path);
    }
    *out = t;
    return 0;
}
