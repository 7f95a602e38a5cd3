/* The shared result schema: see result.h. */
#include "eval/result.h"

#include <math.h>
#include <string.h>

void lb_result_init(lb_result *r, const char *model, const char *format, const char *task,
                    const char *metric, double value)
{
    memset(r, 0, sizeof *r);
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    snprintf(r->format, sizeof r->format, "%s", format ? format : "");
    snprintf(r->task, sizeof r->task, "%s", task ? task : "");
    snprintf(r->metric, sizeof r->metric, "%s", metric ? metric : "");
    r->value = value;
    r->stderr_ = NAN;
}

void lb_result_free(lb_result *r)
{
    if (r && r->params) {
        json_decref(r->params);
        r->params = NULL;
    }
}

void lb_result_param(lb_result *r, const char *key, json_t *value)
{
    if (!r->params) r->params = json_object();
    json_object_set_new(r->params, key, value);
}

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *lb_result_to_json(const lb_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(r->model));
    json_object_set_new(o, "format", json_string(r->format));
    json_object_set_new(o, "task", json_string(r->task));
    json_object_set_new(o, "metric", json_string(r->metric));
    json_object_set_new(o, "value", number_or_null(r->value));
    json_object_set_new(o, "stderr", number_or_null(r->stderr_));
    json_object_set_new(o, "n", json_integer(r->n));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "params", r->params ? json_deep_copy(r->params) : json_object());
    return o;
}

int lb_results_write_json(FILE *out, const lb_result *rs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, lb_result_to_json(&rs[i]));
    json_t *root = json_pack("{s:o}", "results", arr);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (rc == 0) fputc('\n', out);
    return rc == 0 && !ferror(out) ? 0 : -1;
}
