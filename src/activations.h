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

/* Σ_i c[i]·x^(n−1−i) by Horner's rule (n is a compile-time constant at every call, so it unrolls). */
static inline double act_horner(const double *c, int n, double x)
{
    double p = c[0];
    for (int i = 1; i < n; ++i) p = p * x + c[i];
    return p;
}

/* 1/13!, 1/12!, ..., 1/1!, 1: e^r by its Taylor series, highest power first. */
static const double act_exp_taylor[14] = {
    1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
    1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};

/* 1/33, 1/31, ..., 1/3, 1: atanh(s)/s as a series in w = s², highest power first. */
static const double act_atanh_series[17] = {
    1.0 / 33.0, 1.0 / 31.0, 1.0 / 29.0, 1.0 / 27.0, 1.0 / 25.0, 1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0,
    1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0};

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
    const int64_t scale_bits = (k_bits - (int64_t)0x4338000000000000LL + 1023) << 52;  /* 2^k, k >= −1022 */
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return x < -708.0 ? 0.0 : act_horner(act_exp_taylor, 14, r) * scale;
}

/* log(1 + e) for e in [0, 1]: 2·atanh(s) with s = e/(2 + e) <= 1/3, by its series to s^33 (< 1e-17). */
static inline double act_log1p_unit(double e)
{
    const double s = e / (2.0 + e);
    return 2.0 * s * act_horner(act_atanh_series, 17, s * s);
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
