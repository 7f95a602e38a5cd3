/* What a loaded model keeps mapped: the rows of an embedding table of its own are read from
 * the file (lb_model_get_row), the same values as through the mapping but without making the
 * table's pages resident; norm weights are copied out of the mapping at load; the file
 * descriptor a mapping keeps for those reads is closed with the model, and by a load that
 * fails. Synthetic Llama models (lb_synth_write) with stories260K's vocabulary, a Q8_0 one
 * whose 512 × 2048 table covers 1.1 MB of the file, and an F32 one. */
#include "check.h"
#include "core/file.h"
#include "model/model.h"
#include "model/synth.h"

#include <dirent.h>
#include <string.h>
#include <unistd.h>

/* The process's resident memory, KiB (VmRSS of /proc/self/status): all of it, since a model
 * file on tmpfs is counted as shared memory rather than as file pages. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Loads that succeed and loads that fail past the mapping leave no descriptor behind. */
static void check_descriptors(const char *good, const char *tmp)
{
    char cut[4096];
    snprintf(cut, sizeof cut, "%s/test_resident.%d.cut.gguf", tmp, (int)getpid());
    FILE *in = fopen(good, "rb"), *out = fopen(cut, "wb");
    char buf[4096];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;   /* the header, none of the tensors */
    if (out)
        fwrite(buf, 1, n, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    int before = open_fds(), failed = 0;
    for (int i = 0; i < 20; i++) {
        lb_model *m = NULL;
        lb_error err;
        if (lb_model_load(good, NULL, &m, &err) == 0)
            lb_model_free(m);
        failed += lb_model_load(cut, NULL, &m, &err) != 0;
    }
    CHECK(failed == 20, "a truncated file loaded");
    CHECK(open_fds() == before, "20 loads and 20 failed loads left %d descriptors open",
          open_fds() - before);
    unlink(cut);
}

static bool in_a_map(const lb_model *m, const lb_tensor *t)
{
    for (int i = 0; i < m->n_maps; i++)
        if (lb_mapping_holds(&m->maps[i], t->data, t->nbytes))
            return true;
    return false;
}

static void check_model(const lb_tokenizer *tok, lb_type type, int dim, const char *path,
                        bool measure)
{
    lb_synth_preset pre = {"wide", "llama", dim, 64, 1, 16, 16, 64, 512, 10000.0f, 1e-5f, false};
    lb_synth_params sp = {.preset = &pre, .tok = tok, .type = type, .seed = 3, .n_threads = 1};
    lb_synth_result sr;
    lb_error err;
    lb_model *m = NULL;
    CHECK(lb_synth_write(&sp, path, &sr, &err) == 0, "synth: %s", err.msg);
    CHECK(lb_model_load(path, NULL, &m, &err) == 0, "load: %s", err.msg);
    if (!m)
        return;
    const lb_tensor *emb = m->tok_embd;
    const char *tn = lb_type_traits_of(type)->name;
    CHECK(emb != m->output && in_a_map(m, emb), "%s: the table is the file's own", tn);
    CHECK(!in_a_map(m, m->layers[0].attn_norm) && !in_a_map(m, m->out_norm),
          "%s: the norm weights are no longer read from the mapping", tn);

    int64_t rows = emb->ne[1], cols = emb->ne[0];
    float *got = malloc((size_t)(rows * cols) * sizeof(float));
    float *want = malloc((size_t)cols * sizeof(float));
    memset(got, 0xff, (size_t)(rows * cols) * sizeof(float));   /* its own pages in first */
    lb_model_get_row(m, emb, 0, got);   /* and the code it runs */
    long before = rss_kib();
    for (int64_t r = 0; r < rows; r++)
        lb_model_get_row(m, emb, r, got + r * cols);
    long read_growth = rss_kib() - before;

    before = rss_kib();
    int64_t differ = 0;
    for (int64_t r = 0; r < rows; r++) {
        lb_tensor_get_row(emb, r, want);
        differ += memcmp(want, got + r * cols, (size_t)cols * sizeof(float)) != 0;
    }
    long mapped_growth = rss_kib() - before;
    CHECK(differ == 0, "%s: %lld of %lld rows differ from the mapped rows", tn,
          (long long)differ, (long long)rows);
    if (measure) {
        /* Reading the whole table through the mapping makes all of it resident (the check
         * that this measurement can see pages come in); reading it from the file, none. */
        long table_kib = (long)(emb->nbytes / 1024);
        CHECK(mapped_growth > table_kib / 2, "the mapped table came in: %ld of %ld KiB",
              mapped_growth, table_kib);
        CHECK(read_growth < table_kib / 8, "rows read from the file left %ld KiB resident "
              "(the table is %ld KiB)", read_growth, table_kib);
        printf("whole %ld KiB table: %ld KiB resident after reading it from the file, %ld "
               "through the mapping\n", table_kib, read_growth, mapped_growth);
    }
    free(got);
    free(want);
    lb_model_free(m);
    unlink(path);
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char src[4096], path[4096];
    snprintf(src, sizeof src, "%s/models/stories260K.gguf", shared);
    snprintf(path, sizeof path, "%s/test_resident.%d.gguf", tmp, (int)getpid());
    lb_error err;
    lb_model *s260 = NULL;
    CHECK(lb_model_load(src, NULL, &s260, &err) == 0, "load stories260K: %s", err.msg);
    if (!s260)
        return check_finish("test_resident");
    check_descriptors(src, tmp);
    check_model(s260->tok, LB_TYPE_Q8_0, 2048, path, true);
    check_model(s260->tok, LB_TYPE_F32, 256, path, false);
    lb_model_free(s260);
    return check_finish("test_resident");
}
