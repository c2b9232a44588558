/* Leaf loops of the fastpe kernels.
 *
 * Each loop walks one row of D columns with unit stride when it can, so the
 * compiler vectorises it. On x86-64 Linux with GCC every loop is cloned for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA) and the baseline, and the loader
 * picks the widest the CPU has: the wheel stays portable and still uses the
 * machine's vectors. Elsewhere the baseline clone is the only one.
 *
 * The sinusoid generator keeps, per frequency w_k, the state (s_k, c_k) =
 * (sin p w_k, cos p w_k) of the current position p; one state gives both the
 * sine and the cosine column of that frequency. The next position is one
 * rotation by w_k: s' = s cos w + c sin w, c' = c cos w - s sin w.
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

/* Where one row's columns go: frequency k's sine at element sin_off + k*ks,
 * its cosine at cos_off + k*ks (element units, column stride included). */
typedef struct {
    fpe_idx sin_off, cos_off, ks;
} fpe_cols;

/* Seed every frequency's state at position p from libm, in float64. */
static void fpe_seed(double *restrict s, double *restrict c, double p,
                     const double *restrict freq, fpe_idx n)
{
    for (fpe_idx k = 0; k < n; k++) {
        double a = p * freq[k];
        s[k] = sin(a);
        c[k] = cos(a);
    }
}

/* Advance every frequency's state by one position. */
FPE_DISPATCH
static void fpe_advance(double *restrict s, double *restrict c,
                        const double *restrict step_cos, const double *restrict step_sin, fpe_idx n)
{
    for (fpe_idx k = 0; k < n; k++) {
        double sk = s[k], ck = c[k];
        s[k] = sk * step_cos[k] + ck * step_sin[k];
        c[k] = ck * step_cos[k] - sk * step_sin[k];
    }
}

/* Fused step: emit frequency k's (sin, cos) into one row, then advance the
 * state one position, in a single pass so the state is read and written once
 * per row. Three loop shapes, so the common layouts vectorise: interleaved
 * columns (2k, 2k+1), two contiguous blocks, and anything strided. */
#define FPE_ADVANCE_K                                                                   \
    double sk = s[k], ck = c[k];                                                        \
    s[k] = sk * step_cos[k] + ck * step_sin[k];                                         \
    c[k] = ck * step_cos[k] - sk * step_sin[k];

#define FPE_STEP_SHAPES(EMIT)                                                           \
    if (d.ks == 2 && d.sin_off == 0 && d.cos_off == 1                                   \
        && r.ks == 2 && r.sin_off == 0 && r.cos_off == 1) {                             \
        for (fpe_idx k = 0; k < n; k++) {                                               \
            FPE_ADVANCE_K EMIT(2 * k, 2 * k, sk) EMIT(2 * k + 1, 2 * k + 1, ck)         \
        }                                                                               \
    } else if (d.ks == 1 && r.ks == 1) {                                                \
        for (fpe_idx k = 0; k < n; k++) {                                               \
            FPE_ADVANCE_K                                                               \
            EMIT(d.sin_off + k, r.sin_off + k, sk)                                      \
            EMIT(d.cos_off + k, r.cos_off + k, ck)                                      \
        }                                                                               \
    } else {                                                                            \
        for (fpe_idx k = 0; k < n; k++) {                                               \
            FPE_ADVANCE_K                                                               \
            EMIT(d.sin_off + k * d.ks, r.sin_off + k * r.ks, sk)                        \
            EMIT(d.cos_off + k * d.ks, r.cos_off + k * r.ks, ck)                        \
        }                                                                               \
    }

#define FPE_STEP_ARGS                                                                   \
    double *restrict s, double *restrict c,                                             \
    const double *restrict step_cos, const double *restrict step_sin, fpe_idx n

/* The three ways a row is emitted: store it (tables), add it to the row in
 * place, add it to a separate source row. The float64 encoding is rounded
 * once to the storage type, then x * scale + pe is formed in that type (one
 * fused multiply-add where the CPU has FMA): a float32 result is within half
 * an ulp of itself plus half an ulp of pe (<= 3e-8) of the exact sum. */
#define FPE_EMIT_STORE(di, si, v) dst[di] = (FPE_T)(v);
#define FPE_EMIT_ADD_INPLACE(di, si, v) dst[di] = dst[di] * sc + (FPE_T)(v);
#define FPE_EMIT_ADD_TO(di, si, v) dst[di] = src[si] * sc + (FPE_T)(v);

#define FPE_DEFINE_ROW_OPS(SUFFIX)                                                      \
    FPE_DISPATCH                                                                        \
    static void fpe_step_store_##SUFFIX(FPE_T *restrict dst, fpe_cols d, FPE_STEP_ARGS) \
    {                                                                                   \
        fpe_cols r = d;                                                                 \
        FPE_STEP_SHAPES(FPE_EMIT_STORE)                                                 \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_step_add_inplace_##SUFFIX(FPE_T *restrict dst, fpe_cols d,          \
                                              double scale, FPE_STEP_ARGS)              \
    {                                                                                   \
        const FPE_T sc = (FPE_T)scale;                                                  \
        fpe_cols r = d;                                                                 \
        FPE_STEP_SHAPES(FPE_EMIT_ADD_INPLACE)                                           \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_step_add_to_##SUFFIX(FPE_T *restrict dst, fpe_cols d,               \
                                         const FPE_T *restrict src, fpe_cols r,         \
                                         double scale, FPE_STEP_ARGS)                   \
    {                                                                                   \
        const FPE_T sc = (FPE_T)scale;                                                  \
        FPE_STEP_SHAPES(FPE_EMIT_ADD_TO)                                                \
    }                                                                                   \
    /* dst = pe over a whole row (pe in column order, in the storage type). */          \
    FPE_DISPATCH                                                                        \
    static void fpe_store_##SUFFIX(FPE_T *restrict dst, fpe_idx stride,                 \
                                   const FPE_T *restrict pe, fpe_idx n)                 \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) dst[j] = pe[j];                             \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) dst[j * stride] = pe[j];                    \
        }                                                                               \
    }

#define FPE_T float
FPE_DEFINE_ROW_OPS(f32)
#undef FPE_T
#define FPE_T double
FPE_DEFINE_ROW_OPS(f64)
#undef FPE_T

/* Whole rows from an encoding row pe already in column order: dst = dst *
 * scale + pe in place, or dst = src * scale + pe (src and dst disjoint: the
 * Python layer copies a partially overlapping input first). XT is the
 * storage type, PT the encoding row's (a learned table may differ from x),
 * WT the type the sum is formed in: the storage type when they agree (PE was
 * rounded to it once), float64 when they differ. */
#define FPE_DEFINE_ROW_ADDS(XT, PT, WT, SUFFIX)                                         \
    FPE_DISPATCH                                                                        \
    static void fpe_add_inplace_##SUFFIX(XT *restrict dst, fpe_idx stride,              \
                                         const PT *restrict pe, double scale, fpe_idx n)\
    {                                                                                   \
        const WT sc = (WT)scale;                                                        \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) dst[j] = (XT)((WT)dst[j] * sc + (WT)pe[j]); \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                fpe_idx i = j * stride;                                                 \
                dst[i] = (XT)((WT)dst[i] * sc + (WT)pe[j]);                             \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_add_to_##SUFFIX(XT *restrict dst, fpe_idx dst_stride,               \
                                    const XT *restrict src, fpe_idx src_stride,         \
                                    const PT *restrict pe, double scale, fpe_idx n)     \
    {                                                                                   \
        const WT sc = (WT)scale;                                                        \
        if (dst_stride == 1 && src_stride == 1) {                                       \
            for (fpe_idx j = 0; j < n; j++) dst[j] = (XT)((WT)src[j] * sc + (WT)pe[j]); \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++)                                             \
                dst[j * dst_stride] = (XT)((WT)src[j * src_stride] * sc + (WT)pe[j]);   \
        }                                                                               \
    }

FPE_DEFINE_ROW_ADDS(float, float, float, f32)
FPE_DEFINE_ROW_ADDS(double, double, double, f64)
FPE_DEFINE_ROW_ADDS(float, double, double, f32_f64)
FPE_DEFINE_ROW_ADDS(double, float, double, f64_f32)

/* Rotary embeddings: rotate channel pairs (a, b) of one row by the angles
 * whose cosines and sines are cos_row[k], sin_row[k]:
 *   a' = a cos - b sin,  b' = b cos + a sin,
 * pair k's channels at first_off + k*ks and second_off + k*ks (the sin_off /
 * cos_off fields of fpe_cols). Formed in float64, rounded once. */
#define FPE_ROTATE_PAIR(A_IN, B_IN, A_OUT, B_OUT)                                       \
    {                                                                                   \
        double va_ = (double)(A_IN), vb_ = (double)(B_IN);                              \
        double ck_ = cos_row[k], sk_ = sin_row[k];                                      \
        A_OUT = (FPE_T)(va_ * ck_ - vb_ * sk_);                                         \
        B_OUT = (FPE_T)(vb_ * ck_ + va_ * sk_);                                         \
    }

/* The pair streams get their own restrict pointers (they touch disjoint
 * channels), so the compiler vectorises at full width without alias checks. */
#define FPE_DEFINE_ROTATE(SUFFIX)                                                       \
    FPE_DISPATCH                                                                        \
    static void fpe_rotate_to_##SUFFIX(FPE_T *restrict dst, fpe_cols d,                 \
                                       const FPE_T *restrict src, fpe_cols r,           \
                                       const double *restrict cos_row,                  \
                                       const double *restrict sin_row, fpe_idx n)       \
    {                                                                                   \
        if (d.ks == 1 && r.ks == 1) {                                                   \
            FPE_T *restrict da = dst + d.sin_off, *restrict db = dst + d.cos_off;       \
            const FPE_T *restrict sa = src + r.sin_off, *restrict sb = src + r.cos_off; \
            for (fpe_idx k = 0; k < n; k++) FPE_ROTATE_PAIR(sa[k], sb[k], da[k], db[k]) \
        } else {                                                                        \
            for (fpe_idx k = 0; k < n; k++)                                             \
                FPE_ROTATE_PAIR(src[r.sin_off + k * r.ks], src[r.cos_off + k * r.ks],   \
                                dst[d.sin_off + k * d.ks], dst[d.cos_off + k * d.ks])   \
        }                                                                               \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_rotate_inplace_##SUFFIX(FPE_T *restrict dst, fpe_cols d,            \
                                            const double *restrict cos_row,             \
                                            const double *restrict sin_row, fpe_idx n)  \
    {                                                                                   \
        if (d.ks == 1) {                                                                \
            FPE_T *restrict a = dst + d.sin_off, *restrict b = dst + d.cos_off;         \
            for (fpe_idx k = 0; k < n; k++) FPE_ROTATE_PAIR(a[k], b[k], a[k], b[k])     \
        } else if (d.ks == 2 && d.cos_off == d.sin_off + 1) {                           \
            FPE_T *restrict p = dst + d.sin_off;                                        \
            for (fpe_idx k = 0; k < n; k++)                                             \
                FPE_ROTATE_PAIR(p[2 * k], p[2 * k + 1], p[2 * k], p[2 * k + 1])         \
        } else {                                                                        \
            for (fpe_idx k = 0; k < n; k++)                                             \
                FPE_ROTATE_PAIR(dst[d.sin_off + k * d.ks], dst[d.cos_off + k * d.ks],   \
                                dst[d.sin_off + k * d.ks], dst[d.cos_off + k * d.ks])   \
        }                                                                               \
    }

#define FPE_T float
FPE_DEFINE_ROTATE(f32)
#undef FPE_T
#define FPE_T double
FPE_DEFINE_ROTATE(f64)
#undef FPE_T

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
