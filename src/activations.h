/* The policy network's softplus activation and its derivative, as one vectorisable loop.
 *
 * numpy has no SIMD exp/log for float64 without AVX-512, so numpy's softplus (expit, then a log) costs two
 * scalar libm calls per unit; it was ~60 % of the policy's training time. Here e^x and log(1 + e) are short
 * polynomials that gcc vectorises (AVX2 clone where the CPU has it, SSE2 otherwise). Accuracy: a few ulp of
 * the exact values (tests hold them to the numpy twin at 1e-15).
 *
 * Needs -fno-trapping-math (gps_core/meson.build) so that gcc if-converts the selects and vectorises.
 * Plain C99, no Python API, no allocation.
 */
#ifndef GPSX_ACTIVATIONS_H
#define GPSX_ACTIVATIONS_H

#include <stdint.h>
#include <string.h>

#include "dense.h"  /* GPSX_CLONES */

/* e^x for x <= 0: x = k·ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^13 (truncation < 1e-17
 * relative), 2^k put into the exponent bits. Below −708 the result would be subnormal: returns 0 there
 * (an absolute error < 3e-308). */
static inline double act_exp_nonpositive(double x)
{
    const double shift = 0x1.8p52;                 /* adding it rounds to an integer held in the low bits */
    const double log2e = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fefa3800p-1;    /* ln 2 split so that k·ln2_hi is exact */
    const double ln2_lo = 0x1.ef35793c76730p-45;
    const double xc = x < -708.0 ? -708.0 : x;
    double kd = xc * log2e + shift;
    int64_t k_bits;
    memcpy(&k_bits, &kd, sizeof k_bits);
    kd -= shift;
    const double r = (xc - kd * ln2_hi) - kd * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int64_t scale_bits = (k_bits - (int64_t)0x4338000000000000LL + 1023) << 52;  /* 2^k, k >= −1022 */
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return x < -708.0 ? 0.0 : p * scale;
}

/* log(1 + e) for e in [0, 1]: 2·atanh(s) with s = e/(2 + e) <= 1/3, by its series to s^33 (< 1e-17). */
static inline double act_log1p_unit(double e)
{
    const double s = e / (2.0 + e), w = s * s;
    double p = 1.0 / 33.0;
    p = p * w + 1.0 / 31.0;
    p = p * w + 1.0 / 29.0;
    p = p * w + 1.0 / 27.0;
    p = p * w + 1.0 / 25.0;
    p = p * w + 1.0 / 23.0;
    p = p * w + 1.0 / 21.0;
    p = p * w + 1.0 / 19.0;
    p = p * w + 1.0 / 17.0;
    p = p * w + 1.0 / 15.0;
    p = p * w + 1.0 / 13.0;
    p = p * w + 1.0 / 11.0;
    p = p * w + 1.0 / 9.0;
    p = p * w + 1.0 / 7.0;
    p = p * w + 1.0 / 5.0;
    p = p * w + 1.0 / 3.0;
    p = p * w + 1.0;
    return 2.0 * s * p;
}

/* For the (rows × width) row-major pre-activations z and a bias per column, with y = z + bias:
 * out = softplus(y) = max(y, 0) + log(1 + e^{−|y|}) and slope = σ(y) = 1/(1 + e^{−y}).
 * NaN in gives NaN out; ±inf gives the limits. */
GPSX_CLONES
static void act_softplus(long rows, long width, const double *restrict z, const double *restrict bias,
                         double *restrict out, double *restrict slope)
{
    for (long i = 0; i < rows; ++i) {
        const double *zi = z + i * width;
        double *oi = out + i * width, *si = slope + i * width;
        for (long j = 0; j < width; ++j) {
            const double y = zi[j] + bias[j];
            const double e = act_exp_nonpositive(y < 0.0 ? y : -y);   /* e^{−|y|} */
            const double q = 1.0 / (1.0 + e);
            si[j] = y >= 0.0 ? q : e * q;
            oi[j] = (y > 0.0 ? y : 0.0) + act_log1p_unit(e);
        }
    }
}

#endif
