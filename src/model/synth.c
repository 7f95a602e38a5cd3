/* Synthetic models: the preset table, the GGUF metadata llama.cpp expects for a Llama model
 * with a SentencePiece vocabulary, and seeded random weights streamed into a gguf_writer.
 *
 * Determinism: each tensor is cut into fixed chunks of rows, and each chunk draws from its own
 * generator seeded from (seed, tensor index, chunk index). The chunking does not depend on the
 * thread count, so threads only change how fast the same bytes appear. */
#include "model/synth.h"

#include "core/rng.h"
#include "core/threadpool.h"
#include "io/gguf_write.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lb_synth_preset presets[] = {
    /* llama2.c's TinyStories models (Karpathy), at their published shapes. */
    {"stories15M", "llama", 288, 768, 6, 6, 6, 256, 32000, 10000.0f, 1e-5f, false},
    {"stories110M", "llama", 768, 2048, 12, 12, 12, 1024, 32000, 10000.0f, 1e-5f, false},
    /* Llama 3.2 1B's transformer with Llama 2's 32000-token vocabulary. */
    {"llama-1b", "llama", 2048, 8192, 16, 32, 8, 2048, 32000, 500000.0f, 1e-5f, true},
};

const lb_synth_preset *lb_synth_preset_find(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

const char *lb_synth_preset_names(void)
{
    return "stories15M, stories110M, llama-1b";
}

int lb_synth_file_type(lb_type t)
{
    /* llama.cpp's llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q4_1 3,
     * MOSTLY_Q8_0 7, MOSTLY_BF16 32. */
    switch (t) {
    case LB_TYPE_F32: return 0;
    case LB_TYPE_F16: return 1;
    case LB_TYPE_Q4_0: return 2;
    case LB_TYPE_Q4_1: return 3;
    case LB_TYPE_Q8_0: return 7;
    case LB_TYPE_BF16: return 32;
    default: return -1;
    }
}

/* ---- tensor list -------------------------------------------------------------------------- */

typedef struct {
    char name[LB_MAX_NAME];
    int64_t ne0, ne1;    /* ne1 == 0: a norm vector (F32, all ones) */
    lb_type type;
} synth_tensor;

static int plan(const lb_synth_params *p, int vocab, synth_tensor **out)
{
    const lb_synth_preset *c = p->preset;
    int head_dim = c->dim / c->n_heads;
    int64_t q = (int64_t)c->n_heads * head_dim, kv = (int64_t)c->n_kv_heads * head_dim;
    synth_tensor *t = lb_calloc((size_t)(3 + 9 * c->n_layers), sizeof *t);
    int n = 0;
#define ADD(ne0_, ne1_, ...)                                                  \
    do {                                                                     \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                  \
        t[n].ne0 = (ne0_);                                                   \
        t[n].ne1 = (ne1_);                                                   \
        t[n].type = (ne1_) ? p->type : LB_TYPE_F32;                          \
        n++;                                                                 \
    } while (0)
    ADD(c->dim, vocab, "token_embd.weight");
    ADD(c->dim, 0, "output_norm.weight");
    if (!c->tied)
        ADD(c->dim, vocab, "output.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(c->dim, 0, "blk.%d.attn_norm.weight", l);
        ADD(c->dim, q, "blk.%d.attn_q.weight", l);
        ADD(c->dim, kv, "blk.%d.attn_k.weight", l);
        ADD(c->dim, kv, "blk.%d.attn_v.weight", l);
        ADD(q, c->dim, "blk.%d.attn_output.weight", l);
        ADD(c->dim, 0, "blk.%d.ffn_norm.weight", l);
        ADD(c->dim, c->hidden_dim, "blk.%d.ffn_gate.weight", l);
        ADD(c->hidden_dim, c->dim, "blk.%d.ffn_down.weight", l);
        ADD(c->dim, c->hidden_dim, "blk.%d.ffn_up.weight", l);
    }
#undef ADD
    *out = t;
    return n;
}

/* ---- metadata ----------------------------------------------------------------------------- */

/* "<0xAB>": a byte-fallback piece, which llama.cpp expects typed as BYTE. */
static bool is_byte_piece(const char *s, int len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return false;
    for (int i = 3; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static void set_metadata(gguf_writer *w, const lb_synth_params *p)
{
    const lb_synth_preset *c = p->preset;
    const lb_tokenizer *tok = p->tok;
    char text[256];
    gguf_writer_set_str(w, "general.architecture", c->arch);
    snprintf(text, sizeof text, "%s-synthetic", c->name);
    gguf_writer_set_str(w, "general.name", text);
    snprintf(text, sizeof text, "random weights in %s's shapes (lowbit synth, seed %" PRIu64
             ", %s)", c->name, p->seed, lb_type_name(p->type));
    gguf_writer_set_str(w, "general.description", text);
    gguf_writer_set_u32(w, "general.file_type", (uint32_t)lb_synth_file_type(p->type));
    if (lb_type_traits_of(p->type)->quantized)
        gguf_writer_set_u32(w, "general.quantization_version", 2);

    char key[128];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, c->arch), key)
    gguf_writer_set_u32(w, ARCH_KEY("vocab_size"), (uint32_t)tok->n_vocab);
    gguf_writer_set_u32(w, ARCH_KEY("context_length"), (uint32_t)c->max_ctx);
    gguf_writer_set_u32(w, ARCH_KEY("embedding_length"), (uint32_t)c->dim);
    gguf_writer_set_u32(w, ARCH_KEY("block_count"), (uint32_t)c->n_layers);
    gguf_writer_set_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    gguf_writer_set_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)c->n_heads);
    gguf_writer_set_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    gguf_writer_set_f32(w, ARCH_KEY("rope.freq_base"), c->rope_theta);
    gguf_writer_set_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    gguf_writer_set_u32(w, ARCH_KEY("rope.dimension_count"), (uint32_t)(c->dim / c->n_heads));
#undef ARCH_KEY

    int n = tok->n_vocab;
    int32_t *types = lb_malloc((size_t)n * sizeof(int32_t));
    size_t *lens = lb_malloc((size_t)n * sizeof(size_t));
    const char **pieces = lb_malloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        pieces[i] = tok->pieces[i];
        lens[i] = (size_t)tok->piece_len[i];
        types[i] = tok->types[i];
        if (types[i] == LB_TOKEN_NORMAL && is_byte_piece(tok->pieces[i], tok->piece_len[i]))
            types[i] = LB_TOKEN_BYTE;
        /* llama2.c's exporter wrote BOS and EOS as "\n<s>\n" and "\n</s>\n"; SentencePiece
         * and llama.cpp (which finds end-of-generation tokens by their text) say "<s>", "</s>". */
        if (types[i] == LB_TOKEN_CONTROL || types[i] == LB_TOKEN_UNKNOWN) {
            while (lens[i] > 1 && pieces[i][0] == '\n') {
                pieces[i]++;
                lens[i]--;
            }
            while (lens[i] > 1 && pieces[i][lens[i] - 1] == '\n')
                lens[i]--;
        }
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, lens, (uint64_t)n);
    free(pieces);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, tok->scores, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n);
    free(types);
    free(lens);
    if (tok->bos_id >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tok->bos_id);
    if (tok->eos_id >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tok->eos_id);
    if (tok->unk_id >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tok->unk_id);
    if (tok->pad_id >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)tok->pad_id);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", tok->add_bos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", tok->add_eos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", tok->add_space_prefix);
}

/* ---- weights ------------------------------------------------------------------------------ */

#define CHUNK_ELEMS (64 * 1024)   /* rows per chunk: about this many values */
#define BLOCK_CHUNKS 32           /* chunks generated in parallel before each write */

typedef struct {
    const synth_tensor *t;
    const lb_type_traits *tr;
    uint64_t tensor_seed;
    float stddev;
    int64_t rows_per_chunk;
    int64_t first_chunk;       /* of this block */
    int64_t n_chunks;          /* in this block */
    float *values;             /* per thread: one chunk of fp32 values */
    uint8_t *out;              /* the block's encoded bytes */
    size_t row_bytes;
} fill_job;

static void fill_chunk(void *ctx, int task, int thread)
{
    fill_job *j = ctx;
    int64_t chunk = j->first_chunk + task;
    int64_t row0 = chunk * j->rows_per_chunk;
    int64_t rows = j->t->ne1 - row0 < j->rows_per_chunk ? j->t->ne1 - row0 : j->rows_per_chunk;
    int64_t n = rows * j->t->ne0;
    float *x = j->values + (size_t)thread * (size_t)(j->rows_per_chunk * j->t->ne0);
    lb_rng r;
    /* An odd multiplier unlike splitmix's increment keeps chunk streams from overlapping. */
    lb_rng_seed(&r, j->tensor_seed + (uint64_t)chunk * UINT64_C(0xD1B54A32D192ED03));
    for (int64_t i = 0; i < n; i++)
        x[i] = j->stddev * lb_rng_normal(&r);
    j->tr->from_float(x, j->out + (size_t)task * (size_t)j->rows_per_chunk * j->row_bytes, n);
}

typedef struct {
    gguf_writer *w;
    const lb_synth_params *p;
    double last_report;
} progress_state;

static void report(progress_state *ps, bool force)
{
    if (!ps->p->progress)
        return;
    double done = (double)gguf_writer_bytes_written(ps->w) / (double)gguf_writer_file_size(ps->w);
    if (force || done - ps->last_report >= 0.001) {
        ps->p->progress(done, ps->p->progress_user);
        ps->last_report = done;
    }
}

static int write_tensor(gguf_writer *w, lb_pool *pool, const synth_tensor *t, uint64_t seed,
                        float stddev, uint8_t *out, float *values, progress_state *ps,
                        lb_error *err)
{
    if (t->ne1 == 0) {
        float *ones = lb_malloc((size_t)t->ne0 * sizeof(float));
        for (int64_t i = 0; i < t->ne0; i++)
            ones[i] = 1.0f;
        int rc = gguf_writer_write(w, ones, (size_t)t->ne0 * sizeof(float), err);
        free(ones);
        return rc;
    }
    fill_job j = {.t = t, .tr = lb_type_traits_of(t->type), .tensor_seed = seed,
                  .stddev = stddev, .values = values, .out = out,
                  .row_bytes = lb_row_bytes(t->type, t->ne0)};
    j.rows_per_chunk = CHUNK_ELEMS / t->ne0 > 0 ? CHUNK_ELEMS / t->ne0 : 1;
    int64_t n_chunks = (t->ne1 + j.rows_per_chunk - 1) / j.rows_per_chunk;
    for (int64_t c = 0; c < n_chunks; c += BLOCK_CHUNKS) {
        j.first_chunk = c;
        j.n_chunks = n_chunks - c < BLOCK_CHUNKS ? n_chunks - c : BLOCK_CHUNKS;
        lb_pool_run(pool, (int)j.n_chunks, fill_chunk, &j);
        int64_t row0 = c * j.rows_per_chunk;
        int64_t rows = t->ne1 - row0;
        if (rows > j.n_chunks * j.rows_per_chunk)
            rows = j.n_chunks * j.rows_per_chunk;
        if (gguf_writer_write(w, out, (size_t)rows * j.row_bytes, err))
            return -1;
        report(ps, false);
    }
    return 0;
}

int lb_synth_write(const lb_synth_params *p, const char *path, lb_synth_result *res,
                   lb_error *err)
{
    const lb_synth_preset *c = p->preset;
    if (!c || !p->tok)
        return lb_fail(err, "%s: synth needs a preset and a tokenizer", path);
    if (p->tok->kind != LB_TOK_SPM)
        return lb_fail(err, "%s: synth writes SentencePiece-style (llama) vocabularies only",
                       path);
    if (lb_synth_file_type(p->type) < 0 || !lb_type_traits_of(p->type))
        return lb_fail(err, "%s: synth cannot write matrices of type %s", path,
                       lb_type_name(p->type));
    if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads)
        return lb_fail(err, "%s: preset %s: %d heads do not divide dim %d or by %d kv heads",
                       path, c->name, c->n_heads, c->dim, c->n_kv_heads);

    synth_tensor *ts;
    int n = plan(p, p->tok->n_vocab, &ts);
    gguf_writer *w = gguf_writer_create();
    set_metadata(w, p);
    int64_t params = 0;
    int64_t max_ne0 = 1;
    size_t max_block = 0;
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        if (gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].ne1 ? 2 : 1, ne, err)) {
            free(ts);
            gguf_writer_free(w);
            return lb_fail_prefix(err, "%s: preset %s: ", path, c->name);
        }
        params += ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1);
        if (ts[i].ne1) {
            int64_t rpc = CHUNK_ELEMS / ts[i].ne0 > 0 ? CHUNK_ELEMS / ts[i].ne0 : 1;
            size_t block = (size_t)(rpc * BLOCK_CHUNKS) * lb_row_bytes(ts[i].type, ts[i].ne0);
            if (block > max_block)
                max_block = block;
            if (rpc * ts[i].ne0 > max_ne0)
                max_ne0 = rpc * ts[i].ne0;
        }
    }
    if (gguf_writer_open(w, path, err)) {
        free(ts);
        gguf_writer_free(w);
        return -1;
    }
    lb_pool *pool = lb_pool_create(p->n_threads);
    uint8_t *out = lb_malloc(max_block ? max_block : 1);
    float *values = lb_malloc((size_t)lb_pool_size(pool) * (size_t)max_ne0 * sizeof(float));
    float stddev = p->stddev > 0 ? p->stddev : 0.02f;
    lb_rng seeds;
    lb_rng_seed(&seeds, p->seed);
    progress_state ps = {w, p, -1.0};
    report(&ps, true);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = write_tensor(w, pool, &ts[i], lb_rng_next(&seeds), stddev, out, values, &ps, err);
    if (rc == 0)
        rc = gguf_writer_finish(w, err);
    if (rc == 0) {
        report(&ps, true);
        if (res)
            *res = (lb_synth_result){gguf_writer_file_size(w), params, n};
    }
    free(values);
    free(out);
    lb_pool_free(pool);
    free(ts);
    gguf_writer_free(w);
    return rc;
}
