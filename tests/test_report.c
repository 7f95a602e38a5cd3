/* Reports from a results store this test fills through the store API: the figures in the
 * Markdown, HTML, CSV and JSON are recomputed here from the rows (Δ perplexity, speedup,
 * Pareto set, recommendations) and found in each output; the HTML renders in headless
 * chromium with its charts and tables and no console message; the PDF has the expected pages
 * (pdftoppm) and its chart pages are not blank; the CLI writes the same report. */
#include "check.h"
#include "pipeline/store.h"
#include "report/report.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NM = 4, NB = 2 };
static const char *const NAMES[NM] = {"baseline", "rtn-int8", "gptq-4bit", "awq-4bit"};
static const char *const KINDS[NM] = {"none", "rtn", "gptq", "awq"};
static const double BPW[NM] = {32.0, 8.5, 4.625, 4.625};
static const int64_t BYTES[NM] = {40000000, 10600000, 5800000, 5800000};
static const double PPL_WIKI[NM] = {10.0, 10.05, 10.6, 10.9};
static const double PPL_C4[NM] = {14.0, 14.08, 14.9, 15.3};
static const double KLD[NM] = {NAN, 0.0012, 0.021, 0.034};
static const double ACC[NM] = {0.281, 0.279, 0.270, 0.262};
static const int BATCH[NB] = {1, 4};
static const double LAT_MEAN[NM][NB] = {{100, 180}, {60, 110}, {40, 70}, {45, 75}};
static const double P50[NM][NB] = {{98, 178}, {59, 108}, {39, 69}, {44, 74}};
static const double TPS[NM][NB] = {{10, 30}, {16, 50}, {25, 80}, {22, 75}};
static const double RSS[NM] = {42e6, 13e6, 7.2e6, 7.6e6};

static json_t *row(const char *task, const char *metric, double v, double se, int batch)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:f}", "model", "m.gguf", "format", "F32", "task", task,
                          "metric", metric, "value", v, "n", (json_int_t)1000, "seconds", 0.25);
    json_object_set_new(r, "stderr", isfinite(se) ? json_real(se) : json_null());
    if (batch)
        json_object_set_new(r, "params", json_pack("{s:i}", "batch", batch));
    return r;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int64_t fill(const char *db)
{
    lb_store *s;
    lb_error err;
    CHECK(lb_store_open(db, &s, &err) == 0, "%s", err.msg);
    lb_machine mach;
    lb_machine_probe(&mach);
    const lb_run_info ri = {"configs/test.yaml", "model: m.gguf\nmethods: []\n", "h", "9.9.9", "out"};
    int64_t run;
    CHECK(lb_store_run_begin(s, &ri, &mach, &run, &err) == 0, "%s", err.msg);
    for (int i = 0; i < NM; i++) {
        int64_t mid, modid;
        CHECK(lb_store_method(s, run, NAMES[i], KINDS[i], i ? "{\"bits\":4}" : NULL, &mid, &err) == 0, "%s", err.msg);
        char path[64];
        snprintf(path, sizeof path, "models/%s.gguf", NAMES[i]);
        CHECK(lb_store_model(s, run, mid, path, i ? KINDS[i] : "baseline", BYTES[i], BPW[i], &modid, &err) == 0,
              "%s", err.msg);
        json_t *a = json_array();
        json_array_append_new(a, row("wikitext2", "perplexity", PPL_WIKI[i], 0.05, 0));
        json_array_append_new(a, row("c4", "perplexity", PPL_C4[i], 0.07, 0));
        if (i) {
            json_array_append_new(a, row("wikitext2", "kld_mean", KLD[i], 0.0001, 0));
            json_array_append_new(a, row("wikitext2", "kld_p99", KLD[i] * 9, NAN, 0));
            json_array_append_new(a, row("wikitext2", "same_top_pct", 99.0 - 10 * i, 0.1, 0));
        }
        json_array_append_new(a, row("hellaswag", "acc_norm", ACC[i], 0.014, 0));
        for (int b = 0; b < NB; b++) {
            json_array_append_new(a, row("bench", "latency_mean_ms", LAT_MEAN[i][b], NAN, BATCH[b]));
            json_array_append_new(a, row("bench", "latency_p50_ms", P50[i][b], NAN, BATCH[b]));
            json_array_append_new(a, row("bench", "latency_p95_ms", P50[i][b] * 1.1, NAN, BATCH[b]));
            json_array_append_new(a, row("bench", "latency_p99_ms", P50[i][b] * 1.2, NAN, BATCH[b]));
            json_array_append_new(a, row("bench", "decode_tokens_per_s", TPS[i][b], NAN, BATCH[b]));
            json_array_append_new(a, row("bench", "peak_rss_bytes", RSS[i] * (b ? 1 : 0.9), NAN, BATCH[b]));
        }
        char key[32];
        snprintf(key, sizeof key, "stage-%d", i);
        CHECK(lb_store_results(s, run, mid, modid, key, a, &err) == 0, "%s", err.msg);
        json_decref(a);
    }
    CHECK(lb_store_run_end(s, run, "finished", &err) == 0, "%s", err.msg);
    lb_store_close(s);
    return run;
}

/* The CSV cell of method `name` under column `head`. */
static double csv_cell(const char *csv, const char *name, const char *head)
{
    char *copy = strdup(csv), *save = NULL;
    int col = -1;
    double v = NAN;
    char *line = strtok_r(copy, "\n", &save);
    char *fs, *f = strtok_r(line, ",", &fs);
    for (int c = 0; f; c++, f = strtok_r(NULL, ",", &fs))
        if (strcmp(f, head) == 0)
            col = c;
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (strncmp(line, name, strlen(name)) || line[strlen(name)] != ',')
            continue;
        /* strsep keeps empty fields. */
        char *p = line;
        for (int c = 0; p; c++) {
            char *tok = strsep(&p, ",");
            if (c == col)
                v = *tok ? strtod(tok, NULL) : NAN;
        }
    }
    free(copy);
    return v;
}

static json_t *json_method(json_t *root, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(root, "methods"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return m;
    return NULL;
}

static const char *json_pick(json_t *root, const char *prefix)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(root, "recommendations"), i, r)
        if (strncmp(json_string_value(json_object_get(r, "use_case")), prefix, strlen(prefix)) == 0)
            return json_string_value(json_object_get(r, "pick"));
    return "";
}

static void check_figures(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = slurp(path);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = slurp(path);
    snprintf(path, sizeof path, "%s/report.csv", dir);
    char *csv = slurp(path);
    snprintf(path, sizeof path, "%s/report.json", dir);
    json_error_t je;
    json_t *js = json_load_file(path, 0, &je);
    CHECK(md && html && csv && js, "all four written (json: %s)", je.text);
    if (!md || !html || !csv || !js)
        return;
    for (int i = 1; i < NM; i++) {
        /* Recomputed from the rows this test stored. */
        double dppl = PPL_WIKI[i] - PPL_WIKI[0];
        double pct = 100 * dppl / PPL_WIKI[0];
        double sp1 = LAT_MEAN[0][0] / LAT_MEAN[i][0], sp4 = LAT_MEAN[0][1] / LAT_MEAN[i][1];
        char s_d[32], s_p[32], s_s1[32], s_s4[32];
        snprintf(s_d, sizeof s_d, "%+.4f", dppl);
        snprintf(s_p, sizeof s_p, "%+.2f%%", pct);
        snprintf(s_s1, sizeof s_s1, "%.2fx", sp1);
        snprintf(s_s4, sizeof s_s4, "%.2fx", sp4);
        const char *outs[2] = {md, html}, *names[2] = {"md", "html"};
        for (int o = 0; o < 2; o++) {
            CHECK(strstr(outs[o], s_d), "%s: Δ ppl %s of %s", names[o], s_d, NAMES[i]);
            CHECK(strstr(outs[o], s_p), "%s: Δ ppl %% %s of %s", names[o], s_p, NAMES[i]);
            CHECK(strstr(outs[o], s_s1), "%s: speedup b1 %s of %s", names[o], s_s1, NAMES[i]);
            CHECK(strstr(outs[o], s_s4), "%s: speedup b4 %s of %s", names[o], s_s4, NAMES[i]);
        }
        CHECK(fabs(csv_cell(csv, NAMES[i], "Δ ppl") - dppl) < 1e-9, "csv Δ ppl of %s: %g vs %g", NAMES[i],
              csv_cell(csv, NAMES[i], "Δ ppl"), dppl);
        CHECK(fabs(csv_cell(csv, NAMES[i], "b1 speedup") - sp1) < 1e-8, "csv speedup of %s", NAMES[i]);
        CHECK(fabs(csv_cell(csv, NAMES[i], "b4 tok/s") - TPS[i][1]) < 1e-9, "csv tok/s of %s", NAMES[i]);
        CHECK(fabs(csv_cell(csv, NAMES[i], "KLD") - KLD[i]) < 1e-12, "csv KLD of %s", NAMES[i]);
        CHECK(fabs(csv_cell(csv, NAMES[i], "peak memory") - RSS[i]) < 1e-3, "csv memory of %s (largest batch's)", NAMES[i]);
        json_t *m = json_method(js, NAMES[i]);
        CHECK(m && fabs(json_real_value(json_object_get(m, "delta_ppl")) - dppl) < 1e-9, "json Δ ppl of %s", NAMES[i]);
        json_t *b1 = json_array_get(json_object_get(m, "bench"), 0);
        CHECK(fabs(json_real_value(json_object_get(b1, "speedup")) - sp1) < 1e-9, "json speedup of %s", NAMES[i]);
        CHECK(fabs(json_real_value(json_object_get(json_object_get(json_object_get(m, "perplexity"), "c4"), "value")) -
                   PPL_C4[i]) < 1e-12, "json c4 of %s", NAMES[i]);
    }
    CHECK(!strstr(md, "kld_p99"), "KLD percentiles are not task columns");
    CHECK(strstr(md, "hellaswag acc_norm") && strstr(md, "0.2790 ± 0.0140"), "task accuracy with its stderr");
    /* Pareto on (wikitext2 perplexity, bits per weight): awq-4bit is dominated by gptq-4bit. */
    const bool front[NM] = {true, true, true, false};
    for (int i = 0; i < NM; i++) {
        json_t *m = json_method(js, NAMES[i]);
        CHECK(json_is_true(json_object_get(m, "pareto")) == front[i], "pareto flag of %s", NAMES[i]);
    }
    CHECK(strcmp(json_pick(js, "Pareto"), "baseline, rtn-int8, gptq-4bit") == 0, "pareto set %s", json_pick(js, "Pareto"));
    /* Within +5%: baseline (0%) and rtn-int8 (+0.5%); the smaller peak memory is rtn-int8's. */
    CHECK(strcmp(json_pick(js, "Smallest memory"), "rtn-int8") == 0, "smallest memory: %s", json_pick(js, "Smallest memory"));
    CHECK(strcmp(json_pick(js, "Lowest latency"), "gptq-4bit") == 0, "lowest latency: %s", json_pick(js, "Lowest latency"));
    CHECK(strcmp(json_pick(js, "Highest accuracy"), "rtn-int8") == 0, "accuracy: %s", json_pick(js, "Highest accuracy"));
    CHECK(strcmp(json_pick(js, "Best throughput"), "gptq-4bit") == 0, "throughput: %s", json_pick(js, "Best throughput"));
    CHECK(strstr(md, "Best throughput at the largest batch: gptq-4bit.** It generates the most tokens per second at batch 4, 80.0 tok/s."),
          "recommendation with its reason in the md");
    /* The summary's headline: the smallest model within the budget, its size ratio and speedup. */
    char head[256];
    snprintf(head, sizeof head, "rtn-int8 keeps perplexity within 5%% (%+.4f, %+.2f%%) at %.2fx smaller size and %.2fx",
             PPL_WIKI[1] - PPL_WIKI[0], 100 * (PPL_WIKI[1] - PPL_WIKI[0]) / PPL_WIKI[0],
             (double)BYTES[0] / (double)BYTES[1], LAT_MEAN[0][0] / LAT_MEAN[1][0]);
    CHECK(strstr(md, head) && strstr(html, head), "summary: %s", head);
    CHECK(strstr(md, "## Executive summary") < strstr(md, "## Comparison"), "summary on top");
    CHECK(strstr(md, "lowbit 9.9.9") && strstr(md, "model: m.gguf\nmethods: []"), "version and config at the bottom");
    CHECK(strstr(html, "lowbit 9.9.9") && strstr(html, "<meta name=\"viewport\""), "html footer and viewport");
    /* The only URLs are XML namespaces, which load nothing. */
    CHECK(!strstr(html, "src=") && !strstr(html, "<link") && !strstr(html, "@import") &&
          !strstr(html, "href=\"http") && !strstr(html, "url(http"), "html is self-contained (nothing to load)");
    CHECK(count(html, "<svg") == 5 && count(html, "<table") == 2, "html: 5 svg, 2 tables");
    CHECK(count(md, "](chart-") == 5, "md links 5 charts");
    free(md);
    free(html);
    free(csv);
    json_decref(js);
}

static void check_files(const char *dir)
{
    for (int i = 1; i <= 5; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/chart-%d.png", dir, i);
        FILE *f = fopen(path, "rb");
        unsigned char sig[8] = {0};
        long size = 0;
        if (f) {
            CHECK(fread(sig, 1, 8, f) == 8, "read %s", path);
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            fclose(f);
        }
        CHECK(memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0 && size > 8000, "%s is a PNG with a chart (%ld bytes)", path, size);
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        CHECK(!strstr(e->d_name, ".tmp"), "no temporary file left: %s", e->d_name);
    if (d)
        closedir(d);
}

static void check_browser(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 "
             "--window-size=390,844 --dump-dom 'file://%s/report.html' > '%s/dom.html' 2> '%s/chrome.log'",
             dir, dir, dir);
    CHECK(system(cmd) == 0, "chromium ran: %s", cmd);
    char path[1100];
    snprintf(path, sizeof path, "%s/dom.html", dir);
    char *dom = slurp(path);
    snprintf(path, sizeof path, "%s/chrome.log", dir);
    char *log = slurp(path);
    CHECK(dom && log, "chromium output");
    if (dom && log) {
        CHECK(strstr(dom, "data-ready=\"1\""), "the page's script ran to its end");
        CHECK(count(dom, "<svg") == 5, "5 charts in the rendered DOM");
        CHECK(count(dom, "<table") == 2 && strstr(dom, "<td data-v=\"10.05\">10.0500</td>"), "tables in the DOM");
        const char *c = strstr(log, ":CONSOLE");
        CHECK(!c, "no console message: %.200s", c ? c : "");
    }
    free(dom);
    free(log);

    /* Sorting, in the browser: the performance table by batch-1 p50 latency, ascending. */
    snprintf(cmd, sizeof cmd,
             "timeout 120 chromium --headless --no-sandbox --disable-gpu --dump-dom "
             "'file://%s/report.html#sort-2-2' > '%s/sorted.html' 2>/dev/null", dir, dir);
    CHECK(system(cmd) == 0, "chromium ran: %s", cmd);
    snprintf(path, sizeof path, "%s/sorted.html", dir);
    dom = slurp(path);
    const char *t = dom ? strstr(dom, "id=\"table-2\"") : NULL;
    CHECK(t, "sorted table in the DOM");
    if (t) {
        /* P50 at batch 1: gptq 39 < awq 44 < rtn 59 < baseline 98. */
        const char *order[NM] = {"gptq-4bit", "awq-4bit", "rtn-int8", "baseline"};
        const char *prev = t;
        for (int i = 0; i < NM; i++) {
            char cell[64];
            snprintf(cell, sizeof cell, "<td>%s</td>", order[i]);
            const char *at = strstr(t, cell);
            CHECK(at && at > prev, "row %d after sorting is %s", i, order[i]);
            if (at)
                prev = at;
        }
    }
    free(dom);
}

/* Fraction of pixels darker than light grey in a binary PGM. */
static double ink(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int w, h, max;
    if (fscanf(f, "P5 %d %d %d", &w, &h, &max) != 3 || fgetc(f) == EOF || w <= 0 || h <= 0) {
        fclose(f);
        return -1;
    }
    size_t n = (size_t)w * (size_t)h, dark = 0;
    for (size_t i = 0; i < n; i++) {
        int c = fgetc(f);
        if (c == EOF)
            break;
        dark += c < 200;
    }
    fclose(f);
    return (double)dark / (double)n;
}

static void check_pdf(const char *dir)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "pdftoppm -r 30 -gray '%s/report.pdf' '%s/page'", dir, dir);
    CHECK(system(cmd) == 0, "pdftoppm ran");
    /* Summary, five charts, tables, config: eight pages, each with something on it. */
    int pages = 0;
    for (int p = 1; p <= 20; p++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/page-%d.pgm", dir, p);
        if (access(path, F_OK))
            snprintf(path, sizeof path, "%s/page-%02d.pgm", dir, p);
        double k = ink(path);
        if (k < 0)
            break;
        pages++;
        bool chart = p >= 2 && p <= 6;
        CHECK(k > (chart ? 0.005 : 0.001), "page %d is not blank (%.4f of it inked)", p, k);
    }
    CHECK(pages == 8, "%d pages, expected 8", pages);
}

static void check_cli(const char *db, const char *dir, const char *first)
{
    const char *bin = test_env("LOWBIT_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --run 1 --format json,csv -o '%s' 2>/dev/null", bin, db, dir);
    CHECK(system(cmd) == 0, "lowbit report ran");
    char a[1100], b[1100];
    const char *files[2] = {"report.json", "report.csv"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", first, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        char *x = slurp(a), *y = slurp(b);
        CHECK(x && y && strcmp(x, y) == 0, "the CLI writes the same %s", files[i]);
        free(x);
        free(y);
    }
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --format docx -o '%s' 2>/dev/null", bin, db, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "a bad --format is refused");
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --run 5 -o '%s' 2>/dev/null", bin, db, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "a missing run is refused");
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s/none.db' -o '%s' 2>/dev/null", bin, dir, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1, "a missing database is refused");
}

int main(void)
{
    const char *tmp = getenv("LOWBIT_TMP") ? getenv("LOWBIT_TMP") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lowbit-report-XXXXXX", tmp);
    if (!mkdtemp(dir))
        return 1;
    char db[600], out[600], out2[600];
    snprintf(db, sizeof db, "%s/results.db", dir);
    snprintf(out, sizeof out, "%s/report", dir);
    snprintf(out2, sizeof out2, "%s/report-cli", dir);
    int64_t run = fill(db);
    lb_store *s;
    lb_error err;
    lb_store_run r;
    CHECK(lb_store_open(db, &s, &err) == 0, "%s", err.msg);
    CHECK(lb_store_load_run(s, run, &r, &err) == 0, "%s", err.msg);
    unsigned mask;
    CHECK(lb_report_parse_formats("md,html,pdf,csv,json", &mask, &err) == 0 && mask == 31, "formats");
    CHECK(lb_report_parse_formats("md,xls", &mask, &err) == -1 && strstr(err.msg, "\"xls\""), "%s", err.msg);
    CHECK(lb_report_write(&r, out, mask, &err) == 0, "%s", err.msg);
    lb_store_run_free(&r);
    lb_store_close(s);
    check_figures(out);
    check_files(out);
    check_browser(out);
    check_pdf(out);
    check_cli(db, out2, out);
    if (check_failures == 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else
        fprintf(stderr, "outputs kept in %s\n", dir);
    return check_finish("test_report");
}
