/* Byte-level BPE and its loaders.
 *  - GPT-2 (shared vocab.json + merges.txt): encodings of tricky strings whose ids were taken
 *    from the reference implementation (npm gpt-tokenizer, r50k_base), byte tokens, BOS/EOS;
 *  - decode(encode(x)) == x for random bytes, invalid UTF-8 and megabyte-long runs;
 *  - the pre-tokenizer regexes of GPT-2, Llama 3 and Qwen2: splits read back from the encoder
 *    (with a vocabulary in which every word merges into one token) against splits that
 *    JavaScript's regex engine gives for the same patterns;
 *  - tokenizer.json: byte-level files built from the real GPT-2 vocabulary (merges as strings
 *    and as pairs) encode exactly as vocab.json + merges.txt do; Llama 3 / Qwen2 regexes are
 *    recognized; a Llama-2-style file becomes SentencePiece BPE merging by rank with byte
 *    fallback; BOS/EOS from the template; malformed files fail with one clear line. */
#include "check.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/vec.h"
#include "tokenizer/internal.h"
#include "tokenizer/loaders.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[4096];

static int *encode(const lb_tokenizer *t, const char *s, size_t len, bool special, int *n)
{
    int *ids;
    lb_error err;
    CHECK(tok_encode(t, s, len, special, &ids, n, &err) == 0, "encode failed: %s", err.msg);
    return ids;
}

static bool ids_equal(const int *a, int na, const int *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int)) == 0);
}

static void show_ids(const char *label, const int *ids, int n)
{
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Checks that text encodes to want (n_want ids) and decodes back to text. */
static void check_encoding(const lb_tokenizer *t, const char *text, const int *want, int n_want)
{
    int n;
    int *ids = encode(t, text, strlen(text), false, &n);
    CHECK(ids_equal(ids, n, want, n_want), "\"%s\" encodes differently", text);
    if (!ids_equal(ids, n, want, n_want)) {
        show_ids("got ", ids, n);
        show_ids("want", want, n_want);
    }
    char *back = tok_decode(t, ids, n);
    CHECK(strcmp(back, text) == 0, "\"%s\" decodes back as \"%s\"", text, back);
    free(back);
    free(ids);
}

#define ENC(t, text, ...)                                                       \
    do {                                                                        \
        static const int want_[] = {__VA_ARGS__};                               \
        check_encoding(t, text, want_, (int)(sizeof want_ / sizeof want_[0])); \
    } while (0)

static void test_gpt2_known(const lb_tokenizer *t)
{
    CHECK(t->kind == LB_TOK_BPE && t->n_vocab == 50257, "kind %d, %d tokens", t->kind, t->n_vocab);
    CHECK(t->bos_id == 50256 && t->eos_id == 50256 && !t->add_bos && !t->add_eos,
          "bos %d eos %d add_bos %d", t->bos_id, t->eos_id, t->add_bos);
    CHECK(t->n_merges == 50000, "%d merges", t->n_merges);
    /* Ids from gpt-tokenizer (r50k_base) for the same strings. */
    ENC(t, "Hello world, it's 12345 tokens!  \n\n x", 15496, 995, 11, 340, 338, 17031, 2231,
        16326, 0, 220, 220, 628, 2124);
    ENC(t, " Hello", 18435);
    ENC(t, "a<|endoftext|>b", 64, 27, 91, 437, 1659, 5239, 91, 29, 65);
    ENC(t, "\t\ttabs  and   spaces\n\n\n", 197, 197, 8658, 82, 220, 290, 220, 220, 9029, 628, 198);
    ENC(t, "\xc3\xbf\xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86"
           "\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 \xf0\x9f\xa4\x96\xf0\x9f\xa6\x99",   /* ÿ€ 日本語のテキスト 🤖🦙 */
        127, 123, 26391, 10545, 245, 98, 17312, 105, 45739, 252, 5641, 24336, 25084, 43302, 12520,
        97, 244, 8582, 99, 247);
    ENC(t, "I'M don't 1234567 3.14", 40, 6, 44, 836, 470, 17031, 2231, 3134, 513, 13, 1415);
    ENC(t, "x\xc2\xa0y", 87, 1849, 88);   /* no-break space */
    ENC(t, "  leading\r\n\r\nCRLF", 220, 3756, 201, 198, 201, 198, 34, 7836, 37);
    /* Lone bytes map through GPT-2's byte alphabet: 0xff → "ÿ" (187), 0x00 → "Ā" (188),
     * 0xad → "Ń" (255, the last of the remapped bytes). */
    ENC(t, "\xff", 187);
    ENC(t, "\xad", 255);
    int n;
    int *ids = encode(t, "\0", 1, false, &n);
    CHECK(n == 1 && ids[0] == 188, "NUL byte gives %d ids, first %d", n, n ? ids[0] : -1);
    free(ids);

    /* add_bos is false for GPT-2: special=true adds nothing. */
    ids = encode(t, "Hello", 5, true, &n);
    CHECK(n == 1 && ids[0] == 15496, "\"Hello\" with specials gives %d ids", n);
    free(ids);
    char buf[256];
    CHECK(tok_decode_token(t, -1, 50256, buf, sizeof buf) == 0, "<|endoftext|> decodes to text");
    CHECK(tok_decode_token(t, -1, 220, buf, sizeof buf) == 1 && buf[0] == ' ', "Ġ is not a space");
    CHECK(tok_decode_token(t, -1, 50257, buf, sizeof buf) == 0, "an id past the vocabulary decodes");
    ids = encode(t, "", 0, false, &n);
    CHECK(n == 0, "empty text gives %d ids", n);
    free(ids);
}

/* decode(encode(x)) == x for bytes of every kind. */
static void check_roundtrip(const lb_tokenizer *t, const char *s, size_t len, const char *what)
{
    int n;
    int *ids = encode(t, s, len, false, &n);
    bool in_range = true;
    for (int i = 0; i < n; i++)
        in_range &= ids[i] >= 0 && ids[i] < t->n_vocab;
    CHECK(in_range, "%s: an id is outside the vocabulary", what);
    lb_buf out = {0};
    char piece[1024];
    for (int i = 0; i < n; i++) {
        int k = tok_decode_token(t, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        lb_buf_append(&out, piece, (size_t)k);
    }
    CHECK(out.n == len && (len == 0 || memcmp(out.v, s, len) == 0),
          "%s: %zu bytes decode back as %zu different bytes", what, len, out.n);
    lb_buf_free(&out);
    free(ids);
}

static void test_roundtrip(const lb_tokenizer *t)
{
    lb_rng rng;
    lb_rng_seed(&rng, 20240611);
    static const char *const fragments[] = {
        "a", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "7", "123", ".", "!?", "\xc3\xa9",
        "\xe6\x97\xa5", "\xf0\x9f\xa6\x99", "\xc2\xa0",
        /* invalid UTF-8: lone continuation, truncated sequences, overlong, surrogate, 0xff */
        "\x80", "\xc3", "\xe6\x97", "\xf0\x9f\xa6", "\xc0\xaf", "\xed\xa0\x80", "\xff\xfe",
        "\xf4\x90\x80\x80"};
    size_t n_frag = sizeof fragments / sizeof fragments[0];
    char buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0;
        int kind = iter % 3;
        size_t target = lb_rng_next(&rng) % 300;
        while (len < target) {
            if (kind == 0) {   /* uniformly random bytes */
                buf[len++] = (char)(lb_rng_next(&rng) & 0xff);
            } else {           /* fragments mixing text, spaces and invalid sequences */
                const char *f = fragments[lb_rng_next(&rng) % n_frag];
                size_t fl = strlen(f);
                if (len + fl > sizeof buf)
                    break;
                memcpy(buf + len, f, fl);
                len += fl;
            }
        }
        if (kind == 2 && len)   /* a NUL somewhere */
            buf[lb_rng_next(&rng) % len] = '\0';
        char what[64];
        snprintf(what, sizeof what, "random text %d (%zu bytes)", iter, len);
        check_roundtrip(t, buf, len, what);
    }

    /* Long runs: one regex match of a megabyte, or a megabyte with no match at all. */
    size_t big = 1u << 20;
    char *s = lb_malloc(big);
    struct {
        const char *what;
        int fill;   /* byte value, or -1 for random bytes */
    } runs[] = {{"1 MiB of spaces", ' '}, {"1 MiB of 'a'", 'a'}, {"1 MiB of '7'", '7'},
                {"1 MiB of newlines", '\n'}, {"1 MiB of 0xff", 0xff}, {"1 MiB of random", -1}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        for (size_t i = 0; i < big; i++)
            s[i] = (char)(runs[r].fill >= 0 ? runs[r].fill : (int)(lb_rng_next(&rng) & 0xff));
        check_roundtrip(t, s, big, runs[r].what);
    }
    free(s);
}

/* ---- pre-tokenizer splits --------------------------------------------------------------- */

/* GPT-2's byte alphabet, written here again so that the test does not trust bpe.c's. */
static size_t byte_char(unsigned char b, char *out)
{
    /* Printable Latin-1 stands for itself; the 68 others (0..32, 127..160, 173) follow 255. */
    int cp = b <= 32 ? 256 + b : b >= 127 && b <= 160 ? 256 + 33 + (b - 127) : b == 173 ? 323 : b;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static void map_bytes(const char *s, size_t n, lb_buf *out)
{
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        char c[2];
        lb_buf_append(out, c, byte_char((unsigned char)s[i], c));
    }
}

/* A byte-level tokenizer in which every substring of text is a piece and every two adjacent
 * substrings merge: each pre-tokenized word of text then becomes exactly one token, so the
 * tokens spell out the regex's splits. */
static lb_tokenizer *splitting_tokenizer(const char *text, lb_pretok pretok)
{
    size_t n = strlen(text);
    int n_vocab = 256 + (int)(n * (n + 1) / 2);
    lb_tokenizer *t = tok_create(LB_TOK_BPE, n_vocab);
    lb_buf a = {0}, b = {0};
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        map_bytes(&ch, 1, &a);
        tok_set_piece(t, c, a.v, a.n, 0, LB_TOKEN_NORMAL);
    }
    int id = 256;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k <= n; k++) {
            map_bytes(text + i, k - i, &a);
            tok_set_piece(t, id++, a.v, a.n, 0, LB_TOKEN_NORMAL);
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            for (size_t k = j + 1; k <= n; k++) {
                map_bytes(text + i, j - i, &a);
                map_bytes(text + j, k - j, &b);
                tok_add_merge(t, a.v, a.n, b.v, b.n);
            }
    lb_buf_free(&a);
    lb_buf_free(&b);
    t->pretok = pretok;
    lb_error err;
    if (tok_finalize(t, &err)) {
        CHECK(false, "splitting tokenizer: %s", err.msg);
        tok_free(t);
        return NULL;
    }
    return t;
}

/* want: the words joined by '|' (no test text contains '|'). */
static void check_split(lb_pretok pretok, const char *name, const char *text, const char *want)
{
    lb_tokenizer *t = splitting_tokenizer(text, pretok);
    if (!t)
        return;
    int n;
    int *ids = encode(t, text, strlen(text), false, &n);
    lb_buf got = {0};
    char piece[1024];
    for (int i = 0; i < n; i++) {
        if (i)
            lb_buf_append(&got, "|", 1);
        lb_buf_append(&got, piece, (size_t)tok_decode_token(t, -1, ids[i], piece, sizeof piece));
    }
    lb_buf_cstr(&got);
    CHECK(strcmp(got.v, want) == 0, "%s splits \"%s\" as \"%s\", expected \"%s\"", name, text,
          got.v, want);
    lb_buf_free(&got);
    free(ids);
    tok_free(t);
}

static void test_splits(void)
{
    /* Expected splits: String.prototype.matchAll with the same patterns (flags "gu") in node;
     * JavaScript lacks "(?i:…)", so there the contractions were spelled '(?:[sS]|[tT]|…). */
    static const struct {
        const char *text, *gpt2, *llama3, *qwen2;
    } cases[] = {
        {"Hello world", "Hello| world", "Hello| world", "Hello| world"},
        {"1234567 digits 89", "1234567| digits| 89", "123|456|7| digits| |89",
         "1|2|3|4|5|6|7| digits| |8|9"},
        {"I'M HE'S she'll WE'VE they'RE",
         "I|'|M| HE|'|S| she|'ll| WE|'|VE| they|'|RE",
         "I|'M| HE|'S| she|'ll| WE|'VE| they|'RE", "I|'M| HE|'S| she|'ll| WE|'VE| they|'RE"},
        {"  two spaces\n\n\tend  ", " | two| spaces|\n\n|\t|end|  ", " | two| spaces|\n\n|\tend|  ",
         " | two| spaces|\n\n|\tend|  "},
        {"x=3.14159;\r\n\r\nnext", "x|=|3|.|14159|;|\r\n\r|\n|next",
         "x|=|3|.|141|59|;\r\n\r\n|next", "x|=|3|.|1|4|1|5|9|;\r\n\r\n|next"},
        {"\xc3\xbc" "ber caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x91\xa0\xe2\x91\xa1",
         "\xc3\xbc" "ber| caf\xc3\xa9| \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e| \xe2\x91\xa0\xe2\x91\xa1",
         "\xc3\xbc" "ber| caf\xc3\xa9| \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e| |\xe2\x91\xa0\xe2\x91\xa1",
         "\xc3\xbc" "ber| caf\xc3\xa9| \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e| |\xe2\x91\xa0|\xe2\x91\xa1"},
        {"!!!hello...world?!", "!!!|hello|...|world|?!", "!!!|hello|...|world|?!",
         "!!!|hello|...|world|?!"},
        {"(a)  [b]\n  c", "(|a|)| | [|b|]|\n | c", "(a|)| | [|b|]\n| | c", "(a|)| | [|b|]\n| | c"},
        {"it's\xc2\xa0nbsp", "it|'s|\xc2\xa0|nbsp", "it|'s|\xc2\xa0nbsp", "it|'s|\xc2\xa0nbsp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_split(LB_PRETOK_GPT2, "GPT-2", cases[i].text, cases[i].gpt2);
        check_split(LB_PRETOK_LLAMA3, "Llama 3", cases[i].text, cases[i].llama3);
        check_split(LB_PRETOK_QWEN2, "Qwen2", cases[i].text, cases[i].qwen2);
    }
    /* Invalid bytes never match the regex; they form words of their own between matches. */
    check_split(LB_PRETOK_LLAMA3, "Llama 3", "ab\xff\xfe" "cd 12\x80" "345",
                "ab|\xff\xfe|cd| |12|\x80|345");
}

/* Llama 3 (like its tiktoken original, and HF's ignore_merges) takes a word that is a piece
 * as that piece even when no merges lead to it; GPT-2 and Qwen2 only merge. */
static void test_whole_word_first(void)
{
    for (int p = 0; p < 3; p++) {
        lb_tokenizer *t = tok_create(LB_TOK_BPE, 257);
        lb_buf a = {0};
        for (int c = 0; c < 256; c++) {
            char ch = (char)c;
            map_bytes(&ch, 1, &a);
            tok_set_piece(t, c, a.v, a.n, 0, LB_TOKEN_NORMAL);
        }
        lb_buf_free(&a);
        tok_set_piece(t, 256, "abc", 3, 0, LB_TOKEN_NORMAL);
        t->pretok = (lb_pretok)p;
        lb_error err;
        CHECK(tok_finalize(t, &err) == 0, "%s", err.msg);
        int n;
        int *ids = encode(t, "abc abc", 7, false, &n);
        static const int bytes[] = {'a', 'b', 'c'};
        /* " abc" is no piece: byte ids, with ' ' standing as "Ġ" (byte 32, id 32 here). */
        if (p == LB_PRETOK_LLAMA3)
            CHECK(n == 5 && ids[0] == 256 && ids[1] == ' ' && ids_equal(ids + 2, 3, bytes, 3),
                  "Llama 3: \"abc abc\" gives %d ids, first %d", n, ids[0]);
        else
            CHECK(n == 7 && ids_equal(ids, 3, bytes, 3), "pretok %d: \"abc abc\" gives %d ids", p,
                  n);
        free(ids);
        tok_free(t);
    }
}

/* ---- tokenizer.json --------------------------------------------------------------------- */

static char *write_file(const char *name, const char *text)
{
    char *path = lb_path_join(tmpdir, name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL, "cannot write %s", path);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return path;
}

static char *write_json(const char *name, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);
    char *path = write_file(name, text);
    free(text);
    json_decref(root);
    return path;
}

/* The real GPT-2 vocabulary as a tokenizer.json model; merges as "a b" or as ["a", "b"]. */
static json_t *gpt2_model_json(const char *shared, bool merges_as_pairs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/gpt2/vocab.json", shared);
    json_error_t jerr;
    json_t *vocab = json_load_file(path, 0, &jerr);
    CHECK(vocab != NULL, "%s: %s", path, jerr.text);
    snprintf(path, sizeof path, "%s/tokenizers/gpt2/merges.txt", shared);
    char *data;
    size_t size;
    lb_error err;
    json_t *merges = json_array();
    if (lb_read_file(path, 64u << 20, &data, &size, &err) == 0) {
        for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
            if (strncmp(line, "#version", 8) == 0)
                continue;
            char *sp = strchr(line, ' ');
            if (!sp)
                continue;
            if (merges_as_pairs) {
                *sp = '\0';
                json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
            } else {
                json_array_append_new(merges, json_string(line));
            }
        }
        free(data);
    }
    return json_pack("{s:s, s:o, s:o, s:b, s:n}", "type", "BPE", "vocab", vocab, "merges",
                     merges, "byte_fallback", 0, "unk_token");
}

static json_t *added_token(int id, const char *content, bool special)
{
    return json_pack("{s:i, s:s, s:b, s:b, s:b}", "id", id, "content", content, "special",
                     special, "lstrip", 0, "normalized", 0);
}

static void compare_on_text(const lb_tokenizer *a, const lb_tokenizer *b, const char *text,
                            size_t len, const char *what)
{
    int na, nb;
    int *ia = encode(a, text, len, false, &na), *ib = encode(b, text, len, false, &nb);
    CHECK(ids_equal(ia, na, ib, nb) && na > 1000, "%s: %d vs %d tokens differ", what, na, nb);
    free(ia);
    free(ib);
}

static void test_hf_byte_level(const char *shared, const lb_tokenizer *gpt2)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/datasets/wikitext2/wiki.test.raw", shared);
    char *wiki;
    size_t wiki_len;
    lb_error err;
    if (lb_read_file(path, 64u << 20, &wiki, &wiki_len, &err)) {
        CHECK(false, "%s", err.msg);
        return;
    }
    size_t sample = wiki_len < 200000 ? wiki_len : 200000;

    /* GPT-2 as the tokenizers library saves it. */
    for (int pairs = 0; pairs < 2; pairs++) {
        json_t *root = json_pack(
            "{s:s, s:[o], s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b}, s:{s:s}, s:o}",
            "version", "1.0", "added_tokens", added_token(50256, "<|endoftext|>", true),
            "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
            "trim_offsets", 1, "use_regex", 1, "post_processor", "type", "ByteLevel",
            "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1, "decoder", "type",
            "ByteLevel", "model", gpt2_model_json(shared, pairs));
        char *file = write_json(pairs ? "gpt2_pairs.json" : "gpt2_strings.json", root);
        lb_tokenizer *t;
        if (tok_load_hf_json(file, &t, &err) == 0) {
            CHECK(t->kind == LB_TOK_BPE && t->pretok == LB_PRETOK_GPT2 && t->n_vocab == 50257,
                  "GPT-2 tokenizer.json: kind %d pretok %d, %d tokens", t->kind, t->pretok,
                  t->n_vocab);
            CHECK(t->eos_id == 50256 && t->bos_id == 50256 && !t->add_bos && !t->add_eos &&
                      t->types[50256] == LB_TOKEN_CONTROL && t->n_merges == 50000,
                  "GPT-2 tokenizer.json: bos %d eos %d add_bos %d merges %d", t->bos_id,
                  t->eos_id, t->add_bos, t->n_merges);
            compare_on_text(t, gpt2, wiki, sample,
                            pairs ? "merges as pairs vs merges.txt" : "merges as strings vs merges.txt");
            ENC(t, "Hello world, it's 12345 tokens!  \n\n x", 15496, 995, 11, 340, 338, 17031,
                2231, 16326, 0, 220, 220, 628, 2124);
            tok_free(t);
        } else {
            CHECK(false, "GPT-2 tokenizer.json: %s", err.msg);
        }
        free(file);
    }

    /* Llama-3 and Qwen2 layouts (Split regex, then ByteLevel without its own regex; BOS by
     * template) over the GPT-2 vocabulary: numbers split in groups of three or one digit,
     * each group encoding as GPT-2 encodes it alone. */
    static const char LLAMA3_RE[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char QWEN2_RE[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    for (int qwen = 0; qwen < 2; qwen++) {
        json_t *pre = json_pack(
            "{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
            "pretokenizers", "type", "Split", "pattern", "Regex", qwen ? QWEN2_RE : LLAMA3_RE,
            "behavior", "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0,
            "trim_offsets", 1, "use_regex", 0);
        json_t *post = json_pack(
            "{s:s, s:[{s:s}, {s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[], s:{s:{s:s, s:[i], "
            "s:[s]}}}]}",
            "type", "Sequence", "processors", "type", "ByteLevel", "type", "TemplateProcessing",
            "single", "SpecialToken", "id", "<|begin_of_text|>", "type_id", 0, "Sequence", "id",
            "A", "type_id", 0, "pair", "special_tokens", "<|begin_of_text|>", "id",
            "<|begin_of_text|>", "ids", 50257, "tokens", "<|begin_of_text|>");
        json_t *root = json_pack("{s:[o,o,o], s:n, s:o, s:o, s:{s:s}, s:o}", "added_tokens",
                                 added_token(50256, "<|endoftext|>", true),
                                 added_token(50257, "<|begin_of_text|>", true),
                                 added_token(50258, "<|end_of_text|>", true), "normalizer",
                                 "pre_tokenizer", pre, "post_processor", post, "decoder", "type",
                                 "ByteLevel", "model", gpt2_model_json(shared, false));
        char *file = write_json(qwen ? "qwen2.json" : "llama3.json", root);
        lb_tokenizer *t;
        if (tok_load_hf_json(file, &t, &err) == 0) {
            CHECK(t->kind == LB_TOK_BPE && t->pretok == (qwen ? LB_PRETOK_QWEN2 : LB_PRETOK_LLAMA3),
                  "%s: kind %d pretok %d", file, t->kind, t->pretok);
            CHECK(t->n_vocab == 50259 && t->bos_id == 50257 && t->add_bos &&
                      t->eos_id == 50258 && !t->add_eos,
                  "%s: %d tokens, bos %d (add %d), eos %d", file, t->n_vocab, t->bos_id,
                  t->add_bos, t->eos_id);
            int n;
            int *ids = encode(t, "1234567", 7, true, &n);
            static const int llama3[] = {50257, 10163, 29228, 22};   /* BOS 123 456 7 */
            static const int qwen2[] = {50257, 16, 17, 18, 19, 20, 21, 22};
            CHECK(qwen ? ids_equal(ids, n, qwen2, 8) : ids_equal(ids, n, llama3, 4),
                  "%s: \"1234567\" gives %d ids", file, n);
            char *back = tok_decode(t, ids, n);
            CHECK(strcmp(back, "1234567") == 0, "%s: decodes as \"%s\"", file, back);
            free(back);
            free(ids);
            tok_free(t);
        } else {
            CHECK(false, "%s", err.msg);
        }
        free(file);
    }
    free(wiki);
}

/* A small Llama-2-style file: "▁" for spaces, <0xXX> byte fallback, merges by rank. */
static const char *const SPM_PIECES[] = {
    "<unk>", "<s>", "</s>", "\xe2\x96\x81", "h", "e", "l", "o", "w", "r", "d",
    "\xe2\x96\x81h", "ll", "\xe2\x96\x81he", "llo", "\xe2\x96\x81hello", "\xe2\x96\x81w", "or",
    "\xe2\x96\x81wor", "ld", "\xe2\x96\x81world", "lo"};
enum { SPM_FIRST_BYTE = 22, SPM_N = SPM_FIRST_BYTE + 256 };

static json_t *spm_model(bool byte_fallback, bool pairs)
{
    json_t *vocab = json_object();
    for (int i = 0; i < SPM_FIRST_BYTE; i++)
        json_object_set_new(vocab, SPM_PIECES[i], json_integer(i));
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        json_object_set_new(vocab, name, json_integer(SPM_FIRST_BYTE + b));
    }
    /* "l o" ranks after "l l" and "ll o": "hello" must become ▁he + llo, not ▁he + l + lo. */
    static const char *const merges[][2] = {
        {"\xe2\x96\x81", "h"}, {"l", "l"}, {"\xe2\x96\x81h", "e"}, {"ll", "o"},
        {"\xe2\x96\x81he", "llo"}, {"\xe2\x96\x81", "w"}, {"o", "r"}, {"\xe2\x96\x81w", "or"},
        {"l", "d"}, {"\xe2\x96\x81wor", "ld"}, {"l", "o"}};
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) {
        if (pairs) {
            json_array_append_new(arr, json_pack("[ss]", merges[i][0], merges[i][1]));
        } else {
            char s[64];
            snprintf(s, sizeof s, "%s %s", merges[i][0], merges[i][1]);
            json_array_append_new(arr, json_string(s));
        }
    }
    return json_pack("{s:s, s:o, s:o, s:b, s:s, s:b}", "type", "BPE", "vocab", vocab, "merges",
                     arr, "byte_fallback", byte_fallback, "unk_token", "<unk>", "fuse_unk", 1);
}

static json_t *spm_added_tokens(void)
{
    return json_pack("[o,o,o]", added_token(0, "<unk>", true), added_token(1, "<s>", true),
                     added_token(2, "</s>", true));
}

static void test_hf_spm(void)
{
    lb_error err;
    /* Llama 2: normalizer Prepend + Replace, no pre-tokenizer, template "<s> $A". */
    json_t *root = json_pack(
        "{s:o, s:{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}, s:n, s:{s:s, s:[{s:{s:s, s:i}}, "
        "{s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}, s:{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, "
        "{s:s}]}, s:o}",
        "added_tokens", spm_added_tokens(), "normalizer", "type", "Sequence", "normalizers",
        "type", "Prepend", "prepend", "\xe2\x96\x81", "type", "Replace", "pattern", "String", " ",
        "content", "\xe2\x96\x81", "pre_tokenizer", "post_processor", "type",
        "TemplateProcessing", "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence",
        "id", "A", "type_id", 0, "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>",
        "decoder", "type", "Sequence", "decoders", "type", "Replace", "pattern", "String",
        "\xe2\x96\x81", "content", " ", "type", "ByteFallback", "type", "Fuse", "model",
        spm_model(true, false));
    char *file = write_json("llama2.json", root);
    lb_tokenizer *t;
    if (tok_load_hf_json(file, &t, &err) == 0) {
        CHECK(t->kind == LB_TOK_SPM && t->add_space_prefix && t->byte_fallback && t->add_bos &&
                  t->bos_id == 1 && t->eos_id == 2 && t->unk_id == 0 && t->n_vocab == SPM_N,
              "Llama-2 tokenizer.json: kind %d prefix %d fallback %d bos %d/%d eos %d unk %d",
              t->kind, t->add_space_prefix, t->byte_fallback, t->add_bos, t->bos_id, t->eos_id,
              t->unk_id);
        CHECK(t->merge_ranks && t->n_merges == 11, "%d merges", t->n_merges);
        int n;
        /* hello world → <s> ▁hello ▁world; é has no piece: bytes 0xC3 0xA9. */
        int *ids = encode(t, "hello world \xc3\xa9", 14, true, &n);
        int want[] = {1, 15, 20, 3, SPM_FIRST_BYTE + 0xc3, SPM_FIRST_BYTE + 0xa9};
        CHECK(ids_equal(ids, n, want, 6), "\"hello world é\" gives %d ids", n);
        if (!ids_equal(ids, n, want, 6))
            show_ids("got", ids, n);
        char *back = tok_decode(t, ids, n);
        CHECK(strcmp(back, "hello world \xc3\xa9") == 0, "decodes as \"%s\"", back);
        free(back);
        free(ids);
        /* "lo" merges last: "hollo" → ▁h o llo (rank), not ▁h o l lo. */
        ids = encode(t, "hollo", 5, false, &n);
        int want2[] = {11, 7, 14};
        CHECK(ids_equal(ids, n, want2, 3), "\"hollo\" gives %d ids", n);
        free(ids);
        tok_free(t);
    } else {
        CHECK(false, "%s", err.msg);
    }
    free(file);

    /* Metaspace pre-tokenizer (Mistral-style), merges as pairs, prepend_scheme never. */
    for (int never = 0; never < 2; never++) {
        root = json_pack("{s:o, s:n, s:{s:s, s:s, s:s, s:b}, s:n, s:{s:s, s:s, s:s}, s:o}",
                         "added_tokens", spm_added_tokens(), "normalizer", "pre_tokenizer", "type",
                         "Metaspace", "replacement", "\xe2\x96\x81", "prepend_scheme",
                         never ? "never" : "first", "split", 0, "post_processor", "decoder",
                         "type", "Metaspace", "replacement", "\xe2\x96\x81", "prepend_scheme",
                         "first", "model", spm_model(true, true));
        file = write_json("metaspace.json", root);
        if (tok_load_hf_json(file, &t, &err) == 0) {
            CHECK(t->kind == LB_TOK_SPM && t->add_space_prefix == !never && t->n_merges == 11,
                  "Metaspace (%s): kind %d prefix %d", never ? "never" : "first", t->kind,
                  t->add_space_prefix);
            /* No post-processor: SentencePiece's own default, BOS first. */
            CHECK(t->add_bos && t->bos_id == 1, "Metaspace: add_bos %d bos %d", t->add_bos,
                  t->bos_id);
            int n;
            int *ids = encode(t, "hello", 5, false, &n);
            int want_first[] = {15}, want_never[] = {4, 5, 14};   /* ▁hello | h e llo */
            CHECK(never ? ids_equal(ids, n, want_never, 3) : ids_equal(ids, n, want_first, 1),
                  "Metaspace (%s): \"hello\" gives %d ids", never ? "never" : "first", n);
            free(ids);
            tok_free(t);
        } else {
            CHECK(false, "%s", err.msg);
        }
        free(file);
    }
}

/* Each bad file must fail with one line that contains `expect`. */
static void expect_error(const char *name, const char *text, const char *expect)
{
    char *file = write_file(name, text);
    lb_tokenizer *t = NULL;
    lb_error err = {{0}};
    int rc = tok_load_hf_json(file, &t, &err);
    CHECK(rc == -1 && t == NULL, "%s: loaded", text);
    CHECK(strstr(err.msg, expect) != NULL && strchr(err.msg, '\n') == NULL &&
              strstr(err.msg, file) != NULL,
          "%s: message \"%s\" lacks \"%s\" or the path", text, err.msg, expect);
    free(file);
}

static void test_hf_errors(void)
{
    expect_error("bad1.json", "{\"model\": {\"vocab\": {\"a\": 0},\n  \"merges\": [}",
                 "line 2, column");
    expect_error("bad2.json", "", "line 1");
    expect_error("bad3.json", "[1, 2]", "top level must be an object");
    expect_error("bad4.json", "{\"version\": \"1.0\"}", "model must be an object");
    expect_error("bad5.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}",
                 "model.vocab must be an object");
    expect_error("bad6.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": 5}}",
                 "model.merges must be an array");
    expect_error("bad7.json",
                 "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                 "model.type is 'WordPiece'");
    expect_error("bad8.json", "{\"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}",
                 "model.vocab[\"a\"] must be an id");
    expect_error("bad9.json", "{\"model\": {\"vocab\": {\"a\": \"0\"}, \"merges\": []}}",
                 "model.vocab[\"a\"] must be an id");
    expect_error("bad10.json",
                 "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {\"a\": 0, "
                 "\"b\": 1}, \"merges\": [7]}}",
                 "model.merges[0] must be");
    expect_error("bad11.json",
                 "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {\"a\": 0, "
                 "\"b\": 1}, \"merges\": [\"a b\", \"ab\"]}}",
                 "model.merges[1] must be");
    expect_error("bad12.json",
                 "{\"added_tokens\": {}, \"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}",
                 "added_tokens must be an array");
    expect_error("bad13.json",
                 "{\"added_tokens\": [{\"id\": 99999999, \"content\": \"x\"}], \"model\": "
                 "{\"vocab\": {\"a\": 0}, \"merges\": []}}",
                 "added_tokens[0].id");
    expect_error("bad14.json", "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}",
                 "cannot tell the tokenizer kind");
    expect_error("bad15.json",
                 "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [], \"byte_fallback\": \"yes\"}}",
                 "model.byte_fallback must be true or false");
    lb_error err;
    lb_tokenizer *t;
    char *missing = lb_path_join(tmpdir, "missing.json");
    CHECK(tok_load_hf_json(missing, &t, &err) == -1 && strstr(err.msg, "cannot open"),
          "missing file: %s", err.msg);
    free(missing);

    /* Ids with holes: the gap becomes unused tokens, not an error. */
    char *file = write_file("holes.json",
                            "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": "
                            "{\"a\": 0, \"b\": 3}, \"merges\": [\"a b\"]}}");
    if (tok_load_hf_json(file, &t, &err) == 0) {
        CHECK(t->n_vocab == 4 && t->types[1] == LB_TOKEN_UNUSED, "holes: %d tokens", t->n_vocab);
        tok_free(t);
    } else {
        CHECK(false, "holes: %s", err.msg);
    }
    free(file);
}

static void test_gpt2_file_errors(const char *shared)
{
    char merges[4096], vocab[4096];
    snprintf(merges, sizeof merges, "%s/tokenizers/gpt2/merges.txt", shared);
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2/vocab.json", shared);
    struct {
        const char *vocab_text, *merges_text, *expect;
    } cases[] = {
        {"{\"a\": 0, \"b\": 1,}", NULL, "line 1, column"},
        {"[\"a\"]", NULL, "expected a non-empty JSON object"},
        {"{\"a\": 0, \"b\": 2}", NULL, "no piece has id 1"},
        {"{\"a\": 0, \"b\": 0}", NULL, "id 0 is given to both"},
        {"{\"a\": 0, \"b\": 1.5}", NULL, "must be an integer"},
        {NULL, "#version: 0.2\na b\nab\n", "line 3: expected two pieces"},
        {NULL, "#version: 0.2\n", "no merges"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *v = cases[i].vocab_text ? write_file("vocab.json", cases[i].vocab_text) : lb_strdup(vocab);
        char *m = cases[i].merges_text ? write_file("merges.txt", cases[i].merges_text) : lb_strdup(merges);
        lb_tokenizer *t = NULL;
        lb_error err = {{0}};
        int rc = tok_load_gpt2_files(v, m, &t, &err);
        CHECK(rc == -1 && !t && strstr(err.msg, cases[i].expect) && !strchr(err.msg, '\n'),
              "GPT-2 files case %zu: rc %d, message \"%s\" (want \"%s\")", i, rc, err.msg,
              cases[i].expect);
        tok_free(t);
        free(v);
        free(m);
    }
}

static void remove_tmpdir(void)
{
    static const char *const names[] = {
        "gpt2_pairs.json", "gpt2_strings.json", "llama3.json", "qwen2.json", "llama2.json",
        "metaspace.json", "holes.json", "vocab.json", "merges.txt", "bad1.json", "bad2.json",
        "bad3.json", "bad4.json", "bad5.json", "bad6.json", "bad7.json", "bad8.json", "bad9.json",
        "bad10.json", "bad11.json", "bad12.json", "bad13.json", "bad14.json", "bad15.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = lb_path_join(tmpdir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(tmpdir);
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    const char *base = getenv("LOWBIT_TMP") ? getenv("LOWBIT_TMP") : getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lowbit_bpe_XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 1;
    }

    char vocab[4096], merges[4096];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2/vocab.json", shared);
    snprintf(merges, sizeof merges, "%s/tokenizers/gpt2/merges.txt", shared);
    lb_error err;
    lb_tokenizer *gpt2;
    if (tok_load_gpt2_files(vocab, merges, &gpt2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_gpt2_known(gpt2);
    test_roundtrip(gpt2);
    test_splits();
    test_whole_word_first();
    test_hf_byte_level(shared, gpt2);
    test_hf_spm();
    test_hf_errors();
    test_gpt2_file_errors(shared);
    tok_free(gpt2);
    remove_tmpdir();
    return check_finish("test_tokenizer_bpe");
}
