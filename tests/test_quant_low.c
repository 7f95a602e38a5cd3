/* 4- and 3-bit quantization of stories260K with groups of 32, judged by perplexity (see
 * test_quant_common.h): at 4 bits GPTQ's increase over the float baseline is well below RTN's
 * (with and without act-order, and with every Hessian from the float blocks instead of true-
 * sequential) and AWQ's is below RTN's; at 3 bits GPTQ's is far below RTN's.
 * RTN's own figures are deterministic and pinned. */
#include "test_quant_common.h"

int main(void)
{
    double base = quant_test_setup();
    lb_quant_opts o = opts(LB_QM_RTN, 4, 32);
    double rtn4 = quantized_ppl(&o, "rtn int4 g32", NULL) / base - 1;
    o = opts(LB_QM_GPTQ, 4, 32);
    double gptq4 = quantized_ppl(&o, "gptq int4 g32", NULL) / base - 1;
    o = opts(LB_QM_GPTQ, 4, 32);
    o.act_order = true;
    double gptq4a = quantized_ppl(&o, "gptq int4 g32 act-order", NULL) / base - 1;
    o = opts(LB_QM_GPTQ, 4, 32);
    o.all_sites_float = true;
    double gptq4f = quantized_ppl(&o, "gptq int4 g32 float sites", NULL) / base - 1;
    o = opts(LB_QM_AWQ, 4, 32);
    double awq4 = quantized_ppl(&o, "awq int4 g32", NULL) / base - 1;
    o = opts(LB_QM_RTN, 3, 32);
    double rtn3 = quantized_ppl(&o, "rtn int3 g32", NULL) / base - 1;
    o = opts(LB_QM_GPTQ, 3, 32);
    double gptq3 = quantized_ppl(&o, "gptq int3 g32", NULL) / base - 1;
    printf("increase: rtn4 %+.2f%% gptq4 %+.2f%% gptq4-act %+.2f%% gptq4-float-sites %+.2f%% "
           "awq4 %+.2f%% rtn3 %+.2f%% gptq3 %+.2f%%\n", 100 * rtn4, 100 * gptq4, 100 * gptq4a,
           100 * gptq4f, 100 * awq4, 100 * rtn3, 100 * gptq3);
    CHECK(rtn4 > 0.03, "rtn int4 g32 should cost something: %.2f%%", 100 * rtn4);
    CHECK(gptq4 < 0.75 * rtn4, "gptq4 %.2f%% is not well below rtn4 %.2f%%", 100 * gptq4,
          100 * rtn4);
    CHECK(gptq4a < 0.75 * rtn4, "gptq4 act-order %.2f%% vs rtn4 %.2f%%", 100 * gptq4a,
          100 * rtn4);
    CHECK(gptq4f < 0.75 * rtn4, "gptq4 with float sites %.2f%% vs rtn4 %.2f%%", 100 * gptq4f,
          100 * rtn4);
    CHECK(gptq4f != gptq4, "true-sequential and float-site GPTQ gave the same model");
    CHECK(awq4 < 0.9 * rtn4, "awq4 %.2f%% is not below rtn4 %.2f%%", 100 * awq4, 100 * rtn4);
    CHECK(gptq3 < 0.7 * rtn3, "gptq3 %.2f%% is not far below rtn3 %.2f%%", 100 * gptq3,
          100 * rtn3);
    quant_test_teardown();
    return check_finish("test_quant_low");
}
