/* Encoding arbitrary bytes with both tokenizer kinds: SentencePiece-style (stories260K's
 * vocabulary, with byte fallback) and byte-level BPE (GPT-2's 50,257 tokens). Valid UTF-8
 * must come back unchanged from decode; anything else must merely not crash. */
#include "fuzz.h"
#include "model/model.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <string.h>

static lb_tokenizer *spm, *bpe;
static lb_model *spm_model;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char a[1024], b[1024];
    lb_error err;
    snprintf(a, sizeof a, "%s/models/stories260K.gguf", fuzz_shared());
    if (lb_model_load(a, NULL, &spm_model, &err)) {
        fprintf(stderr, "fuzz_encode: %s\n", err.msg);
        abort();
    }
    spm = spm_model->tok;
    snprintf(a, sizeof a, "%s/tokenizers/gpt2/vocab.json", fuzz_shared());
    snprintf(b, sizeof b, "%s/tokenizers/gpt2/merges.txt", fuzz_shared());
    if (tok_load_gpt2_files(a, b, &bpe, &err)) {
        fprintf(stderr, "fuzz_encode: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + (size_t)len > n) return false;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += (size_t)len;
    }
    return true;
}

static void round_trip(const lb_tokenizer *t, const uint8_t *data, size_t size, bool must_match)
{
    int *ids = NULL, n = 0;
    lb_error err;
    if (tok_encode(t, (const char *)data, size, false, &ids, &n, &err))
        return;
    char *text = tok_decode(t, ids, n);
    if (must_match && (strlen(text) != size || memcmp(text, data, size) != 0)) {
        fprintf(stderr, "round trip changed the text (%zu bytes in, %zu out)\n", size, strlen(text));
        abort();
    }
    free(text);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool utf8 = valid_utf8(data, size) && !memchr(data, 0, size);
    round_trip(bpe, data, size, utf8);
    round_trip(spm, data, size, false);
    return 0;
}
