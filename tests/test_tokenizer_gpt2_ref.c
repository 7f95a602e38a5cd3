/* Differential test at real scale: lowbit's GPT-2 tokenizer (vocab.json + merges.txt from
 * shared/tokenizers/gpt2) against an independent implementation, the npm package
 * gpt-tokenizer (r50k_base = GPT-2's encoding), run by node on tests/tools/gpt2_ref.mjs.
 * Every line of WikiText-2's wiki.test.raw (with its "\n") and the whole file in one piece
 * must give exactly the same ids, and every line must decode back to its bytes.
 * Missing node or a missing package is a failure, not a skip: CI installs both. */
#include "check.h"
#include "core/file.h"
#include "core/vec.h"
#include "tokenizer/loaders.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses space-separated ids; returns the count, or -1 on anything else. */
static int parse_ids(const char *s, lb_ivec *out)
{
    out->n = 0;
    while (*s && *s != '\n') {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1000000)
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
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " …\n" : "\n");
}

/* Compares one text's encoding with the reference ids; reports the first difference. */
static bool same_ids(const char *what, const char *text, size_t len, const int *got, int n_got,
                     const lb_ivec *want)
{
    int k = 0;
    while (k < n_got && k < want->n && got[k] == want->v[k])
        k++;
    if (k == n_got && k == want->n)
        return true;
    fprintf(stderr, "%s differs at token %d: text \"%.*s\"\n", what, k, len > 200 ? 200 : (int)len,
            text);
    print_ids("lowbit   ", got + (k > 5 ? k - 5 : 0), n_got - (k > 5 ? k - 5 : 0));
    print_ids("reference", want->v + (k > 5 ? k - 5 : 0), want->n - (k > 5 ? k - 5 : 0));
    return false;
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED"), *tests = test_env("LOWBIT_TESTS");
    char vocab[4096], merges[4096], text_path[4096], cmd[12288];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2/vocab.json", shared);
    snprintf(merges, sizeof merges, "%s/tokenizers/gpt2/merges.txt", shared);
    snprintf(text_path, sizeof text_path, "%s/datasets/wikitext2/wiki.test.raw", shared);

    lb_error err;
    lb_tokenizer *t;
    if (tok_load_gpt2_files(vocab, merges, &t, &err)) {
        fprintf(stderr, "loading GPT-2 tokenizer: %s\n", err.msg);
        return 1;
    }
    char *text;
    size_t size;
    if (lb_read_file(text_path, 64u << 20, &text, &size, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    snprintf(cmd, sizeof cmd, "node '%s/tools/gpt2_ref.mjs' '%s'", tests, text_path);
    FILE *ref = popen(cmd, "r");
    if (!ref) {
        fprintf(stderr, "FAIL: cannot run node (needed for the reference tokenizer)\n");
        return 1;
    }

    lb_ivec want = {0};
    char *line = NULL;
    size_t line_cap = 0;
    int n_lines = 0, n_bad = 0, n_roundtrip_bad = 0;
    long n_tokens = 0;
    double encode_s = 0;
    size_t pos = 0;
    bool ref_short = false;
    while (pos < size) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) + 1 : size - pos;
        const char *s = text + pos;
        pos += len;
        if (getline(&line, &line_cap, ref) < 0 || strncmp(line, "WHOLE", 5) == 0) {
            ref_short = true;
            break;
        }
        if (parse_ids(line, &want) < 0) {
            fprintf(stderr, "reference line %d is not a list of ids: %.80s\n", n_lines + 1, line);
            n_bad++;
            break;
        }
        int *ids, n;
        double t0 = now_s();
        tok_encode(t, s, len, false, &ids, &n, &err);
        encode_s += now_s() - t0;
        char what[64];
        snprintf(what, sizeof what, "line %d", n_lines + 1);
        if (!same_ids(what, s, len, ids, n, &want) && ++n_bad >= 10) {
            free(ids);
            break;
        }
        char *back = tok_decode(t, ids, n);
        if (strlen(back) != len || memcmp(back, s, len) != 0)
            n_roundtrip_bad++;
        free(back);
        free(ids);
        n_lines++;
        n_tokens += n;
    }
    CHECK(!ref_short, "the reference printed fewer lines than the file has (%d)", n_lines);
    CHECK(n_bad == 0, "%d line(s) encode differently from gpt-tokenizer", n_bad);
    CHECK(n_roundtrip_bad == 0, "%d line(s) do not decode back to their bytes", n_roundtrip_bad);

    /* The whole file in one call: newlines between lines join into "\n \n"-style words. */
    int whole_n = -1;
    double whole_s = 0;
    if (!ref_short && n_bad == 0) {
        if (getline(&line, &line_cap, ref) < 0 || strncmp(line, "WHOLE ", 6) != 0) {
            CHECK(false, "the reference did not print the whole-file ids");
        } else {
            CHECK(parse_ids(line + 6, &want) > 0, "whole-file reference ids do not parse");
            int *ids;
            double t0 = now_s();
            tok_encode(t, text, size, false, &ids, &whole_n, &err);
            whole_s = now_s() - t0;
            CHECK(same_ids("whole file", text, size, ids, whole_n, &want),
                  "the whole file encodes differently from gpt-tokenizer");
            free(ids);
        }
    }
    /* Drain so that node is not killed by a closed pipe, then check how it ended. */
    while (getline(&line, &line_cap, ref) >= 0)
        ;
    int status = pclose(ref);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        CHECK(false, "the reference (%s) failed with exit status %d%s", cmd, code,
              code == 127 ? ": node is not installed (scripts/install-deps.sh installs it)" : "");
    }
    CHECK(n_lines > 4000 && n_tokens > 250000, "compared only %d lines / %ld tokens", n_lines,
          n_tokens);

    printf("compared %d lines, %ld tokens (line by line) and %d tokens (whole file, %zu bytes) "
           "with gpt-tokenizer r50k_base\n", n_lines, n_tokens, whole_n, size);
    printf("encode time: lines %.3f s, whole file %.3f s (%.2f MB/s)\n", encode_s, whole_s,
           whole_s > 0 ? (double)size / whole_s / 1e6 : 0.0);

    free(line);
    lb_ivec_free(&want);
    free(text);
    tok_free(t);
    return check_finish("test_tokenizer_gpt2_ref");
}
