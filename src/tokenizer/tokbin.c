/* llama2.c's tokenizer.bin: an int32 max token length, then per token a float32 score, an
 * int32 byte length and the bytes. The token count is not stored: it is the model's vocab
 * size, or, when that is unknown, whatever the file holds. */
#include "core/file.h"
#include "core/vec.h"
#include "tokenizer/loaders.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENBIN_BYTES (64u << 20)

int tok_load_llama2c(const char *path, int vocab_size, lb_tokenizer **out, lb_error *err)
{
    *out = NULL;
    char *data;
    size_t size;
    if (lb_read_file(path, MAX_TOKENBIN_BYTES, &data, &size, err))
        return -1;
    int32_t max_len;
    if (size < 4) {
        free(data);
        return lb_fail(err, "%s: offset 0: file ends before the max token length", path);
    }
    memcpy(&max_len, data, 4);
    if (max_len <= 0 || max_len > 4096) {
        free(data);
        return lb_fail(err, "%s: offset 0: max token length %d is outside 1..4096", path, max_len);
    }
    /* First pass: count the tokens and check every length. */
    size_t pos = 4;
    int count = 0;
    while (pos < size && (vocab_size <= 0 || count < vocab_size)) {
        int32_t len;
        if (size - pos < 8) {
            free(data);
            return lb_fail(err, "%s: offset %zu: file ends inside token %d's header", path, pos, count);
        }
        memcpy(&len, data + pos + 4, 4);
        if (len < 0 || len > max_len || (size_t)len > size - pos - 8) {
            free(data);
            return lb_fail(err, "%s: offset %zu: token %d has length %d (max %d, %zu bytes left)",
                           path, pos + 4, count, len, max_len, size - pos - 8);
        }
        pos += 8 + (size_t)len;
        count++;
    }
    if (vocab_size > 0 && count < vocab_size) {
        free(data);
        return lb_fail(err, "%s: holds %d tokens, the model expects %d", path, count, vocab_size);
    }
    if (count < 3) {
        free(data);
        return lb_fail(err, "%s: holds %d tokens; a vocabulary needs at least <unk>, <s>, </s>",
                       path, count);
    }
    lb_tokenizer *t = tok_create(LB_TOK_SPM, count);
    pos = 4;
    for (int i = 0; i < count; i++) {
        float score;
        int32_t len;
        memcpy(&score, data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        size_t next = pos + 8 + (size_t)len;
        int type = i == 0 ? LB_TOKEN_UNKNOWN : i <= 2 ? LB_TOKEN_CONTROL : LB_TOKEN_NORMAL;
        /* llama2.c's exporter wrote SentencePiece's "▁" as a plain space; restore it so the
         * vocabulary reads as it does in GGUF and tokenizer.model. */
        lb_buf piece = {0};
        const char *text = data + pos + 8;
        /* The exporter also wrapped BOS and EOS in newlines ("\n<s>\n"); unwrap them. */
        if (type == LB_TOKEN_CONTROL && len >= 2 && text[0] == '\n' && text[len - 1] == '\n') {
            text++;
            len -= 2;
        }
        for (int32_t k = 0; k < len; k++) {
            char ch = text[k];
            if (ch == ' ')
                lb_buf_append(&piece, "\xe2\x96\x81", 3);
            else
                lb_buf_append(&piece, &ch, 1);
        }
        tok_set_piece(t, i, lb_buf_cstr(&piece), piece.n, score, type);
        lb_buf_free(&piece);
        pos = next;
    }
    free(data);
    /* llama2.c's convention: 0 <unk>, 1 <s>, 2 </s>. */
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    if (tok_finalize(t, err)) {
        tok_free(t);
        return lb_fail_prefix(err, "%s: ", path);
    }
    *out = t;
    return 0;
}
