/* The quantization grids of lb_qgrid, as round-to-nearest uses them: symmetric grids hold the
 * value of largest magnitude exactly (int8 on ±127 steps; lower bits on all 2^bits codes, the
 * extreme on code 0, as Q4_0); every value the codes cover lands within half a step and the
 * rest on the nearest end code; asymmetric grids stay within a step (their zero point is
 * rounded); an all-zero group decodes to zeros. */
#include "check.h"
#include "core/rng.h"
#include "quant/qweight.h"

#include <math.h>
#include <string.h>

#define COLS 96

static float decode(float scale, uint8_t zero, uint8_t code)
{
    return scale * ((float)code - (float)zero);
}

/* Quantizes one row of COLS values as a single group and checks the grid's promises. */
static void check_row(const float *w, int bits, bool sym, const char *what)
{
    lb_qweight qw;
    lb_qweight_rtn(w, 1, COLS, bits, 0, sym, &qw);
    float scale = qw.scale[0];
    uint8_t zero = qw.zero[0];
    int extreme = 0, lo_code = 255, hi_code = 0, maxq = (1 << bits) - 1;
    float worst = 0, step = fabsf(scale);
    for (int c = 0; c < COLS; c++) {
        if (fabsf(w[c]) > fabsf(w[extreme]))
            extreme = c;
        float e = fabsf(decode(scale, zero, qw.q[c]) - w[c]);
        worst = fmaxf(worst, e);
        lo_code = qw.q[c] < lo_code ? qw.q[c] : lo_code;
        hi_code = qw.q[c] > hi_code ? qw.q[c] : hi_code;
        float ideal = w[c] / scale + (float)zero;
        if (ideal >= -0.5f && ideal <= (float)maxq + 0.5f)
            CHECK(e <= 0.5f * step * (1 + 1e-4f), "%s: %g decodes to %g with steps of %g",
                  what, (double)w[c], (double)decode(scale, zero, qw.q[c]), (double)step);
        else
            CHECK(qw.q[c] == (ideal < 0 ? 0 : maxq), "%s: %g beyond the codes takes %d", what,
                  (double)w[c], qw.q[c]);
    }
    if (sym) {
        float got = decode(scale, zero, qw.q[extreme]);
        CHECK(fabsf(got - w[extreme]) <= 1e-6f * fabsf(w[extreme]),
              "%s: largest value %g decodes to %g", what, (double)w[extreme], (double)got);
        CHECK(zero == 1 << (bits - 1), "%s: zero point %d", what, zero);
        if (bits == 8)
            CHECK(scale > 0 && lo_code >= 1 && worst <= 0.5f * step * (1 + 1e-4f),
                  "%s: int8 codes stay in 1..255 (lowest %d), within half a step (%g of %g)",
                  what, lo_code, (double)worst, (double)step);
        else
            CHECK(qw.q[extreme] == 0, "%s: the extreme takes code %d, not 0", what,
                  qw.q[extreme]);
    } else {
        CHECK(worst <= step * (1 + 1e-4f), "%s: an error of %g with steps of %g", what,
              (double)worst, (double)step);
    }
    CHECK(hi_code <= maxq, "%s: code %d out of range", what, hi_code);
    lb_qweight_free(&qw);
}

int main(void)
{
    lb_rng rng;
    lb_rng_seed(&rng, 7);
    float w[COLS];
    const int bit_widths[] = {2, 3, 4, 8};
    for (int trial = 0; trial < 200; trial++) {
        for (int c = 0; c < COLS; c++)
            w[c] = lb_rng_normal(&rng) * 0.05f;
        /* Half the rows with their outlier positive, half negative: a positive extreme once
         * fell half a step beyond the last int8 code and was clipped. */
        int at = trial % COLS;
        w[at] = (trial & 1 ? 1.0f : -1.0f) * (0.3f + 0.001f * (float)trial);
        if (trial % 7 == 3)   /* no outlier at all: only the normal values' own extremes */
            w[at] = 0.01f;
        for (int b = 0; b < 4; b++) {
            char what[64];
            snprintf(what, sizeof what, "trial %d, %d-bit sym", trial, bit_widths[b]);
            check_row(w, bit_widths[b], true, what);
            snprintf(what, sizeof what, "trial %d, %d-bit asym", trial, bit_widths[b]);
            check_row(w, bit_widths[b], false, what);
        }
    }
    /* One-signed rows: the range still includes 0 (asymmetric), the extreme stays exact. */
    for (int c = 0; c < COLS; c++)
        w[c] = 0.5f + 0.01f * (float)c;
    check_row(w, 4, true, "all positive, 4-bit sym");
    check_row(w, 8, true, "all positive, 8-bit sym");
    check_row(w, 4, false, "all positive, 4-bit asym");
    /* All zeros: scale 1 and every code decodes to exactly 0. */
    memset(w, 0, sizeof w);
    for (int b = 0; b < 4; b++)
        for (int sym = 0; sym < 2; sym++) {
            lb_qweight qw;
            lb_qweight_rtn(w, 1, COLS, bit_widths[b], 0, sym, &qw);
            for (int c = 0; c < COLS; c++)
                CHECK(decode(qw.scale[0], qw.zero[0], qw.q[c]) == 0.0f,
                      "zeros, %d-bit %s: decodes to %g", bit_widths[b], sym ? "sym" : "asym",
                      (double)decode(qw.scale[0], qw.zero[0], qw.q[c]));
            lb_qweight_free(&qw);
        }
    return check_finish("test_qgrid");
}
