/* Charts, drawn once with cairo (text with pango) onto whatever surface the format needs:
 * PNG images for Markdown, inline SVG for HTML, vector pages for the PDF. The PDF's text
 * pages (summary, tables, config) are drawn here too. */
#include "report/internal.h"

#include "core/file.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PALETTE[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
    {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81},
};
enum { N_COLORS = sizeof PALETTE / sizeof PALETTE[0] };

static void color(cairo_t *cr, int i, double alpha)
{
    const double *c = PALETTE[i % N_COLORS];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

/* align: 0 left, 1 centre, 2 right of x; y is the top of the text unless vcenter. */
static double text(cairo_t *cr, double x, double y, const char *s, double size, int align, bool bold,
                   bool vertical)
{
    PangoLayout *l = pango_cairo_create_layout(cr);
    char font[64];
    snprintf(font, sizeof font, "Sans %s%.1fpx", bold ? "Bold " : "", size);
    PangoFontDescription *fd = pango_font_description_from_string(font);
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    pango_layout_set_text(l, s, -1);
    int w, h;
    pango_layout_get_pixel_size(l, &w, &h);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical)
        cairo_rotate(cr, -M_PI / 2);
    double dx = align == 1 ? -w / 2.0 : align == 2 ? -w : 0;
    cairo_move_to(cr, dx, vertical ? -h / 2.0 : 0);
    pango_cairo_show_layout(cr, l);
    cairo_restore(cr);
    g_object_unref(l);
    return w;
}

typedef struct {
    double x0, y0, x1, y1;          /* plot area */
    double xmin, xmax, ymin, ymax;
} frame;

static double fx(const frame *f, double x) { return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0); }
static double fy(const frame *f, double y) { return f->y1 - (y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0); }

static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

/* Widens [lo, hi] a little and onto tick steps; a single value gets a range around it. */
static void pad_range(double *lo, double *hi, bool from_zero)
{
    if (!isfinite(*lo) || !isfinite(*hi)) { *lo = 0; *hi = 1; }
    if (from_zero && *lo > 0) *lo = 0;
    if (*hi - *lo < 1e-12) { double m = fabs(*hi) > 0 ? fabs(*hi) * 0.1 : 1; *lo -= m; *hi += m; }
    double pad = (*hi - *lo) * 0.08;
    if (!(from_zero && *lo == 0)) *lo -= pad;
    *hi += pad;
    double st = nice_step(*hi - *lo);
    *lo = floor(*lo / st) * st;
    *hi = ceil(*hi / st) * st;
}

static void frame_setup(cairo_t *cr, frame *f, double w, double h, const char *title,
                        const char *xlabel, const char *ylabel)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    f->x0 = 70; f->x1 = w - 20; f->y0 = 44; f->y1 = h - 52;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, w / 2, 10, title, 16, 1, true, false);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    text(cr, (f->x0 + f->x1) / 2, h - 22, xlabel, 12, 1, false, false);
    text(cr, 16, (f->y0 + f->y1) / 2, ylabel, 12, 1, false, true);
}

static void axes(cairo_t *cr, const frame *f, bool xticks)
{
    cairo_set_line_width(cr, 1);
    double st = nice_step(f->ymax - f->ymin);
    for (double y = ceil(f->ymin / st - 1e-9) * st; y <= f->ymax + 1e-9 * st; y += st) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, f->x0, fy(f, y));
        cairo_line_to(cr, f->x1, fy(f, y));
        cairo_stroke(cr);
        char s[32];
        snprintf(s, sizeof s, "%g", fabs(y) < st * 1e-6 ? 0 : y);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        text(cr, f->x0 - 6, fy(f, y) - 7, s, 11, 2, false, false);
    }
    if (xticks) {
        st = nice_step(f->xmax - f->xmin);
        for (double x = ceil(f->xmin / st - 1e-9) * st; x <= f->xmax + 1e-9 * st; x += st) {
            cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
            cairo_move_to(cr, fx(f, x), f->y0);
            cairo_line_to(cr, fx(f, x), f->y1);
            cairo_stroke(cr);
            char s[32];
            snprintf(s, sizeof s, "%g", fabs(x) < st * 1e-6 ? 0 : x);
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            text(cr, fx(f, x), f->y1 + 4, s, 11, 1, false, false);
        }
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    cairo_stroke(cr);
}

static void no_data(cairo_t *cr, double w, double h, const char *what)
{
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    text(cr, w / 2, h / 2 - 8, what, 13, 1, false, false);
}

static void legend(cairo_t *cr, const rp_data *d, const frame *f)
{
    double y = f->y0 + 6;
    for (int i = 0; i < d->nm; i++, y += 16) {
        color(cr, i, 1);
        cairo_rectangle(cr, f->x1 - 150, y + 3, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text(cr, f->x1 - 135, y, d->m[i]->name, 11, 0, false, false);
    }
}

static void dot(cairo_t *cr, double x, double y, double r, bool filled)
{
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    if (filled)
        cairo_fill(cr);
    else {
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
    }
}

const char *rp_chart_title(int i)
{
    static const char *const titles[RP_N_CHARTS] = {
        "Accuracy vs speedup", "Perplexity vs bits per weight", "Memory",
        "Latency percentiles per batch size", "Throughput vs batch size"};
    return i >= 0 && i < RP_N_CHARTS ? titles[i] : "";
}

/* Scatter of points (x[i], y[i]) labelled with the method names; `front` joins the Pareto set. */
static void scatter(cairo_t *cr, const rp_data *d, double w, double h, const double *x, int xs,
                    const double *y, int ys, const char *title, const char *xl, const char *yl, bool front)
{
    frame f;
    frame_setup(cr, &f, w, h, title, xl, yl);
    f.xmin = f.ymin = INFINITY;
    f.xmax = f.ymax = -INFINITY;
    int n = 0;
    for (int i = 0; i < d->nm; i++) {
        double xi = x[i * xs], yi = y[i * ys];
        if (!isfinite(xi) || !isfinite(yi))
            continue;
        n++;
        f.xmin = fmin(f.xmin, xi); f.xmax = fmax(f.xmax, xi);
        f.ymin = fmin(f.ymin, yi); f.ymax = fmax(f.ymax, yi);
    }
    if (!n) {
        no_data(cr, w, h, "no measurements for this chart");
        return;
    }
    pad_range(&f.xmin, &f.xmax, false);
    pad_range(&f.ymin, &f.ymax, false);
    axes(cr, &f, true);
    if (front) {
        /* The front in order of bits per weight. */
        int order[256], k = 0;
        for (int i = 0; i < d->nm && k < 256; i++)
            if (d->pareto[i] && isfinite(x[i * xs]) && isfinite(y[i * ys]))
                order[k++] = i;
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && x[order[b] * xs] < x[order[b - 1] * xs]; b--) {
                int t = order[b]; order[b] = order[b - 1]; order[b - 1] = t;
            }
        cairo_set_source_rgba(cr, 0.8, 0.1, 0.1, 0.8);
        cairo_set_line_width(cr, 2);
        double dash[] = {6, 4};
        cairo_set_dash(cr, dash, 2, 0);
        for (int a = 0; a < k; a++) {
            double px = fx(&f, x[order[a] * xs]), py = fy(&f, y[order[a] * ys]);
            if (a) cairo_line_to(cr, px, py); else cairo_move_to(cr, px, py);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        text(cr, f.x0 + 8, f.y0 + 6, "- - Pareto front (filled: on the front)", 11, 0, false, false);
    }
    for (int i = 0; i < d->nm; i++) {
        double xi = x[i * xs], yi = y[i * ys];
        if (!isfinite(xi) || !isfinite(yi))
            continue;
        color(cr, i, 1);
        dot(cr, fx(&f, xi), fy(&f, yi), 6, !front || d->pareto[i]);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text(cr, fx(&f, xi) + 9, fy(&f, yi) - 16, d->m[i]->name, 11, 0, false, false);
    }
}

static void bars_memory(cairo_t *cr, const rp_data *d, double w, double h)
{
    bool rss = false;
    for (int i = 0; i < d->nm; i++)
        rss |= isfinite(d->mem[i]);
    const double *v = rss ? d->mem : d->bytes;
    frame f;
    frame_setup(cr, &f, w, h, rss ? "Memory: peak resident set" : "Memory: model file size", "method", "MiB");
    f.xmin = 0; f.xmax = d->nm;
    f.ymin = 0; f.ymax = -INFINITY;
    for (int i = 0; i < d->nm; i++)
        if (isfinite(v[i])) f.ymax = fmax(f.ymax, v[i] / (1 << 20));
    if (!isfinite(f.ymax)) {
        no_data(cr, w, h, "no memory figures");
        return;
    }
    pad_range(&f.ymin, &f.ymax, true);
    axes(cr, &f, false);
    for (int i = 0; i < d->nm; i++) {
        double bx = fx(&f, i + 0.15), bw = fx(&f, i + 0.85) - bx;
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text(cr, bx + bw / 2, f.y1 + 4, d->m[i]->name, d->nm > 6 ? 9 : 11, 1, false, false);
        if (!isfinite(v[i]))
            continue;
        color(cr, i, 0.9);
        double top = fy(&f, v[i] / (1 << 20));
        cairo_rectangle(cr, bx, top, bw, f.y1 - top);
        cairo_fill(cr);
        char s[64];
        rp_fmt_bytes(s, sizeof s, v[i]);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, bx + bw / 2, top - 16, s, 10, 1, false, false);
    }
}

static void latency(cairo_t *cr, const rp_data *d, double w, double h)
{
    frame f;
    frame_setup(cr, &f, w, h, "Latency per request: p50 bar, p95 tick, p99 whisker", "batch size", "ms");
    f.xmin = 0; f.xmax = d->nb;
    f.ymin = 0; f.ymax = -INFINITY;
    for (int j = 0; j < d->nm * d->nb; j++) {
        if (isfinite(d->p99[j])) f.ymax = fmax(f.ymax, d->p99[j]);
        if (isfinite(d->p50[j])) f.ymax = fmax(f.ymax, d->p50[j]);
    }
    if (!d->nb || !isfinite(f.ymax)) {
        no_data(cr, w, h, "no latency figures");
        return;
    }
    pad_range(&f.ymin, &f.ymax, true);
    f.x1 -= 160;  /* room for the legend */
    axes(cr, &f, false);
    for (int b = 0; b < d->nb; b++) {
        char s[32];
        snprintf(s, sizeof s, "%d", d->batch[b]);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        text(cr, fx(&f, b + 0.5), f.y1 + 4, s, 11, 1, false, false);
        double slot = (fx(&f, b + 0.9) - fx(&f, b + 0.1)) / d->nm;
        for (int i = 0; i < d->nm; i++) {
            int j = i * d->nb + b;
            if (!isfinite(d->p50[j]))
                continue;
            double bx = fx(&f, b + 0.1) + i * slot, cx = bx + slot / 2;
            color(cr, i, 0.85);
            cairo_rectangle(cr, bx + slot * 0.1, fy(&f, d->p50[j]), slot * 0.8, f.y1 - fy(&f, d->p50[j]));
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            cairo_set_line_width(cr, 1.5);
            if (isfinite(d->p99[j])) {
                cairo_move_to(cr, cx, fy(&f, d->p50[j]));
                cairo_line_to(cr, cx, fy(&f, d->p99[j]));
                cairo_move_to(cr, cx - slot * 0.2, fy(&f, d->p99[j]));
                cairo_line_to(cr, cx + slot * 0.2, fy(&f, d->p99[j]));
            }
            if (isfinite(d->p95[j])) {
                cairo_move_to(cr, cx - slot * 0.35, fy(&f, d->p95[j]));
                cairo_line_to(cr, cx + slot * 0.35, fy(&f, d->p95[j]));
            }
            cairo_stroke(cr);
        }
    }
    f.x1 += 160;
    legend(cr, d, &f);
}

static void throughput(cairo_t *cr, const rp_data *d, double w, double h)
{
    frame f;
    frame_setup(cr, &f, w, h, "Throughput (decode tokens/s, all sequences)", "batch size", "tokens/s");
    f.xmin = -0.5; f.xmax = d->nb - 0.5;
    f.ymin = 0; f.ymax = -INFINITY;
    for (int j = 0; j < d->nm * d->nb; j++)
        if (isfinite(d->tps[j])) f.ymax = fmax(f.ymax, d->tps[j]);
    if (!d->nb || !isfinite(f.ymax)) {
        no_data(cr, w, h, "no throughput figures");
        return;
    }
    pad_range(&f.ymin, &f.ymax, true);
    f.x1 -= 160;
    axes(cr, &f, false);
    for (int b = 0; b < d->nb; b++) {
        char s[32];
        snprintf(s, sizeof s, "%d", d->batch[b]);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        text(cr, fx(&f, b), f.y1 + 4, s, 11, 1, false, false);
    }
    for (int i = 0; i < d->nm; i++) {
        color(cr, i, 1);
        cairo_set_line_width(cr, 2);
        bool open = false;
        for (int b = 0; b < d->nb; b++) {
            double v = d->tps[i * d->nb + b];
            if (!isfinite(v)) { open = false; continue; }
            if (open) cairo_line_to(cr, fx(&f, b), fy(&f, v)); else cairo_move_to(cr, fx(&f, b), fy(&f, v));
            open = true;
        }
        cairo_stroke(cr);
        for (int b = 0; b < d->nb; b++) {
            double v = d->tps[i * d->nb + b];
            if (isfinite(v)) dot(cr, fx(&f, b), fy(&f, v), 4, true);
        }
    }
    f.x1 += 160;
    legend(cr, d, &f);
}

void rp_chart_draw(const rp_data *d, int i, cairo_t *cr, double w, double h)
{
    cairo_save(cr);
    switch (i) {
    case 0: {
        char xl[96];
        snprintf(xl, sizeof xl, "speedup vs baseline at batch %d (x)", d->nb ? d->batch[0] : 1);
        double *sp = lb_malloc((size_t)(d->nm + 1) * sizeof *sp);
        for (int m = 0; m < d->nm; m++)
            sp[m] = d->nb ? d->speedup[m * d->nb] : NAN;
        char yl[160];
        snprintf(yl, sizeof yl, "Δ perplexity %s (%%)", d->nds ? d->ds[0] : "");
        scatter(cr, d, w, h, sp, 1, d->dppl_pct, 1, rp_chart_title(0), xl, yl, false);
        free(sp);
        break;
    }
    case 1: {
        char yl[160];
        snprintf(yl, sizeof yl, "perplexity %s", d->nds ? d->ds[0] : "");
        /* ppl is [nm * nds]: stride nds reads the first dataset of each method. */
        if (d->nds)
            scatter(cr, d, w, h, d->bpw, 1, d->ppl, d->nds, rp_chart_title(1), "bits per weight", yl, true);
        else
            scatter(cr, d, w, h, d->bpw, 1, d->dppl, 1, rp_chart_title(1), "bits per weight", yl, true);
        break;
    }
    case 2: bars_memory(cr, d, w, h); break;
    case 3: latency(cr, d, w, h); break;
    default: throughput(cr, d, w, h); break;
    }
    cairo_restore(cr);
}

/* ---- PNG and SVG ---- */

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len)
{
    lb_buf_append(closure, data, len);
    return CAIRO_STATUS_SUCCESS;
}

int rp_chart_png(const rp_data *d, int i, const char *path, lb_error *err)
{
    enum { W = 900, H = 520 };
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
    cairo_t *cr = cairo_create(s);
    rp_chart_draw(d, i, cr, W, H);
    cairo_destroy(cr);
    lb_atomic_file f;
    if (lb_atomic_open(&f, path, err)) {
        cairo_surface_destroy(s);
        return -1;
    }
    cairo_status_t st = cairo_surface_write_to_png_stream(s, to_file, f.fp);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        lb_atomic_abort(&f);
        return lb_fail(err, "%s: cannot write the chart: %s", path, cairo_status_to_string(st));
    }
    return lb_atomic_commit(&f, err);
}

/* Several SVGs in one HTML page share one id space; cairo names its glyphs and clips the same
 * in each, so every id and reference gets the chart's own prefix. */
static void prefix_ids(const char *svg, int chart, lb_buf *out)
{
    const char *p = strstr(svg, "<svg");
    if (!p)
        p = svg;
    while (*p) {
        if (strncmp(p, "id=\"", 4) == 0) {
            lb_buf_appendf(out, "id=\"c%d-", chart);
            p += 4;
        } else if (strncmp(p, "\"#", 2) == 0) {
            lb_buf_appendf(out, "\"#c%d-", chart);
            p += 2;
        } else if (strncmp(p, "url(#", 5) == 0) {
            lb_buf_appendf(out, "url(#c%d-", chart);
            p += 5;
        } else {
            lb_buf_append(out, p, 1);
            p++;
        }
    }
}

void rp_chart_svg(const rp_data *d, int i, lb_buf *out)
{
    enum { W = 900, H = 520 };
    lb_buf raw = {0};
    cairo_surface_t *s = cairo_svg_surface_create_for_stream(to_buf, &raw, W, H);
    cairo_t *cr = cairo_create(s);
    rp_chart_draw(d, i, cr, W, H);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    cairo_surface_destroy(s);
    prefix_ids(lb_buf_cstr(&raw), i, out);
    lb_buf_free(&raw);
}

/* ---- PDF ---- */

static double paragraph(cairo_t *cr, double x, double y, double width, const char *s, double size,
                        bool bold, bool mono)
{
    PangoLayout *l = pango_cairo_create_layout(cr);
    char font[64];
    snprintf(font, sizeof font, "%s %s%.1fpx", mono ? "Monospace" : "Sans", bold ? "Bold " : "", size);
    PangoFontDescription *fd = pango_font_description_from_string(font);
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    pango_layout_set_width(l, (int)(width * PANGO_SCALE));
    pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_text(l, s, -1);
    cairo_move_to(cr, x, y);
    pango_cairo_show_layout(cr, l);
    int w, h;
    pango_layout_get_pixel_size(l, &w, &h);
    g_object_unref(l);
    return y + h;
}

static void table_page(cairo_t *cr, const rp_table *t, double x, double *y, double width)
{
    /* Column widths from the widest cell, then one font size that fits the page. */
    double size = 9;
    double *cw = lb_calloc((size_t)t->n_cols, sizeof *cw);
    double total = 0;
    for (int c = 0; c < t->n_cols; c++) {
        cw[c] = text(cr, -1000, -1000, t->cols[c].head, size, 0, true, false);
        for (int r = 0; r < t->rows; r++)
            cw[c] = fmax(cw[c], text(cr, -1000, -1000, t->cols[c].cells[r], size, 0, false, false));
        cw[c] += 8;
        total += cw[c];
    }
    double scale = total > width ? width / total : 1;
    cairo_set_source_rgb(cr, 0, 0, 0);
    *y = paragraph(cr, x, *y, width, t->title, 14, true, false) + 4;
    double row_h = 14 * scale + 2;
    double cx = x;
    for (int c = 0; c < t->n_cols; c++) {
        text(cr, cx, *y, t->cols[c].head, size * scale, 0, true, false);
        cx += cw[c] * scale;
    }
    *y += row_h;
    cairo_set_line_width(cr, 0.5);
    cairo_move_to(cr, x, *y);
    cairo_line_to(cr, x + total * scale, *y);
    cairo_stroke(cr);
    *y += 2;
    for (int r = 0; r < t->rows; r++) {
        cx = x;
        for (int c = 0; c < t->n_cols; c++) {
            text(cr, cx, *y, t->cols[c].cells[r], size * scale, 0, false, false);
            cx += cw[c] * scale;
        }
        *y += row_h;
    }
    *y += 16;
    free(cw);
}

int rp_write_pdf(const rp_data *d, const char *path, lb_error *err)
{
    const double W = 842, H = 595, M = 40;   /* A4 landscape, points */
    lb_atomic_file f;
    if (lb_atomic_open(&f, path, err))
        return -1;
    cairo_surface_t *s = cairo_pdf_surface_create_for_stream(to_file, f.fp, W, H);
    cairo_t *cr = cairo_create(s);
    char line[1024];

    /* Page 1: summary and recommendations. */
    cairo_set_source_rgb(cr, 0, 0, 0);
    snprintf(line, sizeof line, "lowbit report — run %lld", (long long)d->run->id);
    double y = paragraph(cr, M, M, W - 2 * M, line, 22, true, false) + 10;
    y = paragraph(cr, M, y, W - 2 * M, "Executive summary", 15, true, false) + 4;
    y = paragraph(cr, M, y, W - 2 * M, d->summary, 12, false, false) + 14;
    y = paragraph(cr, M, y, W - 2 * M, "Recommendations", 15, true, false) + 4;
    for (int i = 0; i < d->nrec; i++) {
        snprintf(line, sizeof line, "%s: %s. %s", d->rec_case[i], d->rec_pick[i], d->rec_why[i]);
        y = paragraph(cr, M + 10, y, W - 2 * M - 10, line, 11.5, false, false) + 6;
    }
    cairo_show_page(cr);

    /* Pages 2-6: the charts. */
    for (int i = 0; i < RP_N_CHARTS; i++) {
        cairo_save(cr);
        cairo_translate(cr, (W - 900 * 0.85) / 2, 60);
        cairo_scale(cr, 0.85, 0.85);
        rp_chart_draw(d, i, cr, 900, 520);
        cairo_restore(cr);
        cairo_show_page(cr);
    }

    /* Page 7: the comparison tables. */
    y = M;
    for (int t = 0; t < 2; t++)
        table_page(cr, &d->tables[t], M, &y, W - 2 * M);
    cairo_show_page(cr);

    /* Page 8: config, machine, version. */
    cairo_set_source_rgb(cr, 0, 0, 0);
    y = paragraph(cr, M, M, W - 2 * M, "Run", 15, true, false) + 4;
    snprintf(line, sizeof line, "run %lld, started %s, finished %s, status %s; lowbit %s\nmachine: %s, %d cores, %.1f GiB memory",
             (long long)d->run->id, d->run->started, d->run->finished, d->run->status, d->run->version,
             d->run->machine.cpu, d->run->machine.cores, (double)d->run->machine.mem_bytes / (1 << 30));
    y = paragraph(cr, M, y, W - 2 * M, line, 11, false, false) + 10;
    snprintf(line, sizeof line, "Config (%s)", d->run->config_path);
    y = paragraph(cr, M, y, W - 2 * M, line, 13, true, false) + 4;
    paragraph(cr, M, y, W - 2 * M, d->run->config_text, 8.5, false, true);
    cairo_show_page(cr);

    cairo_destroy(cr);
    cairo_surface_finish(s);
    cairo_status_t st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        lb_atomic_abort(&f);
        return lb_fail(err, "%s: cannot write the PDF: %s", path, cairo_status_to_string(st));
    }
    return lb_atomic_commit(&f, err);
}
