/* The one result schema every evaluation and benchmark emits, so the pipeline, the results
 * store and the report read them all the same way:
 *   {"model", "format", "task", "metric", "value", "stderr", "n", "seconds", "params": {...}}
 * model is the model's path or name, format its weight format ("F32", "gptq-int4-g128", ...),
 * task what was measured ("wikitext2", "hellaswag", "bench"), metric the figure's name
 * ("perplexity", "acc", "acc_norm", "kld_mean", "latency_p50_ms", ...), stderr its standard
 * error (NaN when it has none, written as null), n how many items or tokens it rests on,
 * seconds the wall time of the measurement, params the settings that qualify it
 * (ctx, batch size, shots...). */
#ifndef LB_RESULT_H
#define LB_RESULT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char model[512];
    char format[64];
    char task[64];
    char metric[64];
    double value;
    double stderr_;   /* NaN: none */
    int64_t n;
    double seconds;
    json_t *params;   /* owned; may be NULL */
} lb_result;

/* Fills the text fields and value; stderr NaN, params NULL. */
void lb_result_init(lb_result *r, const char *model, const char *format, const char *task,
                    const char *metric, double value);
void lb_result_free(lb_result *r);

/* Sets params[key] (takes a reference to value: json_integer(), json_real(), json_string()). */
void lb_result_param(lb_result *r, const char *key, json_t *value);

json_t *lb_result_to_json(const lb_result *r);
/* {"results": [...]} with one object per result, pretty-printed, newline-terminated. */
int lb_results_write_json(FILE *out, const lb_result *rs, size_t n);

#endif
