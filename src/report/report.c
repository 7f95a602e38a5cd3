/* The report writers: Markdown (with PNG charts beside it), self-contained HTML (inline SVG,
 * sortable tables, readable on a phone), CSV (the comparison table, full precision), JSON (the
 * figures, recommendations and raw rows) and PDF (charts.c). */
#include "report/report.h"

#include "core/file.h"
#include "report/internal.h"

#include <cairo.h>
#include <errno.h>
#include <jansson.h>
#include <pango/pangocairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int lb_report_parse_formats(const char *list, unsigned *mask, lb_error *err)
{
    static const char *const names[] = {"md", "html", "pdf", "csv", "json"};
    unsigned got = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        bool ok = false;
        for (int i = 0; i < 5; i++)
            if (strlen(names[i]) == n && strncmp(p, names[i], n) == 0) {
                got |= 1u << i;
                ok = true;
            }
        if (!ok)
            return lb_fail(err, "--format: \"%.*s\" is not one of md, html, pdf, csv, json", (int)n, p);
        p += n;
        if (*p == ',')
            p++;
    }
    if (!got)
        return lb_fail(err, "--format: expected one or more of md, html, pdf, csv, json");
    *mask = got;
    return 0;
}

static void html_esc(lb_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': lb_buf_appendf(b, "&lt;"); break;
        case '>': lb_buf_appendf(b, "&gt;"); break;
        case '&': lb_buf_appendf(b, "&amp;"); break;
        case '"': lb_buf_appendf(b, "&quot;"); break;
        default: lb_buf_append(b, s, 1);
        }
    }
}

static void md_esc(lb_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            lb_buf_appendf(b, "\\|");
        else
            lb_buf_append(b, s, 1);
    }
}

static int write_buf(const char *path, lb_buf *b, lb_error *err)
{
    lb_atomic_file f;
    if (lb_atomic_open(&f, path, err))
        return -1;
    if (b->n && fwrite(b->v, 1, b->n, f.fp) != b->n) {
        lb_atomic_abort(&f);
        return lb_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    return lb_atomic_commit(&f, err);
}

static void footer_text(const rp_data *d, lb_buf *b)
{
    const lb_store_run *r = d->run;
    lb_buf_appendf(b, "run %lld, started %s, finished %s, status %s; lowbit %s; machine: %s, %d cores, "
                   "%.1f GiB memory", (long long)r->id, r->started, r->finished[0] ? r->finished : "-",
                   r->status, r->version, r->machine.cpu, r->machine.cores,
                   (double)r->machine.mem_bytes / (1 << 30));
}

/* ---- Markdown ---- */

static void md_table(lb_buf *b, const rp_table *t)
{
    lb_buf_appendf(b, "### %s\n\n|", t->title);
    for (int c = 0; c < t->n_cols; c++) {
        md_esc(b, t->cols[c].head);
        lb_buf_appendf(b, "|");
    }
    lb_buf_appendf(b, "\n|");
    for (int c = 0; c < t->n_cols; c++)
        lb_buf_appendf(b, c < 2 ? "---|" : "---:|");
    lb_buf_appendf(b, "\n");
    for (int r = 0; r < t->rows; r++) {
        lb_buf_appendf(b, "|");
        for (int c = 0; c < t->n_cols; c++) {
            md_esc(b, t->cols[c].cells[r]);
            lb_buf_appendf(b, "|");
        }
        lb_buf_appendf(b, "\n");
    }
    lb_buf_appendf(b, "\n");
}

static int write_md(const rp_data *d, const char *dir, lb_error *err)
{
    lb_buf b = {0};
    lb_buf_appendf(&b, "# lowbit report — run %lld\n\n## Executive summary\n\n%s\n\n## Recommendations\n\n",
                   (long long)d->run->id, d->summary);
    for (int i = 0; i < d->nrec; i++)
        lb_buf_appendf(&b, "- **%s: %s.** %s\n", d->rec_case[i], d->rec_pick[i], d->rec_why[i]);
    lb_buf_appendf(&b, "\n## Comparison\n\n");
    for (int t = 0; t < 2; t++)
        md_table(&b, &d->tables[t]);
    lb_buf_appendf(&b, "## Charts\n\n");
    int rc = 0;
    for (int i = 0; i < RP_N_CHARTS && !rc; i++) {
        char name[32];
        snprintf(name, sizeof name, "chart-%d.png", i + 1);
        char *path = lb_path_join(dir, name);
        rc = rp_chart_png(d, i, path, err);
        free(path);
        lb_buf_appendf(&b, "![%s](%s)\n\n", rp_chart_title(i), name);
    }
    lb_buf_appendf(&b, "## Run, machine and config\n\n");
    footer_text(d, &b);
    lb_buf_appendf(&b, "\n\nConfig `%s`:\n\n```yaml\n%s%s```\n", d->run->config_path, d->run->config_text,
                   d->run->config_text[0] && d->run->config_text[strlen(d->run->config_text) - 1] != '\n' ? "\n" : "");
    if (!rc) {
        char *path = lb_path_join(dir, "report.md");
        rc = write_buf(path, &b, err);
        free(path);
    }
    lb_buf_free(&b);
    return rc;
}

/* ---- HTML ---- */

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;"
    "padding:12px;color:#222;line-height:1.45}"
    "h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    ".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}"
    "table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.2em}"
    "th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3;cursor:pointer;user-select:none}th:after{content:' \\2195';color:#aaa}"
    "td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}"
    "tr.pareto td:first-child{font-weight:bold}"
    "figure{margin:1em 0}figure svg{width:100%;height:auto;max-width:900px}"
    "pre{background:#f6f6f6;padding:8px;overflow-x:auto}"
    ".rec{margin:.3em 0}footer{font-size:.85em;color:#555;margin-top:2em}";

/* Sorts by the cell's data-v number when both have one, else by text; click again reverses. */
static const char JS[] =
    "document.querySelectorAll('table.sortable').forEach(function(t){"
    "t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){"
    "var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.dataset.dir!=='asc';"
    "th.dataset.dir=asc?'asc':'desc';"
    "rows.sort(function(x,y){var a=x.cells[i],c=y.cells[i],"
    "na=parseFloat(a.dataset.v),nc=parseFloat(c.dataset.v),r;"
    "if(!isNaN(na)&&!isNaN(nc))r=na-nc;else if(!isNaN(na))r=-1;else if(!isNaN(nc))r=1;"
    "else r=a.textContent.localeCompare(c.textContent);return asc?r:-r;});"
    "rows.forEach(function(r){b.appendChild(r);});});});});"
    /* report.html#sort-T-C opens with table T sorted by column C (links to a sorted view). */
    "var m=/^#sort-(\\d+)-(\\d+)$/.exec(location.hash);"
    "if(m){var h=document.querySelectorAll('#table-'+m[1]+' th')[+m[2]];if(h)h.click();}"
    "document.body.setAttribute('data-ready','1');";

static void html_table(lb_buf *b, const rp_data *d, const rp_table *t, int index)
{
    lb_buf_appendf(b, "<h3>%s</h3>\n<div class=\"scroll\"><table class=\"sortable\" id=\"table-%d\"><thead><tr>",
                   t->title, index);
    for (int c = 0; c < t->n_cols; c++) {
        lb_buf_appendf(b, "<th>");
        html_esc(b, t->cols[c].head);
        lb_buf_appendf(b, "</th>");
    }
    lb_buf_appendf(b, "</tr></thead><tbody>\n");
    for (int r = 0; r < t->rows; r++) {
        lb_buf_appendf(b, "<tr%s>", d->pareto[r] ? " class=\"pareto\"" : "");
        for (int c = 0; c < t->n_cols; c++) {
            if (isfinite(t->cols[c].num[r]))
                lb_buf_appendf(b, "<td data-v=\"%.10g\">", t->cols[c].num[r]);
            else
                lb_buf_appendf(b, "<td>");
            html_esc(b, t->cols[c].cells[r]);
            lb_buf_appendf(b, "</td>");
        }
        lb_buf_appendf(b, "</tr>\n");
    }
    lb_buf_appendf(b, "</tbody></table></div>\n");
}

static int write_html(const rp_data *d, const char *dir, lb_error *err)
{
    lb_buf b = {0};
    lb_buf_appendf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                   "<title>lowbit report — run %lld</title><style>%s</style></head><body>\n",
                   (long long)d->run->id, CSS);
    lb_buf_appendf(&b, "<h1>lowbit report — run %lld</h1>\n<h2>Executive summary</h2>\n<p id=\"summary\">",
                   (long long)d->run->id);
    html_esc(&b, d->summary);
    lb_buf_appendf(&b, "</p>\n<h2>Recommendations</h2>\n<ul id=\"recommendations\">\n");
    for (int i = 0; i < d->nrec; i++) {
        lb_buf_appendf(&b, "<li class=\"rec\"><b>");
        html_esc(&b, d->rec_case[i]);
        lb_buf_appendf(&b, ": ");
        html_esc(&b, d->rec_pick[i]);
        lb_buf_appendf(&b, ".</b> ");
        html_esc(&b, d->rec_why[i]);
        lb_buf_appendf(&b, "</li>\n");
    }
    lb_buf_appendf(&b, "</ul>\n<h2>Comparison</h2>\n<p>Click a column heading to sort. "
                   "Bold methods are on the Pareto front (perplexity vs bits per weight).</p>\n");
    for (int t = 0; t < 2; t++)
        html_table(&b, d, &d->tables[t], t + 1);
    lb_buf_appendf(&b, "<h2>Charts</h2>\n");
    for (int i = 0; i < RP_N_CHARTS; i++) {
        lb_buf_appendf(&b, "<figure class=\"chart\" id=\"chart-%d\">", i + 1);
        rp_chart_svg(d, i, &b);
        lb_buf_appendf(&b, "<figcaption>%s</figcaption></figure>\n", rp_chart_title(i));
    }
    lb_buf_appendf(&b, "<h2>Run, machine and config</h2>\n<footer><p id=\"machine\">");
    lb_buf foot = {0};
    footer_text(d, &foot);
    html_esc(&b, lb_buf_cstr(&foot));
    lb_buf_free(&foot);
    lb_buf_appendf(&b, "</p><p>Config <code>");
    html_esc(&b, d->run->config_path);
    lb_buf_appendf(&b, "</code>:</p><pre id=\"config\">");
    html_esc(&b, d->run->config_text);
    lb_buf_appendf(&b, "</pre></footer>\n<script>%s</script>\n</body></html>\n", JS);
    char *path = lb_path_join(dir, "report.html");
    int rc = write_buf(path, &b, err);
    free(path);
    lb_buf_free(&b);
    return rc;
}

/* ---- CSV ---- */

static void csv_field(lb_buf *b, const char *s)
{
    if (strpbrk(s, ",\"\n")) {
        lb_buf_appendf(b, "\"");
        for (; *s; s++)
            lb_buf_appendf(b, *s == '"' ? "\"\"" : "%c", *s);
        lb_buf_appendf(b, "\"");
    } else
        lb_buf_appendf(b, "%s", s);
}

static int write_csv(const rp_data *d, const char *dir, lb_error *err)
{
    lb_buf b = {0};
    /* One row per method: the accuracy columns, then the performance ones after method/format. */
    for (int t = 0; t < 2; t++)
        for (int c = t ? 2 : 0; c < d->tables[t].n_cols; c++) {
            if (t || c)
                lb_buf_appendf(&b, ",");
            csv_field(&b, d->tables[t].cols[c].head);
        }
    lb_buf_appendf(&b, "\n");
    for (int r = 0; r < d->nm; r++) {
        for (int t = 0; t < 2; t++)
            for (int c = t ? 2 : 0; c < d->tables[t].n_cols; c++) {
                const rp_col *col = &d->tables[t].cols[c];
                if (t || c)
                    lb_buf_appendf(&b, ",");
                if (c < 2)
                    csv_field(&b, col->cells[r]);
                else if (isfinite(col->num[r]))
                    lb_buf_appendf(&b, "%.10g", col->num[r]);
            }
        lb_buf_appendf(&b, "\n");
    }
    char *path = lb_path_join(dir, "report.csv");
    int rc = write_buf(path, &b, err);
    free(path);
    lb_buf_free(&b);
    return rc;
}

/* ---- JSON ---- */

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int write_json(const rp_data *d, const char *dir, lb_error *err)
{
    const lb_store_run *r = d->run;
    json_t *root = json_object();
    json_object_set_new(root, "run", json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)r->id,
                                               "started", r->started, "finished", r->finished, "status", r->status,
                                               "version", r->version, "config_path", r->config_path,
                                               "config", r->config_text));
    json_object_set_new(root, "machine", json_pack("{s:s, s:i, s:I}", "cpu", r->machine.cpu, "cores",
                                                   r->machine.cores, "memory_bytes", (json_int_t)r->machine.mem_bytes));
    json_object_set_new(root, "summary", json_string(d->summary));
    json_t *methods = json_array();
    for (int i = 0; i < d->nm; i++) {
        const lb_store_method_row *m = d->m[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:b}", "name", m->name, "method", m->method,
                              "format", m->format, "model", m->model_path, "model_bytes", num(d->bytes[i]),
                              "bits_per_weight", num(d->bpw[i]), "pareto", d->pareto[i]);
        json_t *opts = m->options[0] ? json_loads(m->options, 0, NULL) : NULL;
        if (opts)
            json_object_set_new(o, "options", opts);
        json_t *ppl = json_object();
        for (int k = 0; k < d->nds; k++)
            json_object_set_new(ppl, d->ds[k], json_pack("{s:o, s:o}", "value", num(d->ppl[i * d->nds + k]),
                                                          "stderr", num(d->ppl_se[i * d->nds + k])));
        json_object_set_new(o, "perplexity", ppl);
        json_object_set_new(o, "delta_ppl", num(d->dppl[i]));
        json_object_set_new(o, "delta_ppl_pct", num(d->dppl_pct[i]));
        json_object_set_new(o, "kld", num(d->kld[i]));
        json_object_set_new(o, "top1_agreement", num(d->top1[i]));
        json_t *tasks = json_object();
        for (int t = 0; t < d->ntm; t++)
            json_object_set_new(tasks, d->tm[t], json_pack("{s:o, s:o}", "value", num(d->tmv[i * d->ntm + t]),
                                                            "stderr", num(d->tmse[i * d->ntm + t])));
        json_object_set_new(o, "tasks", tasks);
        json_t *bench = json_array();
        for (int b = 0; b < d->nb; b++) {
            int j = i * d->nb + b;
            json_array_append_new(bench, json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "batch", d->batch[b],
                                                   "latency_p50_ms", num(d->p50[j]), "latency_p95_ms", num(d->p95[j]),
                                                   "latency_p99_ms", num(d->p99[j]), "tokens_per_s", num(d->tps[j]),
                                                   "speedup", num(d->speedup[j])));
        }
        json_object_set_new(o, "bench", bench);
        json_object_set_new(o, "peak_memory_bytes", num(d->mem[i]));
        json_array_append_new(methods, o);
    }
    json_object_set_new(root, "methods", methods);
    json_t *recs = json_array();
    for (int i = 0; i < d->nrec; i++)
        json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "use_case", d->rec_case[i], "pick",
                                              d->rec_pick[i], "reason", d->rec_why[i]));
    json_object_set_new(root, "recommendations", recs);
    json_t *rows = json_array();
    for (int i = 0; i < r->n_results; i++) {
        const lb_store_result_row *x = &r->results[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:o}", "method", x->m ? x->m->name : "",
                              "model", x->model, "format", x->format, "task", x->task, "metric", x->metric,
                              "value", num(x->value), "stderr", num(x->stderr_), "n", (json_int_t)x->n,
                              "seconds", num(x->seconds));
        json_t *p = x->params[0] ? json_loads(x->params, 0, NULL) : NULL;
        json_object_set_new(o, "params", p ? p : json_object());
        json_array_append_new(rows, o);
    }
    json_object_set_new(root, "results", rows);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    lb_buf b = {0};
    lb_buf_appendf(&b, "%s\n", text);
    free(text);
    char *path = lb_path_join(dir, "report.json");
    int rc = write_buf(path, &b, err);
    free(path);
    lb_buf_free(&b);
    return rc;
}

static int mkdir_p(const char *path, lb_error *err)
{
    char *p = lb_strdup(path);
    for (char *q = p + 1;; q++) {
        if (*q == '/' || !*q) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0777) && errno != EEXIST) {
                int rc = lb_fail(err, "%s: cannot create the directory: %s", p, strerror(errno));
                free(p);
                return rc;
            }
            *q = c;
            if (!c)
                break;
        }
    }
    free(p);
    if (!lb_is_dir(path))
        return lb_fail(err, "%s: not a directory", path);
    return 0;
}

int lb_report_write(const lb_store_run *run, const char *dir, unsigned formats, lb_error *err)
{
    if (mkdir_p(dir, err))
        return -1;
    rp_data d;
    rp_data_build(&d, run);
    int rc = 0;
    if (!rc && (formats & LB_REPORT_MD)) rc = write_md(&d, dir, err);
    if (!rc && (formats & LB_REPORT_HTML)) rc = write_html(&d, dir, err);
    if (!rc && (formats & LB_REPORT_CSV)) rc = write_csv(&d, dir, err);
    if (!rc && (formats & LB_REPORT_JSON)) rc = write_json(&d, dir, err);
    if (!rc && (formats & LB_REPORT_PDF)) {
        char *path = lb_path_join(dir, "report.pdf");
        rc = rp_write_pdf(&d, path, err);
        free(path);
    }
    rp_data_free(&d);
    /* The font map pango made for this thread goes with the report. */
    pango_cairo_font_map_set_default(NULL);
    return rc;
}
