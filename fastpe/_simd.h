/* Leaf loops of the fastpe kernels.
 *
 * Each loop walks one row of D columns with unit stride when it can, so the
 * compiler vectorises it. On x86-64 Linux with GCC every loop is cloned for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA) and the baseline, and the loader
 * picks the widest the CPU has: the wheel stays portable and still uses the
 * machine's vectors. Elsewhere the baseline clone is the only one.
 *
 * The sinusoid generator keeps, per output column j, a state (s_j, c_j) =
 * (sin a_j, cos a_j) where a_j is the column's angle (a cosine column carries
 * the phase a + pi/2, i.e. (cos a, -sin a)). The next position is one rotation
 * by the column's frequency w: s' = s cos w + c sin w, c' = c cos w - s sin w.
 * Seeds come from libm in float64 and are refreshed every few hundred rows,
 * so rounding cannot accumulate past ~1e-14.
 */
#ifndef FASTPE_SIMD_H
#define FASTPE_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef ptrdiff_t fpe_idx;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FASTPE_NO_DISPATCH) && !defined(__SANITIZE_ADDRESS__)
#define FPE_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FPE_DISPATCH_ENABLED 1
#else
#define FPE_DISPATCH
#define FPE_DISPATCH_ENABLED 0
#endif

/* Which clone the loader picks on this CPU (same order as target_clones). */
static const char *fpe_simd_level(void)
{
#if FPE_DISPATCH_ENABLED
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2, FMA)";
    return "x86-64 baseline (SSE2)";
#else
    return "baseline (no runtime dispatch in this build)";
#endif
}

/* Seed every column's state at position p. col_freq[j] < 0 marks a column
 * that is always zero; col_cos[j] != 0 marks a cosine column. */
static void fpe_seed(double *restrict s, double *restrict c, double p,
                     const double *restrict freq, fpe_idx n_freq,
                     const int32_t *restrict col_freq, const uint8_t *restrict col_cos,
                     fpe_idx n_cols, double *restrict sin_buf, double *restrict cos_buf)
{
    for (fpe_idx k = 0; k < n_freq; k++) {
        double a = p * freq[k];
        sin_buf[k] = sin(a);
        cos_buf[k] = cos(a);
    }
    for (fpe_idx j = 0; j < n_cols; j++) {
        int32_t k = col_freq[j];
        if (k < 0) {
            s[j] = 0.0;
            c[j] = 0.0;
        } else if (col_cos[j]) {
            s[j] = cos_buf[k];
            c[j] = -sin_buf[k];
        } else {
            s[j] = sin_buf[k];
            c[j] = cos_buf[k];
        }
    }
}

/* Advance every column's state by one position. */
FPE_DISPATCH
static void fpe_advance(double *restrict s, double *restrict c,
                        const double *restrict step_cos, const double *restrict step_sin, fpe_idx n)
{
    for (fpe_idx j = 0; j < n; j++) {
        double sj = s[j], cj = c[j];
        s[j] = sj * step_cos[j] + cj * step_sin[j];
        c[j] = cj * step_cos[j] - sj * step_sin[j];
    }
}

/* dst[j] = pe[j], rounded once to the storage type. */
#define FPE_DEFINE_STORE(T, SUFFIX)                                                     \
    FPE_DISPATCH                                                                        \
    static void fpe_store_##SUFFIX(T *restrict dst, fpe_idx stride,                     \
                                   const double *restrict pe, fpe_idx n)                \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) dst[j] = (T)pe[j];                          \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) dst[j * stride] = (T)pe[j];                 \
        }                                                                               \
    }

/* x[j] = x[j] * scale + pe[j], computed in float64 and rounded once. */
#define FPE_DEFINE_ADD_INPLACE(T, SUFFIX)                                               \
    FPE_DISPATCH                                                                        \
    static void fpe_add_inplace_##SUFFIX(T *restrict x, fpe_idx stride,                 \
                                         const double *restrict pe, double scale,       \
                                         fpe_idx n)                                     \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) x[j] = (T)((double)x[j] * scale + pe[j]);   \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                fpe_idx i = j * stride;                                                 \
                x[i] = (T)((double)x[i] * scale + pe[j]);                               \
            }                                                                           \
        }                                                                               \
    }

/* dst[j] = src[j] * scale + pe[j]; src and dst never overlap (the Python layer
 * copies a partially overlapping input first). */
#define FPE_DEFINE_ADD_TO(T, SUFFIX)                                                    \
    FPE_DISPATCH                                                                        \
    static void fpe_add_to_##SUFFIX(T *restrict dst, fpe_idx dst_stride,                \
                                    const T *restrict src, fpe_idx src_stride,          \
                                    const double *restrict pe, double scale, fpe_idx n) \
    {                                                                                   \
        if (dst_stride == 1 && src_stride == 1) {                                       \
            for (fpe_idx j = 0; j < n; j++) dst[j] = (T)((double)src[j] * scale + pe[j]); \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++)                                             \
                dst[j * dst_stride] = (T)((double)src[j * src_stride] * scale + pe[j]); \
        }                                                                               \
    }

FPE_DEFINE_STORE(float, f32)
FPE_DEFINE_STORE(double, f64)
FPE_DEFINE_ADD_INPLACE(float, f32)
FPE_DEFINE_ADD_INPLACE(double, f64)
FPE_DEFINE_ADD_TO(float, f32)
FPE_DEFINE_ADD_TO(double, f64)

/* Fused step: emit the current state's s into one row of the output, then
 * advance the state to the next position, in one pass over the columns so the
 * state is read and written once per row. One variant per way of emitting. */
#define FPE_ADVANCE_J                                                                   \
    double sj = s[j], cj = c[j];                                                        \
    s[j] = sj * step_cos[j] + cj * step_sin[j];                                         \
    c[j] = cj * step_cos[j] - sj * step_sin[j];

#define FPE_STEP_ARGS                                                                   \
    double *restrict s, double *restrict c,                                             \
    const double *restrict step_cos, const double *restrict step_sin, fpe_idx n

#define FPE_DEFINE_STEPS(T, SUFFIX)                                                     \
    FPE_DISPATCH                                                                        \
    static void fpe_step_store_##SUFFIX(T *restrict dst, fpe_idx stride, FPE_STEP_ARGS) \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) { FPE_ADVANCE_J dst[j] = (T)sj; }           \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) { FPE_ADVANCE_J dst[j * stride] = (T)sj; }  \
        }                                                                               \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_step_add_inplace_##SUFFIX(T *restrict x, fpe_idx stride,            \
                                              double scale, FPE_STEP_ARGS)              \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                FPE_ADVANCE_J x[j] = (T)((double)x[j] * scale + sj);                    \
            }                                                                           \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                FPE_ADVANCE_J                                                           \
                fpe_idx i = j * stride;                                                 \
                x[i] = (T)((double)x[i] * scale + sj);                                  \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_step_add_to_##SUFFIX(T *restrict dst, fpe_idx dst_stride,           \
                                         const T *restrict src, fpe_idx src_stride,     \
                                         double scale, FPE_STEP_ARGS)                   \
    {                                                                                   \
        if (dst_stride == 1 && src_stride == 1) {                                       \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                FPE_ADVANCE_J dst[j] = (T)((double)src[j] * scale + sj);                \
            }                                                                           \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                FPE_ADVANCE_J                                                           \
                dst[j * dst_stride] = (T)((double)src[j * src_stride] * scale + sj);    \
            }                                                                           \
        }                                                                               \
    }

FPE_DEFINE_STEPS(float, f32)
FPE_DEFINE_STEPS(double, f64)

/* Bandwidth probes: the same loops with a constant instead of a sinusoid,
 * compiled with the same flags and dispatch. They bound what any kernel that
 * reads and writes (or only writes) every element once can reach. */
#define FPE_DEFINE_PROBES(T, SUFFIX)                                                    \
    FPE_DISPATCH                                                                        \
    static void fpe_probe_add_##SUFFIX(T *restrict x, T value, fpe_idx n)              \
    {                                                                                   \
        for (fpe_idx j = 0; j < n; j++) x[j] += value;                                  \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_probe_fill_##SUFFIX(T *restrict x, T value, fpe_idx n)             \
    {                                                                                   \
        for (fpe_idx j = 0; j < n; j++) x[j] = value;                                   \
    }

FPE_DEFINE_PROBES(float, f32)
FPE_DEFINE_PROBES(double, f64)

#endif
