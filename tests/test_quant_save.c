/* lowbit's quantized GGUF: stories260K quantized in every runtime format is saved with
 * lb_model_save and loaded back by the GGUF loader with bit-identical logits, the same tensor
 * layouts and the same lowbit.quant.* settings; the file is smaller than the F32 source; a
 * failed save leaves nothing behind; damaged parts of a saved file are refused with one line. */
#include "check.h"
#include "qmodel.h"
#include "core/file.h"
#include "io/gguf.h"

#include <jansson.h>

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const qmodel_cfg CFGS[] = {
    {8, 0, true, false, false}, {4, 32, false, false, false}, {4, 32, true, true, false},
    {3, 64, false, true, false}, {2, 32, true, false, false}, {8, 32, false, false, false},
    {8, 0, true, false, true},
};

static const char TEXT[] = "One day, Tom found a shiny stone under the big tree.";

static lb_model *load(const char *path, lb_error *err)
{
    lb_model *m;
    return lb_model_load(path, NULL, &m, err) ? NULL : m;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Replaces the first occurrence of `from` in the file by `to` (same length). */
static void patch(const char *src, const char *dst, const char *from, const char *to)
{
    FILE *f = fopen(src, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    size_t fl = strlen(from);
    for (long i = 0; i + (long)fl <= n; i++)
        if (memcmp(buf + i, from, fl) == 0) {
            memcpy(buf + i, to, fl);
            break;
        }
    f = fopen(dst, "wb");
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    free(buf);
}

int main(void)
{
    char src[4096], out[4096], bad[4096];
    snprintf(src, sizeof src, "%s/models/stories260K.gguf", test_env("LOWBIT_SHARED"));
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(out, sizeof out, "%s/test_quant_save.%d.gguf", tmp, (int)getpid());
    snprintf(bad, sizeof bad, "%s/test_quant_save.%d.bad.gguf", tmp, (int)getpid());
    lb_error err;
    lb_model *base = load(src, &err);
    CHECK(base != NULL, "%s", base ? "" : err.msg);
    if (!base)
        return check_finish("test_quant_save");
    int *ids, n;
    CHECK(tok_encode(base->tok, TEXT, sizeof TEXT - 1, true, &ids, &n, &err) == 0, "%s", err.msg);
    size_t count = (size_t)n * base->cfg.vocab_size;
    float *la = malloc(count * sizeof(float)), *lb = malloc(count * sizeof(float));

    for (size_t ci = 0; ci < sizeof CFGS / sizeof CFGS[0]; ci++) {
        const qmodel_cfg *c = &CFGS[ci];
        lb_model *q = load(src, &err);
        CHECK(qmodel_quantize(q, c, true, &err) == 0, "%s", err.msg);
        q->quant.alpha = 0.5f;
        q->quant.damp = 0.01f;
        q->quant.calib_samples = 128;
        q->quant.calib_seqlen = 256;
        snprintf(q->quant.calib_file, sizeof q->quant.calib_file, "train_subset.txt");
        CHECK(lb_model_save(q, out, &err) == 0, "save: %s", err.msg);
        lb_model *r = load(out, &err);
        CHECK(r != NULL, "reload: %s", r ? "" : err.msg);
        if (!r) {
            lb_model_free(q);
            continue;
        }
        CHECK(r->n_tensors == q->n_tensors, "%d tensors back, saved %d", r->n_tensors,
              q->n_tensors);
        for (int i = 0; i < q->n_tensors; i++) {
            const lb_tensor *a = &q->tensors[i], *b = lb_model_find(r, a->name);
            CHECK(b && b->type == a->type && b->ne[0] == a->ne[0] && b->ne[1] == a->ne[1] &&
                      b->nbytes == a->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                  "tensor %s comes back the same", a->name);
            if (b && a->qlayout)
                CHECK(b->qlayout && b->qlayout->group_size == a->qlayout->group_size &&
                          b->qlayout->has_zero == a->qlayout->has_zero &&
                          b->qlayout->w8a8 == a->qlayout->w8a8 &&
                          (a->qlayout->g_idx == NULL) == (b->qlayout->g_idx == NULL),
                      "layout of %s", a->name);
        }
        CHECK(strcmp(r->quant.method, "rtn") == 0 && r->quant.bits == c->bits &&
                  r->quant.group_size == c->group && r->quant.sym == c->sym &&
                  r->quant.act_order == c->act_order && r->quant.w8a8 == c->w8a8 &&
                  r->quant.alpha == 0.5f && r->quant.damp == 0.01f &&
                  r->quant.calib_samples == 128 && r->quant.calib_seqlen == 256 &&
                  strcmp(r->quant.calib_file, "train_subset.txt") == 0,
              "quant info comes back (%s %d)", r->quant.method, r->quant.bits);
        CHECK(qmodel_logits(q, ids, n, la, &err) == 0, "%s", err.msg);
        CHECK(qmodel_logits(r, ids, n, lb, &err) == 0, "%s", err.msg);
        CHECK(memcmp(la, lb, count * sizeof(float)) == 0, "%d-bit g%d: identical logits",
              c->bits, c->group);
        lb_mapping mp;
        CHECK(lb_map_file(out, &mp, &err) == 0, "%s", err.msg);
        printf("%d-bit g%d%s%s: %zu bytes on disk (F32 source: %zu in tensors)\n", c->bits,
               c->group, c->act_order ? " act-order" : "", c->w8a8 ? " w8a8" : "", mp.size,
               lb_model_bytes(base));
        CHECK(mp.size < lb_model_bytes(base), "the file is smaller than the F32 tensors");
        lb_unmap(&mp);

        if (ci == 1) {
            /* lowbit info --json reports the method and what each tensor costs */
            char cmd[8400];
            snprintf(cmd, sizeof cmd, "'%s' info --json '%s'", test_env("LOWBIT_BIN"), out);
            FILE *p = popen(cmd, "r");
            json_error_t je;
            json_t *j = p ? json_loadf(p, 0, &je) : NULL;
            CHECK(p && pclose(p) == 0 && j, "lowbit info --json");
            json_t *qj = json_object_get(j, "quant");
            CHECK(strcmp(json_string_value(json_object_get(qj, "method")) ?: "", "rtn") == 0 &&
                      json_integer_value(json_object_get(qj, "bits")) == 4 &&
                      json_integer_value(json_object_get(qj, "group_size")) == 32,
                  "info: quant block");
            size_t k;
            json_t *t;
            int seen = 0;
            json_array_foreach(json_object_get(j, "tensors"), k, t) {
                const char *nm = json_string_value(json_object_get(t, "name"));
                if (!nm || strcmp(nm, "blk.0.ffn_down.weight") != 0)
                    continue;
                seen = 1;
                /* 64 rows x 6 groups: 6 scales (4 bytes) + 6 zeros (padded to 8) + 6 blocks of
                 * 16 bytes = 128 bytes per row of 172 weights */
                double bpw = json_real_value(json_object_get(t, "bits_per_weight"));
                CHECK(json_integer_value(json_object_get(t, "bytes")) == 64 * 128 &&
                          fabs(bpw - 8.0 * 128 / 172) < 1e-3 &&
                          json_integer_value(json_object_get(t, "group_size")) == 32 &&
                          json_is_true(json_object_get(t, "zero_points")),
                      "info: ffn_down bytes and bits per weight (%g)", bpw);
            }
            CHECK(seen, "info lists blk.0.ffn_down.weight");
            json_decref(j);
        }
        if (ci == 2) {
            /* a saved file saves again (its own header is copied), identically */
            char again[4200];
            snprintf(again, sizeof again, "%s.again", out);
            CHECK(lb_model_save(r, again, &err) == 0, "%s", err.msg);
            lb_model *r2 = load(again, &err);
            CHECK(r2 && qmodel_logits(r2, ids, n, lb, &err) == 0 &&
                      memcmp(la, lb, count * sizeof(float)) == 0, "second generation");
            lb_model_free(r2);
            unlink(again);
            /* damaged parts */
            struct {
                const char *from, *to, *want;
            } cases[] = {
                {".lb_scale", ".lb_scalX", "has no 'blk.0.attn_q.weight.lb_scale' beside it"},
                {".lb_meta", ".lb_metX", "has no 'blk.0.attn_q.weight.lb_meta' beside it"},
                {"blk.0.attn_q.weight", "blk.0.attn_q.weighX", "has no 'blk.0.attn_q.weighX.lb_meta'"},
            };
            for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
                patch(out, bad, cases[k].from, cases[k].to);
                lb_model *x = load(bad, &err);
                CHECK(!x && strstr(err.msg, cases[k].want) && !strchr(err.msg, '\n'),
                      "damaged %s: %s", cases[k].to, x ? "loaded" : err.msg);
                lb_model_free(x);
            }
            /* damaged values inside the parts: each refused with one line naming the part */
            gguf_file *gf;
            CHECK(gguf_open(out, &gf, &err) == 0, "%s", err.msg);
            struct {
                const char *tensor;
                int64_t index;   /* element */
                int size;        /* bytes of the element */
                int64_t value;
                const char *want;
            } vals[] = {
                {"blk.0.ffn_down.weight.lb_meta", 0, 4, 0, "shape is 64 x 0"},
                {"blk.0.ffn_down.weight.lb_meta", 0, 4, -7, "shape is 64 x -7"},
                {"blk.0.ffn_down.weight.lb_meta", 0, 4, 1 << 30, "expected I32 [1073741824]"},
                {"blk.0.ffn_down.weight.lb_meta", 0, 4, 160, "lb_gidx' is I32 with 172 elements"},
                {"blk.0.ffn_down.weight.lb_meta", 1, 4, -3, "group size is -3"},
                {"blk.0.ffn_down.weight.lb_meta", 2, 4, 999, "999 groups"},
                {"blk.0.ffn_down.weight.lb_meta", 3, 4, 8, "flags 8"},
                {"blk.0.ffn_down.weight.lb_gidx", 5, 4, 6, "g_idx[5] is 6"},
                {"blk.0.ffn_down.weight.lb_gidx", 7, 4, -1, "g_idx[7] is -1"},
                {"blk.1.attn_k.weight.lb_scale", 3, 4, 0x7fc00000, "not finite"},
            };
            for (size_t k = 0; gf && k < sizeof vals / sizeof vals[0]; k++) {
                const gguf_tensor_info *ti = NULL;
                for (int64_t i = 0; i < gf->n_tensors; i++)
                    if (strcmp(gf->tensors[i].name, vals[k].tensor) == 0)
                        ti = &gf->tensors[i];
                CHECK(ti != NULL, "%s is in the file", vals[k].tensor);
                if (!ti)
                    continue;
                FILE *f = fopen(out, "rb");
                fseek(f, 0, SEEK_END);
                long nbytes = ftell(f);
                fseek(f, 0, SEEK_SET);
                char *buf = malloc((size_t)nbytes);
                CHECK(fread(buf, 1, (size_t)nbytes, f) == (size_t)nbytes, "read");
                fclose(f);
                memcpy(buf + gf->data_offset + ti->offset + vals[k].index * vals[k].size,
                       &vals[k].value, (size_t)vals[k].size);
                f = fopen(bad, "wb");
                fwrite(buf, 1, (size_t)nbytes, f);
                fclose(f);
                free(buf);
                lb_model *x = load(bad, &err);
                CHECK(!x && strstr(err.msg, vals[k].want) && !strchr(err.msg, '\n'),
                      "%s[%lld] = %lld: %s", vals[k].tensor, (long long)vals[k].index,
                      (long long)vals[k].value, x ? "loaded" : err.msg);
                lb_model_free(x);
            }
            gguf_close(gf);
            unlink(bad);
        }
        lb_model_free(r);
        lb_model_free(q);
        unlink(out);
    }

    /* A save that cannot finish leaves nothing at the path. */
    char nodir[4200];
    snprintf(nodir, sizeof nodir, "%s/no-such-dir-%d/x.gguf", tmp, (int)getpid());
    CHECK(lb_model_save(base, nodir, &err) != 0 && !exists(nodir), "save into a missing dir");
    free(la);
    free(lb);
    free(ids);
    lb_model_free(base);
    return check_finish("test_quant_save");
}
