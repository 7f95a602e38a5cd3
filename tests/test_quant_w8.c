/* 8-bit quantization of stories260K, judged by perplexity (see test_quant_common.h):
 * RTN int8 per channel within 0.5 % of the float baseline, SmoothQuant W8A8 (real int8
 * activations per token) within 1 %, naive W8A8 measured beside it, GPTQ int8 within 0.5 %;
 * every layer's reported output error is finite and small at 8 bits. */
#include "test_quant_common.h"

int main(void)
{
    double base = quant_test_setup();
    lb_quant_opts o = opts(LB_QM_RTN, 8, 0);
    double rtn8 = quantized_ppl(&o, "rtn int8 per channel", NULL);
    o = opts(LB_QM_SMOOTHQUANT, 8, 0);
    double sq = quantized_ppl(&o, "smoothquant w8a8 alpha 0.5", NULL);
    o = opts(LB_QM_SMOOTHQUANT, 8, 0);
    o.alpha = 0;
    double naive = quantized_ppl(&o, "naive w8a8", NULL);
    lb_quant_report rep8;
    memset(&rep8, 0, sizeof rep8);
    o = opts(LB_QM_GPTQ, 8, 0);
    double gptq8 = quantized_ppl(&o, "gptq int8 per channel", &rep8);
    printf("increase: rtn8 %+.3f%% smoothquant %+.3f%% naive w8a8 %+.3f%% gptq8 %+.3f%%\n",
           100 * (rtn8 / base - 1), 100 * (sq / base - 1), 100 * (naive / base - 1),
           100 * (gptq8 / base - 1));
    CHECK(fabs(rtn8 / base - 1) < 0.005, "rtn int8 %.3f%%", 100 * (rtn8 / base - 1));
    CHECK(fabs(sq / base - 1) < 0.01, "smoothquant w8a8 %.3f%%", 100 * (sq / base - 1));
    CHECK(fabs(naive / base - 1) < 0.02, "naive w8a8 %.3f%%", 100 * (naive / base - 1));
    CHECK(fabs(gptq8 / base - 1) < 0.005, "gptq int8 %.3f%%", 100 * (gptq8 / base - 1));
    CHECK(rep8.n_layers == 7 * 5, "%d layers reported", rep8.n_layers);
    for (int i = 0; i < rep8.n_layers; i++)
        CHECK(isfinite(rep8.layers[i].rel_error) && rep8.layers[i].rel_error < 1e-3 &&
                  isfinite(rep8.layers[i].gptq_loss),
              "%s: relative error %g", rep8.layers[i].name, rep8.layers[i].rel_error);
    lb_quant_report_free(&rep8);
    quant_test_teardown();
    return check_finish("test_quant_w8");
}
