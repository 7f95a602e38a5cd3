/* What the report writers share: the figures of one run arranged per method (computed once
 * from the stored result rows), the comparison tables, and the chart drawing. */
#ifndef LB_REPORT_INTERNAL_H
#define LB_REPORT_INTERNAL_H

#include "core/vec.h"
#include "pipeline/store.h"

#include <cairo.h>
#include <stdbool.h>

/* Perplexity budget for "smallest memory within a perplexity budget": +5% over the baseline. */
#define LB_REPORT_PPL_BUDGET 0.05

typedef struct {
    char *head;
    char **cells;      /* [rows]; "" when there is no figure */
    double *num;       /* [rows] sort keys; NaN for none */
} rp_col;

typedef struct {
    const char *title;
    int rows;
    rp_col *cols;
    int n_cols, cap;   /* cols is sized once, so pointers to columns stay valid */
} rp_table;

typedef struct {
    const lb_store_run *run;
    int nm;                         /* methods: rows of every table */
    const lb_store_method_row **m;
    int base;                       /* index of "baseline", -1 when absent */
    int nds;
    char **ds;                      /* perplexity datasets */
    double *ppl, *ppl_se;           /* [nm * nds] */
    double *dppl, *dppl_pct;        /* [nm] on ds[0] */
    double *kld, *top1;             /* [nm] */
    int ntm;
    char **tm;                      /* "task metric" columns (accuracies and others) */
    double *tmv, *tmse;             /* [nm * ntm] */
    int nb;
    int *batch;                     /* ascending */
    double *p50, *p95, *p99, *lat_mean, *tps, *speedup;  /* [nm * nb] */
    double *mem, *bytes, *bpw;      /* [nm] */
    bool *pareto;                   /* [nm] on (ppl ds[0], bits per weight) */
    char *summary;                  /* executive summary, plain text sentences */
    char *rec_case[8], *rec_pick[8], *rec_why[8];
    int nrec;
    rp_table tables[2];             /* accuracy, performance */
} rp_data;

void rp_data_build(rp_data *d, const lb_store_run *run);
void rp_data_free(rp_data *d);

/* Charts: five of them, each drawn on any cairo surface at w x h points. */
enum { RP_N_CHARTS = 5 };
const char *rp_chart_title(int i);
void rp_chart_draw(const rp_data *d, int i, cairo_t *cr, double w, double h);

/* Formatting helpers shared by the writers. */
void rp_fmt_num(char *out, size_t n, double v);
void rp_fmt_bytes(char *out, size_t n, double v);

/* Writers. */
int rp_write_pdf(const rp_data *d, const char *path, lb_error *err);
int rp_chart_png(const rp_data *d, int i, const char *path, lb_error *err);
/* Inline SVG of chart i; ids made unique by prefix. */
void rp_chart_svg(const rp_data *d, int i, lb_buf *out);

#endif
