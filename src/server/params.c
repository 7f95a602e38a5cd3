/* Request validation shared by the endpoints: the body must be a JSON object with known
 * fields of the right types and sane values; every refusal names the field, so the client
 * gets an OpenAI-style 400 it can act on. */
#include "server/internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *srv_body_json(const char *data, size_t n, lb_error *err)
{
    if (n == 0) {
        lb_fail(err, "request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(data, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        lb_fail(err, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        lb_fail(err, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

json_t *srv_parse_body(srv_conn *cc, enum MHD_Result *sent)
{
    lb_error err;
    json_t *root = srv_body_json(cc->body.v, cc->body.n, &err);
    if (!root)
        *sent = srv_send_error(cc, 400, NULL, "%s", err.msg);
    return root;
}

int srv_check_fields(json_t *obj, const char *const *allowed, char *param, size_t cap,
                     lb_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok) {
            snprintf(param, cap, "%s", key);
            return lb_fail(err, "unknown field '%.200s'", key);
        }
    }
    return 0;
}

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int srv_get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, lb_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    long long x;
    if (json_is_integer(v))
        x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15)
        x = (long long)json_real_value(v);   /* 64.0 is accepted as 64 */
    else
        return lb_fail(err, "field '%s' must be an integer, got %s", key, kind_name(v));
    if (x < lo || x > hi)
        return lb_fail(err, "field '%s' is %lld, expected %lld..%lld", key, x, lo, hi);
    *out = x;
    return 0;
}

int srv_get_num(json_t *obj, const char *key, double lo, double hi, double *out, lb_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return lb_fail(err, "field '%s' must be a number, got %s", key, kind_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return lb_fail(err, "field '%s' is %g, expected %g..%g", key, x, lo, hi);
    *out = x;
    return 0;
}

int srv_get_bool(json_t *obj, const char *key, bool *out, lb_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return lb_fail(err, "field '%s' must be true or false, got %s", key, kind_name(v));
    *out = json_is_true(v);
    return 0;
}

int srv_get_str(json_t *obj, const char *key, const char **out, lb_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return lb_fail(err, "field '%s' must be a string, got %s", key, kind_name(v));
    if (strlen(json_string_value(v)) != json_string_length(v))
        return lb_fail(err, "field '%s' contains a NUL character", key);
    *out = json_string_value(v);
    return 0;
}

int srv_get_stop(json_t *obj, const char *key, const char **stop, int *n_stop, lb_error *err)
{
    json_t *v = json_object_get(obj, key);
    *n_stop = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        v = json_pack("[O]", v);
        json_object_set_new(obj, key, v);   /* keep the strings alive with obj */
    }
    if (!json_is_array(v))
        return lb_fail(err, "field '%s' must be a string or an array of strings, got %s", key, kind_name(v));
    if (json_array_size(v) > 4)
        return lb_fail(err, "field '%s' has %zu strings, at most 4 are allowed", key, json_array_size(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 256 ||
            strlen(json_string_value(e)) != json_string_length(e))
            return lb_fail(err, "field '%s[%zu]' must be a non-empty string of at most 256 bytes", key, i);
        stop[(*n_stop)++] = json_string_value(e);
    }
    return 0;
}

int srv_encode_prompt(srv_model *m, const char *prompt, bool add_special, int **ids, int *n,
                      lb_error *err)
{
    if (tok_encode(m->m->tok, prompt, strlen(prompt), add_special, ids, n, err))
        return -1;
    if (*n == 0) {
        free(*ids);
        return lb_fail(err, "field 'prompt' is empty and the model has no BOS token to start from");
    }
    int n_ctx = lb_engine_n_ctx(m->e);
    if (*n >= n_ctx) {
        int k = *n;
        free(*ids);
        return lb_fail(err, "field 'prompt' is %d tokens; the context holds %d (one must be left "
                       "for the first new token)", k, n_ctx);
    }
    return 0;
}

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    else if ((s[0] & 0xE0) == 0xC0)
        len = 2, min = 0x80, cp = s[0] & 0x1F;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, min = 0x800, cp = s[0] & 0x0F;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

json_t *srv_json_text(const char *text, size_t n)
{
    lb_buf b = {0};
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t k = s[i] ? utf8_seq(s + i, n - i) : 0;
        if (k == 0) {
            lb_buf_append(&b, "\xEF\xBF\xBD", 3);   /* U+FFFD for a broken byte (or NUL) */
            i++;
        } else {
            lb_buf_append(&b, s + i, k);
            i += k;
        }
    }
    json_t *j = json_stringn(b.n ? b.v : "", b.n);
    lb_buf_free(&b);
    return j;
}

size_t srv_utf8_complete(const char *text, size_t n)
{
    /* Step back over at most 3 continuation bytes to the start of the last sequence. */
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && (((unsigned char)text[i - 1]) & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)text[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && (size_t)back + 1 < need)
        return i - 1;   /* the tail is a sequence still waiting for bytes */
    return n;
}
