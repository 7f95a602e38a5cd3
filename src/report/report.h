/* Reports from one run of the results store: comparison tables, charts, recommendations and
 * an executive summary, written as Markdown (+ PNG charts), one self-contained HTML file
 * (inline SVG charts, sortable tables), PDF (vector charts), CSV and JSON. Every figure is
 * computed from the stored result rows; nothing is typed in. */
#ifndef LB_REPORT_H
#define LB_REPORT_H

#include "core/error.h"
#include "pipeline/store.h"

enum {
    LB_REPORT_MD = 1,
    LB_REPORT_HTML = 2,
    LB_REPORT_PDF = 4,
    LB_REPORT_CSV = 8,
    LB_REPORT_JSON = 16,
};

/* "md,html,pdf" → mask; names the unknown one. */
int lb_report_parse_formats(const char *list, unsigned *mask, lb_error *err);

/* Writes report.<ext> (and the chart PNGs for Markdown) into dir, creating it; every file is
 * written atomically. */
int lb_report_write(const lb_store_run *run, const char *dir, unsigned formats, lb_error *err);

#endif
