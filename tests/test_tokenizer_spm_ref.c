/* Differential test at real scale: lowbit's SentencePiece-style tokenizer, loaded from llama2.c's
 * tokenizer.bin (Llama 2, 32000 tokens), against SentencePiece itself: Debian's
 * python3-sentencepiece with the same vocabulary's tokenizer.model, run by /usr/bin/python3 on
 * tests/tools/spm_ref.py through one popen for everything.
 *
 * Compared, id for id, without BOS:
 *  - every line of WikiText-2's wiki.test.raw, each encoded WITHOUT its trailing "\n" on both
 *    sides (the newline separates lines; it is not part of the text);
 *  - the whole file as one string (newlines included): a 1.3 MB input stresses the merge heap;
 *  - edge cases (empty, only spaces, leading/trailing/multiple spaces, tabs, newlines, emoji,
 *    CJK, text that looks like special or byte pieces) and a few hundred seeded random strings
 *    of valid UTF-8 (random code points, and mutated fragments of the wiki text).
 * Also: decode(encode(x)) == x for all of these (SentencePiece drops the dummy-prefix space);
 * random bytes and invalid UTF-8 never crash and round-trip through <0xXX> byte tokens (here
 * lowbit keeps the bytes where SentencePiece would substitute U+FFFD); and tok512.bin
 * (TinyStories) round-trips the first lines of the TinyStories text and encodes them exactly as
 * the vocabulary inside stories260K.gguf does.
 * A missing python package is a failure, not a skip: CI installs it. */
#include "check.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/vec.h"
#include "model/model.h"
#include "tokenizer/loaders.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SHOWN 5   /* differing texts printed in full */

/* Parses space-separated ids; returns the count, or -1 on anything else. */
static int parse_ids(const char *s, lb_ivec *out)
{
    out->n = 0;
    while (*s == ' ')
        s++;
    while (*s && *s != '\n') {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 10000000)
            return -1;
        lb_ivec_push(out, (int)v);
        s = end;
        while (*s == ' ')
            s++;
    }
    return out->n;
}

static void print_ids(const char *label, const int *ids, int n)
{
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n && i < 60; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 60 ? " ...\n" : "\n");
}

/* Prints text with control and non-ASCII bytes escaped, at most 160 bytes of it. */
static void print_text(const char *text, size_t len)
{
    fprintf(stderr, "    text (%zu bytes): \"", len);
    for (size_t i = 0; i < len && i < 160; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, len > 160 ? "\"...\n" : "\"\n");
}

typedef struct {
    int compared, differing;
    long tokens;
    double encode_ms;
} tally;

/* Encodes text with lowbit and compares with the reference ids; shows the first few
 * differences with both full id lists. */
static void compare(const lb_tokenizer *t, const char *what, int index, const char *text,
                    size_t len, const lb_ivec *want, tally *tl)
{
    int *ids, n;
    lb_error err;
    double t0 = lb_now_ms();
    int rc = tok_encode(t, text, len, false, &ids, &n, &err);
    tl->encode_ms += lb_now_ms() - t0;
    tl->compared++;
    if (rc) {
        CHECK(false, "%s %d: encode failed: %s", what, index, err.msg);
        return;
    }
    tl->tokens += n;
    bool same = n == want->n && (n == 0 || memcmp(ids, want->v, (size_t)n * sizeof(int)) == 0);
    if (!same && tl->differing++ < MAX_SHOWN) {
        int k = 0;
        while (k < n && k < want->n && ids[k] == want->v[k])
            k++;
        fprintf(stderr, "  %s %d differs from SentencePiece at token %d:\n", what, index, k);
        print_text(text, len);
        print_ids("lowbit       ", ids, n);
        print_ids("sentencepiece", want->v, want->n);
    }
    free(ids);
}

/* decode(encode(text)) must give back the bytes. Decoded token by token so NUL bytes count. */
static bool round_trips(const lb_tokenizer *t, const char *text, size_t len)
{
    int *ids, n;
    lb_error err;
    if (tok_encode(t, text, len, false, &ids, &n, &err))
        return false;
    lb_buf out = {0};
    char piece[1024];
    bool ids_ok = true;
    for (int i = 0; i < n; i++) {
        ids_ok &= ids[i] >= 0 && ids[i] < t->n_vocab;
        int k = tok_decode_token(t, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        lb_buf_append(&out, piece, (size_t)k);
    }
    bool ok = ids_ok && out.n == len && (len == 0 || memcmp(out.v, text, len) == 0);
    /* Whole-sequence decode must agree where the text has no NUL. */
    if (ok && !memchr(text, 0, len)) {
        char *whole = tok_decode(t, ids, n);
        ok = strlen(whole) == len && memcmp(whole, text, len) == 0;
        free(whole);
    }
    lb_buf_free(&out);
    free(ids);
    return ok;
}

static void put_utf8(lb_buf *b, unsigned cp)
{
    char s[4];
    size_t n;
    if (cp < 0x80) {
        s[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        s[0] = (char)(0xc0 | cp >> 6);
        s[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        s[0] = (char)(0xe0 | cp >> 12);
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        s[0] = (char)(0xf0 | cp >> 18);
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    lb_buf_append(b, s, n);
}

static unsigned rand_below(lb_rng *r, unsigned n)
{
    return (unsigned)(lb_rng_next(r) % n);
}

/* A random valid code point, weighted towards what real text holds. Never a surrogate. */
static unsigned random_code_point(lb_rng *r)
{
    static const unsigned ranges[][2] = {
        {0x20, 0x7e},       {0x20, 0x20},       {0x09, 0x0a},     {0xa0, 0x24f},
        {0x391, 0x3c9},     {0x410, 0x44f},     {0x5d0, 0x5ea},   {0x3041, 0x30ff},
        {0x4e00, 0x9fff},   {0xac00, 0xd7a3},   {0x2000, 0x206f}, {0x1f300, 0x1f64f},
        {0x1f900, 0x1f9ff}, {0x1, 0x1f},        {0xe000, 0xfffd}, {0x10000, 0x10ffff},
    };
    static const unsigned weight[] = {40, 20, 4, 6, 3, 3, 1, 3, 6, 2, 2, 3, 1, 1, 1, 1};
    unsigned total = 0, pick;
    for (size_t i = 0; i < sizeof weight / sizeof weight[0]; i++)
        total += weight[i];
    pick = rand_below(r, total);
    size_t i = 0;
    while (pick >= weight[i])
        pick -= weight[i++];
    unsigned cp = ranges[i][0] + rand_below(r, ranges[i][1] - ranges[i][0] + 1);
    if (cp >= 0xd800 && cp <= 0xdfff)
        cp = 0x20;
    return cp;
}

typedef struct {
    char **text;
    size_t *len;
    int n;
} text_list;

static void list_add(text_list *l, const char *s, size_t len)
{
    l->text = lb_realloc(l->text, (size_t)(l->n + 1) * sizeof(char *));
    l->len = lb_realloc(l->len, (size_t)(l->n + 1) * sizeof(size_t));
    l->text[l->n] = lb_strndup(s, len);
    l->len[l->n] = len;
    l->n++;
}

static void list_free(text_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->text[i]);
    free(l->text);
    free(l->len);
}

/* Edge cases and random valid UTF-8 strings for the reference to encode. */
static void build_extra(text_list *l, const char *wiki, size_t wiki_len)
{
    static const char *fixed[] = {
        "", " ", "  ", "   ", "          ", "a", " a", "a ", "  a", "a  ", "a  b", " a b ",
        "hello world", " hello world", "hello world ", "hello   world", "Hello\tworld",
        "\t", "\t\t", " \t ", "\n", "\n\n", "a\nb", " \n ", "line one\nline two\n",
        "\r\n", "😀", "a😀b", " 😀 ", "👩‍💻 family 👨‍👩‍👧", "中文", "中文字符 测试", "日本語のテキスト",
        "한국어", "Ελληνικά", "русский текст", "עברית", "مرحبا", "naïve café", "ﬁ ligature",
        "\xe3\x80\x80ideographic space", "x\xc2\xa0y", "<s>", "</s>", "<unk>", "<0x41>",
        "<0x0A>", "\xe2\x96\x81", "\xe2\x96\x81\xe2\x96\x81x", "a\xe2\x96\x81" "b", "~~~~", "....",
        "1234567890", "3.14159 2,718", "@-@ @,@ @.@", " = = Heading = = ", "x = y + z * 2",
        "#include <stdio.h>", "http://example.com/a?b=c&d=e", "\x7f", "\x01\x02",
        "don't won't it's", "A B C D E F G", "supercalifragilisticexpialidocious",
        "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xef\xbf\xbd", "\xef\xbb\xbf" "bom",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        list_add(l, fixed[i], strlen(fixed[i]));

    lb_rng r;
    lb_rng_seed(&r, 2581);
    lb_buf b = {0};
    for (int k = 0; k < 200; k++) {   /* random code points */
        b.n = 0;
        int n = 1 + (int)rand_below(&r, 40);
        for (int i = 0; i < n; i++)
            put_utf8(&b, random_code_point(&r));
        list_add(l, b.v, b.n);
    }
    for (int k = 0; k < 200 && wiki_len > 400; k++) {   /* mutated fragments of real text */
        b.n = 0;
        size_t start = rand_below(&r, (unsigned)(wiki_len - 300)), n = 1 + rand_below(&r, 200);
        while (start > 0 && ((unsigned char)wiki[start] & 0xc0) == 0x80)
            start--;
        for (size_t i = start; i < start + n; i++) {
            char c = wiki[i];
            if (c == '\n')
                continue;
            lb_buf_append(&b, &c, 1);
            if (((unsigned char)wiki[i + 1] & 0xc0) == 0x80)
                continue;   /* inside a character */
            unsigned roll = rand_below(&r, 100);
            if (roll < 3)
                lb_buf_append(&b, "  ", 2);
            else if (roll < 4)
                lb_buf_append(&b, "\t", 1);
        }
        size_t last = b.n;   /* cut a character the fragment's end tore */
        while (last > 0 && ((unsigned char)b.v[last - 1] & 0xc0) == 0x80)
            last--;
        if (last > 0) {
            unsigned char lead = (unsigned char)b.v[last - 1];
            size_t want = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
            if (b.n - last + 1 != want)
                b.n = last - 1;
        }
        if (k % 3 == 0)
            lb_buf_append(&b, " ", 1);
        list_add(l, b.v, b.n);
    }
    lb_buf_free(&b);
}

static bool contains_space_mark(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(s + i, "\xe2\x96\x81", 3) == 0)
            return true;
    return false;
}

/* Random bytes and invalid UTF-8: never crash, every id is valid, bytes come back. */
static void check_bytes(const lb_tokenizer *t)
{
    static const char *bad[] = {"\xff", "\xfe\xff", "\xc3", "a\xc3", "\xc3(", "\xe2\x82",
                                "\xe2\x82(", "\xf0\x9f\x98", "\xf0\x9f", "\x80\x80\x80",
                                "\xed\xa0\x80", "\xc0\xaf", "\xf8\x88\x80\x80\x80", " \xff ",
                                "  \xff\xfe  "};
    int bad_fail = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!round_trips(t, bad[i], strlen(bad[i])))
            bad_fail++;
    CHECK(bad_fail == 0, "%d invalid UTF-8 strings do not round-trip", bad_fail);

    /* A lone invalid byte after the dummy prefix is "▁" then its byte token, never <unk>. */
    int *ids, n;
    lb_error err;
    tok_encode(t, "\xff", 1, false, &ids, &n, &err);
    int ff = tok_piece_id(t, "<0xFF>", 6), mark = tok_piece_id(t, "\xe2\x96\x81", 3);
    CHECK(n == 2 && ids[0] == mark && ids[1] == ff, "\"\\xff\" gave %d ids (%d %d), expected "
          "[%d %d]", n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1, mark, ff);
    free(ids);

    lb_rng r;
    lb_rng_seed(&r, 7);
    char buf[512];
    int fails = 0, unk = 0;
    for (int k = 0; k < 500; k++) {
        size_t len = 1 + rand_below(&r, sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)lb_rng_next(&r);
        if (contains_space_mark(buf, len))
            continue;   /* a literal "▁" decodes as a space: not a byte-preserving input */
        if (!round_trips(t, buf, len))
            fails++;
        tok_encode(t, buf, len, false, &ids, &n, &err);
        for (int i = 0; i < n; i++)
            unk += ids[i] == t->unk_id;
        free(ids);
    }
    CHECK(fails == 0, "%d of 500 random byte strings do not round-trip", fails);
    CHECK(unk == 0, "random bytes produced %d <unk> tokens; byte fallback should cover them", unk);
}

/* tok512.bin against TinyStories text: round trip, and the same ids as the vocabulary that
 * stories260K.gguf carries (same tokenizer, stored with token types). */
static void check_tinystories(const char *shared)
{
    char tok_path[4096], text_path[4096], gguf_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/models/tok512.bin", shared);
    snprintf(text_path, sizeof text_path, "%s/datasets/tinystories/validation_head.txt", shared);
    snprintf(gguf_path, sizeof gguf_path, "%s/models/stories260K.gguf", shared);
    lb_error err;
    lb_tokenizer *t;
    lb_model *m;
    if (tok_load_llama2c(tok_path, 512, &t, &err)) {
        CHECK(false, "loading tok512.bin: %s", err.msg);
        return;
    }
    if (lb_model_load(gguf_path, NULL, &m, &err)) {
        CHECK(false, "loading stories260K.gguf: %s", err.msg);
        tok_free(t);
        return;
    }
    char *text;
    size_t size;
    if (lb_read_file(text_path, 64u << 20, &text, &size, &err)) {
        CHECK(false, "%s", err.msg);
        lb_model_free(m);
        tok_free(t);
        return;
    }
    int lines = 0, rt_bad = 0, diff = 0;
    long tokens = 0;
    for (size_t pos = 0; pos < size && lines < 400; lines++) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
        const char *s = text + pos;
        pos += len + 1;
        if (!round_trips(t, s, len) && rt_bad++ < MAX_SHOWN) {
            fprintf(stderr, "  TinyStories line %d does not round-trip with tok512.bin\n",
                    lines + 1);
            print_text(s, len);
        }
        int *a, na, *b, nb;
        tok_encode(t, s, len, false, &a, &na, &err);
        tok_encode(m->tok, s, len, false, &b, &nb, &err);
        tokens += na;
        if ((na != nb || memcmp(a, b, (size_t)na * sizeof(int)) != 0) && diff++ < MAX_SHOWN) {
            fprintf(stderr, "  TinyStories line %d: tok512.bin and the GGUF vocabulary differ\n",
                    lines + 1);
            print_ids("tok512.bin", a, na);
            print_ids("gguf      ", b, nb);
        }
        free(a);
        free(b);
    }
    CHECK(lines == 400, "TinyStories text has only %d lines", lines);
    CHECK(tokens > 15000, "TinyStories: only %ld tokens in %d lines", tokens, lines);
    CHECK(rt_bad == 0, "%d TinyStories line(s) do not round-trip with tok512.bin", rt_bad);
    CHECK(diff == 0, "%d TinyStories line(s) encode differently with tok512.bin and the GGUF "
          "vocabulary", diff);
    printf("tok512.bin: %d TinyStories lines, %ld tokens round-trip and match the GGUF "
           "vocabulary\n", lines, tokens);
    free(text);
    lb_model_free(m);
    tok_free(t);
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Reads one vocabulary variant from the reference (see spm_ref.py), builds the same tokenizer
 * through the public builder (pieces, scores, types), and compares the ids of the extra strings
 * and the first wiki lines. */
static void check_variant(FILE *ref, char **line, size_t *cap, const text_list *extra,
                          const text_list *wiki)
{
    char name[64];
    int n, unk, bos, eos, prefix, fallback;
    if (getline(line, cap, ref) < 0 ||
        sscanf(*line, "VARIANT %63s %d %d %d %d %d %d", name, &n, &unk, &bos, &eos, &prefix,
               &fallback) != 7 || n <= 0 || n > 1000000) {
        CHECK(false, "the reference did not print a vocabulary variant");
        return;
    }
    lb_tokenizer *t = tok_create(LB_TOK_SPM, n);
    int counts[8] = {0};
    lb_buf piece = {0};
    for (int i = 0; i < n; i++) {
        char *end;
        if (getline(line, cap, ref) < 0) {
            CHECK(false, "variant %s: vocabulary ends at piece %d", name, i);
            tok_free(t);
            return;
        }
        piece.n = 0;
        const char *p = *line;
        for (; hex_value(p[0]) >= 0 && hex_value(p[1]) >= 0; p += 2) {
            char c = (char)(hex_value(p[0]) * 16 + hex_value(p[1]));
            lb_buf_append(&piece, &c, 1);
        }
        float score = (float)strtod(p, &end);
        long type = strtol(end, NULL, 10);
        if (type < 1 || type > 6)
            type = 1;
        counts[type]++;
        tok_set_piece(t, i, lb_buf_cstr(&piece), piece.n, score, (int)type);
    }
    lb_buf_free(&piece);
    t->unk_id = unk;
    t->bos_id = bos;
    t->eos_id = eos;
    t->add_space_prefix = prefix;
    t->byte_fallback = fallback;
    lb_error err;
    if (tok_finalize(t, &err)) {
        CHECK(false, "variant %s: %s", name, err.msg);
        tok_free(t);
        return;
    }
    tally tl = {0};
    lb_ivec want = {0};
    int n_unk = 0;
    for (int i = 0; i < extra->n + wiki->n; i++) {
        if (getline(line, cap, ref) < 0 || parse_ids(*line, &want) < 0) {
            CHECK(false, "variant %s: reference ids for string %d missing", name, i);
            break;
        }
        for (int k = 0; k < want.n; k++)
            n_unk += want.v[k] == unk;
        bool is_extra = i < extra->n;
        int j = is_extra ? i : i - extra->n;
        const text_list *l = is_extra ? extra : wiki;
        char what[96];
        snprintf(what, sizeof what, "variant %s, %s", name, is_extra ? "extra case" : "wiki line");
        compare(t, what, is_extra ? j : j + 1, l->text[j], l->len[j], &want, &tl);
    }
    CHECK(tl.compared == extra->n + wiki->n && tl.differing == 0,
          "variant %s: %d of %d strings encode differently from SentencePiece", name,
          tl.differing, tl.compared);
    printf("variant %s: %d pieces (%d user-defined, %d unused, %d byte), %d strings, %ld tokens "
           "(%d <unk>), %d differ\n", name, n, counts[4], counts[5], counts[6], tl.compared,
           tl.tokens, n_unk, tl.differing);
    /* The variants exist to exercise these paths; make sure they did. */
    if (strcmp(name, "unused") == 0)
        CHECK(counts[5] > 5000, "variant unused has only %d unused pieces", counts[5]);
    else
        CHECK(counts[4] >= 2, "variant %s has only %d user-defined pieces", name, counts[4]);
    if (strcmp(name, "nofallback") == 0)
        CHECK(n_unk > 100, "variant nofallback produced only %d <unk>", n_unk);
    lb_ivec_free(&want);
    tok_free(t);
}

/* A user-defined piece is one symbol that never merges on, even where a merge would form a
 * better piece (SentencePiece freezes it); unknown runs without byte pieces share one <unk>.
 * Hand-built because trained vocabularies never hold such a piece. */
static void check_hand_built(void)
{
    static const struct {
        const char *piece;
        float score;
        int type;
    } vocab[] = {{"<unk>", 0, LB_TOKEN_UNKNOWN}, {"<s>", 0, LB_TOKEN_CONTROL},
                 {"</s>", 0, LB_TOKEN_CONTROL},  {"a", -1, LB_TOKEN_NORMAL},
                 {"b", -2, LB_TOKEN_NORMAL},      {"c", -3, LB_TOKEN_NORMAL},
                 {"ab", 0, LB_TOKEN_USER_DEFINED}, {"abc", 10, LB_TOKEN_NORMAL},
                 {"bc", 5, LB_TOKEN_NORMAL},      {"ca", -5, LB_TOKEN_CONTROL}};
    int n = (int)(sizeof vocab / sizeof vocab[0]);
    lb_tokenizer *t = tok_create(LB_TOK_SPM, n);
    for (int i = 0; i < n; i++)
        tok_set_piece(t, i, vocab[i].piece, strlen(vocab[i].piece), vocab[i].score,
                      vocab[i].type);
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->add_space_prefix = false;
    lb_error err;
    CHECK(tok_finalize(t, &err) == 0, "hand-built vocabulary: %s", err.msg);
    CHECK(!t->byte_fallback, "a vocabulary without <0xXX> pieces cannot fall back to bytes");
    static const struct {
        const char *text;
        int ids[8], n;
    } cases[] = {
        {"abc", {6, 5}, 2},            /* not "abc": "ab" is frozen */
        {"bca", {8, 3}, 2},            /* "ca" is a control piece: no merge forms it */
        {"xyabzc", {0, 6, 0, 5}, 4},   /* "xy" and "z": one <unk> per run */
        {"aab", {3, 6}, 2},            /* longest user-defined match from the left */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int *ids, k;
        tok_encode(t, cases[i].text, strlen(cases[i].text), false, &ids, &k, &err);
        bool same = k == cases[i].n && memcmp(ids, cases[i].ids, (size_t)k * sizeof(int)) == 0;
        CHECK(same, "hand-built vocabulary: \"%s\" gave %d ids (first %d), expected %d",
              cases[i].text, k, k ? ids[0] : -1, cases[i].n);
        free(ids);
    }
    tok_free(t);
}

/* Splits text at "\n" (the newline belongs to neither line; a final one starts no line). */
static void split_lines(const char *text, size_t size, text_list *l)
{
    for (size_t pos = 0; pos < size;) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
        list_add(l, text + pos, len);
        pos += len + 1;
    }
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED"), *tests = test_env("LOWBIT_TESTS");
    char bin_path[4096], model_path[4096], text_path[4096], train_path[4096];
    char hex_path[] = "/tmp/lowbit-spm-XXXXXX";
    snprintf(bin_path, sizeof bin_path, "%s/models/tokenizer.bin", shared);
    snprintf(model_path, sizeof model_path, "%s/models/tokenizer.model", shared);
    snprintf(text_path, sizeof text_path, "%s/datasets/wikitext2/wiki.test.raw", shared);
    snprintf(train_path, sizeof train_path, "%s/datasets/tinystories/validation_head.txt", shared);

    lb_error err;
    lb_tokenizer *t;
    if (tok_load_llama2c(bin_path, 32000, &t, &err)) {
        fprintf(stderr, "loading tokenizer.bin: %s\n", err.msg);
        return 1;
    }
    CHECK(t->n_vocab == 32000, "tokenizer.bin has %d tokens", t->n_vocab);
    char *text;
    size_t size;
    if (lb_read_file(text_path, 64u << 20, &text, &size, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    text_list lines = {0};
    split_lines(text, size, &lines);

    /* Empty input gives no ids; with specials, just BOS. */
    int *ids, n;
    tok_encode(t, "", 0, false, &ids, &n, &err);
    CHECK(n == 0, "empty text gave %d ids", n);
    free(ids);
    tok_encode(t, "", 0, true, &ids, &n, &err);
    CHECK(n == 1 && ids[0] == 1, "empty text with BOS gave %d ids", n);
    free(ids);

    text_list extra = {0};
    build_extra(&extra, text, size);
    int fd = mkstemp(hex_path);
    if (fd < 0) {
        fprintf(stderr, "cannot create a temporary file\n");
        return 1;
    }
    FILE *hex = fdopen(fd, "w");
    for (int i = 0; i < extra.n; i++) {
        for (size_t k = 0; k < extra.len[i]; k++)
            fprintf(hex, "%02x", (unsigned char)extra.text[i][k]);
        fputc('\n', hex);
    }
    fclose(hex);

    char cmd[20480];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tools/spm_ref.py' '%s' '%s' '%s' '%s'", tests,
             model_path, text_path, hex_path, train_path);
    double t0 = lb_now_ms();
    FILE *ref = popen(cmd, "r");
    if (!ref) {
        fprintf(stderr, "FAIL: cannot run /usr/bin/python3 (needed for the SentencePiece "
                "reference)\n");
        return 1;
    }

    lb_ivec want = {0};
    char *line = NULL;
    size_t line_cap = 0;
    tally wiki = {0}, whole = {0}, edge = {0};
    int n_read = 0, rt_bad = 0, bad_ref = 0;
    bool ref_short = false;
    for (int i = 0; i < lines.n; i++) {
        if (getline(&line, &line_cap, ref) < 0 || strncmp(line, "WHOLE", 5) == 0) {
            ref_short = true;
            break;
        }
        n_read++;
        if (parse_ids(line, &want) < 0) {
            bad_ref++;
            continue;
        }
        compare(t, "wiki.test.raw line", i + 1, lines.text[i], lines.len[i], &want, &wiki);
        if (!round_trips(t, lines.text[i], lines.len[i]) && rt_bad++ < MAX_SHOWN) {
            fprintf(stderr, "  wiki.test.raw line %d does not round-trip\n", i + 1);
            print_text(lines.text[i], lines.len[i]);
        }
    }
    CHECK(!ref_short, "the reference printed %d lines for the %d of wiki.test.raw; is "
          "python3-sentencepiece installed?", n_read, lines.n);
    CHECK(bad_ref == 0, "%d reference lines are not lists of ids", bad_ref);
    CHECK(wiki.differing == 0, "%d of %d wiki.test.raw lines encode differently from "
          "SentencePiece", wiki.differing, wiki.compared);
    CHECK(rt_bad == 0, "%d wiki.test.raw lines do not decode back to their text", rt_bad);
    CHECK(lines.n > 4000 && wiki.tokens > 300000, "only %d lines, %ld tokens compared", lines.n,
          wiki.tokens);

    if (!ref_short) {
        if (getline(&line, &line_cap, ref) < 0 || strncmp(line, "WHOLE", 5) != 0 ||
            parse_ids(line + 5, &want) <= 0)
            CHECK(false, "the reference did not print the whole-file ids");
        else
            compare(t, "whole file", 1, text, size, &want, &whole);
        CHECK(whole.compared == 1 && whole.differing == 0,
              "the whole file in one piece encodes differently from SentencePiece");

        if (getline(&line, &line_cap, ref) < 0 || strcmp(line, "EXTRA\n") != 0) {
            CHECK(false, "the reference did not print the extra cases");
        } else {
            int edge_rt_bad = 0;
            for (int i = 0; i < extra.n; i++) {
                if (getline(&line, &line_cap, ref) < 0 || parse_ids(line, &want) < 0) {
                    CHECK(false, "reference ids for extra case %d missing", i);
                    break;
                }
                compare(t, "extra case", i, extra.text[i], extra.len[i], &want, &edge);
                if (!contains_space_mark(extra.text[i], extra.len[i]) &&
                    !round_trips(t, extra.text[i], extra.len[i]) && edge_rt_bad++ < MAX_SHOWN) {
                    fprintf(stderr, "  extra case %d does not round-trip\n", i);
                    print_text(extra.text[i], extra.len[i]);
                }
            }
            CHECK(edge.compared == extra.n && edge.differing == 0,
                  "%d of %d edge-case/random strings encode differently from SentencePiece",
                  edge.differing, edge.compared);
            CHECK(edge_rt_bad == 0, "%d edge-case/random strings do not round-trip",
                  edge_rt_bad);
        }
        printf("wiki.test.raw: %d lines, %ld tokens compared with SentencePiece, %d differ; "
               "lowbit encode %.1f ms for all lines (%.2f M tokens/s)\n", wiki.compared,
               wiki.tokens, wiki.differing, wiki.encode_ms,
               (double)wiki.tokens / (wiki.encode_ms * 1e3 + 1e-9));
        printf("whole file in one piece: %ld tokens, %s, lowbit encode %.1f ms\n", whole.tokens,
               whole.differing || !whole.compared ? "DIFFERS" : "identical", whole.encode_ms);
        printf("edge cases + random UTF-8: %d strings, %ld tokens, %d differ\n", edge.compared,
               edge.tokens, edge.differing);

        text_list head = lines;   /* the variants see the first 1000 wiki lines */
        if (head.n > 1000)
            head.n = 1000;
        for (int v = 0; v < 3; v++)
            check_variant(ref, &line, &line_cap, &extra, &head);
    }
    while (getline(&line, &line_cap, ref) >= 0) {
    }
    int status = pclose(ref);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the reference script failed (exit status %d): see its message above; it needs "
          "/usr/bin/python3 with python3-sentencepiece",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    unlink(hex_path);
    printf("differential part (python reference running alongside) took %.0f ms\n",
           lb_now_ms() - t0);

    check_bytes(t);
    check_tinystories(shared);
    check_hand_built();

    free(line);
    lb_ivec_free(&want);
    list_free(&extra);
    list_free(&lines);
    free(text);
    tok_free(t);
    return check_finish("test_tokenizer_spm_ref");
}
