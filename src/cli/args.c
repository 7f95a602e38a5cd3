/* Table-driven option parsing. */
#include "cli/args.h"
#include "model/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(const lb_cmd_spec *spec)
{
    printf("usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->description);
    for (int i = 0; i < spec->n_opts; i++) {
        const lb_opt *o = &spec->opts[i];
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
}

static const lb_opt *lookup(const lb_cmd_spec *spec, const char *arg)
{
    for (int i = 0; i < spec->n_opts; i++) {
        const lb_opt *o = &spec->opts[i];
        if (arg[1] == '-' ? strcmp(arg + 2, o->name) == 0
                          : (o->short_name && arg[1] == o->short_name && arg[2] == '\0'))
            return o;
    }
    return NULL;
}

static int set_value(const char *cmd, const lb_opt *o, const char *v)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_STRING:
        *(const char **)o->dest = v;
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L) {
            fprintf(stderr, "%s: --%s expects an integer, got '%s'\n", cmd, o->name, v);
            return -1;
        }
        *(int *)o->dest = (int)x;
        return 0;
    }
    case OPT_FLOAT: {
        float x = strtof(v, &end);
        if (errno || end == v || *end || !isfinite(x)) {
            fprintf(stderr, "%s: --%s expects a number, got '%s'\n", cmd, o->name, v);
            return -1;
        }
        *(float *)o->dest = x;
        return 0;
    }
    case OPT_FLAG:
        break;
    }
    return -1;
}

int lb_args_parse(const lb_cmd_spec *spec, int argc, char **argv, const char **positional,
                  int *n_positional)
{
    const char *cmd = argv[0];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(spec);
            return 1;
        }
        if (a[0] == '-' && a[1] != '\0' && strcmp(a, "--") != 0) {
            /* --name=value is accepted too. */
            char name[128];
            const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
            const lb_opt *o = lookup(spec, name);
            if (!o) {
                fprintf(stderr, "%s: unknown option '%s' (see %s --help)\n", cmd, name, cmd);
                return -1;
            }
            if (o->kind == OPT_FLAG) {
                *(bool *)o->dest = true;
                continue;
            }
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                fprintf(stderr, "%s: option '%s' needs a value (%s)\n", cmd, name,
                        o->arg ? o->arg : "value");
                return -1;
            }
            if (set_value(cmd, o, v))
                return -1;
            continue;
        }
        if (np >= spec->max_positional) {
            fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", cmd, a, cmd);
            return -1;
        }
        positional[np++] = a;
    }
    if (np < spec->min_positional) {
        fprintf(stderr, "usage: %s\n", spec->usage);
        return -1;
    }
    if (n_positional)
        *n_positional = np;
    return 0;
}

int lb_args_kv_type(const char *cmd, const char *name)
{
    lb_kv_type t;
    if (!name)
        return 0;
    if (lb_kv_type_parse(name, &t)) {
        fprintf(stderr, "%s: --kv-type %s: expected f32, f16 or q8\n", cmd, name);
        return -1;
    }
    lb_engine_set_kv_type(t);
    return 0;
}
