/* lowbit export: a quantized model for other tools: GGUF (llama.cpp's Q8_0/Q4_0/Q4_1) or
 * Hugging Face GPTQ / AWQ / compressed-tensors W8A8 directories. */
#include "cli/args.h"
#include "cli/commands.h"
#include "io/export_gguf.h"
#include "io/export_hf.h"
#include "model/model.h"

#include <stdio.h>
#include <string.h>

int cmd_export(int argc, char **argv)
{
    const char *model = NULL, *format = NULL, *out = NULL;
    bool f32 = false, quiet = false;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "quantized model (lowbit's GGUF from lowbit quantize)"},
        {"format", 'f', OPT_STRING, &format, "FMT", "gguf, gptq, awq or w8a8"},
        {"output", 'o', OPT_STRING, &out, "PATH", "output file (gguf) or directory (gptq, awq, w8a8); must not exist for a directory"},
        {"f32", 0, OPT_FLAG, &f32, NULL, "write tensors that are not quantized in the target (and GGUF fallbacks) as F32, not F16"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no summary"},
    };
    const lb_cmd_spec spec = {
        "lowbit export -m QUANTIZED --format gguf|gptq|awq|w8a8 -o OUT",
        "Writes a lowbit-quantized model in a format other tools load. gguf: llama.cpp types "
        "where the layout maps exactly (Q8_0 for 8-bit symmetric, Q4_0 / Q4_1 for 2-4-bit "
        "symmetric / with zero points, groups a multiple of 32), F16 for the rest. gptq / awq: "
        "Hugging Face directories as AutoGPTQ, AutoAWQ and vLLM read them. w8a8: "
        "compressed-tensors int8 weights per channel with dynamic per-token activations.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (!model || !format || !out) {
        fprintf(stderr, "lowbit export: %s is required (see lowbit export --help)\n",
                !model ? "-m MODEL" : !format ? "--format" : "-o OUT");
        return 1;
    }
    bool gguf = strcmp(format, "gguf") == 0;
    lb_hf_format hf = LB_HF_GPTQ;
    if (strcmp(format, "gptq") == 0)
        hf = LB_HF_GPTQ;
    else if (strcmp(format, "awq") == 0)
        hf = LB_HF_AWQ;
    else if (strcmp(format, "w8a8") == 0)
        hf = LB_HF_W8A8;
    else if (!gguf) {
        fprintf(stderr, "lowbit export: --format '%s' is unknown (expected gguf, gptq, awq or "
                "w8a8)\n", format);
        return 1;
    }
    lb_error err;
    lb_model *m;
    if (lb_model_load(model, NULL, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    if (gguf) {
        lb_export_gguf_opts o = {.fallback_f32 = f32};
        rc = lb_export_gguf(m, out, &o, &err);
        if (!rc && !quiet)
            printf("%s: %d Q8_0, %d Q4_0, %d Q4_1, %d %s (no exact llama.cpp type), %d copied\n",
                   out, o.n_q8_0, o.n_q4_0, o.n_q4_1, o.n_fallback, f32 ? "F32" : "F16",
                   o.n_copied);
    } else {
        lb_export_hf_opts o = {.fp32 = f32};
        rc = lb_export_hf(m, out, hf, &o, &err);
        if (!rc && !quiet)
            printf("%s: %s checkpoint written\n", out, format);
    }
    lb_model_free(m);
    if (rc) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    return 0;
}
