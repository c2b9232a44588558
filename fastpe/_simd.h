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
 * Seeds are the exact angles' sines and cosines (fpe_seed) at canonical
 * points (multiples of 256, see _kernels.pyx), so rounding cannot
 * accumulate past ~2e-13. fpe_advance and
 * the fused steps rotate with the same expression, so a row reached by either
 * has the same bits.
 */
#ifndef FASTPE_SIMD_H
#define FASTPE_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_modes.h"

typedef ptrdiff_t fpe_idx;

/* Each extension uses only some of these loops. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

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

/* 16-bit storage: IEEE float16 and bfloat16, held as their bits. Values are
 * read exactly (16 bits -> float32 -> float64), computed in float64, and
 * rounded once from float64 to nearest even, straight from the float64 bits.
 * Integer and float operations only, branch-free, so every compiler
 * vectorises them and no instruction-set extension (F16C, AVX512-FP16) is
 * assumed. They need IEEE round-to-nearest arithmetic with subnormals (no
 * flush-to-zero). */
typedef uint16_t fpe_half;

static inline uint32_t fpe_bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float fpe_float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint64_t fpe_bits64_of(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline double fpe_double_of(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

static inline float fpe_f16_to_f32(fpe_half h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, a = h & 0x7fffu;
    /* Exponent and mantissa moved into float32's fields are off by 2**112:
     * one exact multiply rebiases normals and normalises subnormals. */
    uint32_t m = fpe_bits_of(fpe_float_of(a << 13) * 0x1p112f);
    m = a >= 0x7c00u ? (a << 13) | 0x7f800000u : m; /* infinities and NaNs */
    return fpe_float_of(m | sign);
}

static inline float fpe_bf16_to_f32(fpe_half h) { return fpe_float_of((uint32_t)h << 16); }

/* float64 -> a 16-bit format with exponent bias BIAS and MANT mantissa bits,
 * nearest even. OVERFLOW is the smallest magnitude that rounds to infinity,
 * SUB_MAGIC the power of two whose float64 ulp is the format's subnormal
 * unit, INF and QNAN the format's infinity and quiet NaN. */
#define FPE_DEFINE_NARROW(NAME, BIAS, MANT, OVERFLOW, SUB_MAGIC, INF, QNAN)              \
    static inline fpe_half NAME(double d)                                               \
    {                                                                                   \
        uint64_t u = fpe_bits64_of(d), sign = (u >> 48) & 0x8000u;                      \
        int64_t a = (int64_t)(u & 0x7fffffffffffffffull);                               \
        const int shift = 52 - (MANT);                                                  \
        /* Normal results: rebias the exponent and round the dropped bits to */        \
        /* nearest even; a carry moves into the exponent. */                            \
        uint64_t normal = ((uint64_t)a - ((uint64_t)(1023 - (BIAS)) << 52)              \
                           + ((1ull << (shift - 1)) - 1u) + (((uint64_t)a >> shift) & 1u)) \
                          >> shift;                                                     \
        /* Subnormal results: adding SUB_MAGIC puts the subnormal unit at */           \
        /* float64's last bit, so the float addition does the rounding. */              \
        uint64_t subnormal = fpe_bits64_of(fpe_double_of((uint64_t)a) + (SUB_MAGIC))    \
                             - fpe_bits64_of(SUB_MAGIC);                                \
        uint64_t r = a < (int64_t)((uint64_t)(1023 - (BIAS) + 1) << 52) ? subnormal : normal; \
        r = a >= (int64_t)fpe_bits64_of(OVERFLOW) ? (INF) : r;                          \
        r = a > (int64_t)0x7ff0000000000000ll ? (QNAN) : r; /* NaN stays NaN */         \
        return (fpe_half)(r | sign);                                                    \
    }

FPE_DEFINE_NARROW(fpe_f64_to_f16, 15, 10, 65520.0, 0x1p28, 0x7c00u, 0x7e00u)
FPE_DEFINE_NARROW(fpe_f64_to_bf16, 127, 7, 0x1.ffp127, 0x1p-81, 0x7f80u, 0x7fc0u)

/* x + pe, two values of one 16-bit kind (FPE_STORAGE_F16 or _BF16): their
 * float64 sum (exact) rounded once. */
static inline fpe_half fpe_same_sum(int kind, fpe_half x, fpe_half pe)
{
    if (kind == FPE_STORAGE_F16) return fpe_f64_to_f16((double)fpe_f16_to_f32(x) + (double)fpe_f16_to_f32(pe));
    return fpe_f64_to_bf16((double)fpe_bf16_to_f32(x) + (double)fpe_bf16_to_f32(pe));
}

/* How each storage type is read into, and written from, the type a sum is
 * formed in. */
#define FPE_LOAD_NATIVE(WT, v) ((WT)(v))
#define FPE_STORE_NATIVE(XT, v) ((XT)(v))
#define FPE_LOAD_F16(WT, v) ((WT)fpe_f16_to_f32(v))
#define FPE_STORE_F16(XT, v) fpe_f64_to_f16(v)
#define FPE_LOAD_BF16(WT, v) ((WT)fpe_bf16_to_f32(v))
#define FPE_STORE_BF16(XT, v) fpe_f64_to_bf16(v)

/* Seeds. The frequency w_k is the double-double freq[k] + freq_lo[k]
 * (fastpe._double_double), and the seed is sin and cos of the exact angle
 * p * w_k, to within 1e-14: the product is split without rounding,
 * p * freq[k] = a + a_err (one fused multiply-add), plus t = p * freq_lo[k];
 * the sum is reduced modulo 2 pi, held as three float64 parts, by fused
 * multiply-adds (each rounds once, to an absolute error below 2e-15 while
 * |a| < FPE_REDUCE_LIMIT), and libm takes the sine and cosine of the small
 * remainder. Larger angles (only frequencies above 4 at the largest
 * positions) go to fpe_seed_far. fma() is exact on every C99 platform: an
 * instruction on x86-64-v3 and later, a libm routine on the baseline. */
#define FPE_TWO_PI_1 0x1.921fb54442d18p+2
#define FPE_TWO_PI_2 0x1.1a62633145c07p-52
#define FPE_TWO_PI_3 -0x1.f1976b7ed8fbcp-108
#define FPE_INV_TWO_PI 0x1.45f306dc9c883p-3
#define FPE_REDUCE_LIMIT 0x1p55

/* sin and cos of a sum of parts, by libm on each part (exact for any float64)
 * and the angle-addition formulas: an error of about two ulps per part. */
static void fpe_sincos_of_sum(const double *parts, int n_parts, double *s, double *c)
{
    double sk = sin(parts[0]), ck = cos(parts[0]);
    for (int i = 1; i < n_parts; i++) {
        double si = sin(parts[i]), ci = cos(parts[i]);
        double sn = sk * ci + ck * si;
        ck = ck * ci - sk * si;
        sk = sn;
    }
    *s = sk;
    *c = ck;
}

/* A seed whose angle a + a_err + p * lo is too large for the reduction of
 * fpe_seed: its four parts (two exact products) go to libm one by one. */
static void fpe_seed_far(double a, double a_err, double p, double lo, double *s, double *c)
{
    double t = p * lo;
    double parts[4] = {a, a_err, t, fma(p, lo, -t)};
    fpe_sincos_of_sum(parts, 4, s, c);
}

/* Seed every frequency's state at position p. */
FPE_DISPATCH
static void fpe_seed(double *restrict s, double *restrict c, double p,
                     const double *restrict freq, const double *restrict freq_lo, fpe_idx n)
{
    for (fpe_idx k = 0; k < n; k++) {
        double a = p * freq[k];
        double a_err = fma(p, freq[k], -a); /* p * freq[k] == a + a_err */
        if (fabs(a) < FPE_REDUCE_LIMIT) {
            double m = nearbyint(a * FPE_INV_TWO_PI);
            double r = fma(-m, FPE_TWO_PI_1, a);
            r = fma(-m, FPE_TWO_PI_2, r);
            r = fma(-m, FPE_TWO_PI_3, r);
            r += a_err + p * freq_lo[k];
            s[k] = sin(r);
            c[k] = cos(r);
        } else {
            fpe_seed_far(a, a_err, p, freq_lo[k], s + k, c + k);
        }
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

/* Advance every frequency's state by `steps` positions, with the same
 * rotation as fpe_advance (hence the same bits), the state of 32 frequencies
 * held in registers across the steps instead of loaded and stored at each:
 * eight independent rotation chains hide the multiply-add latency. */
/* GCC's vector extensions (vector_size; clang has them too, MSVC not): the
 * code that needs them has a scalar fallback with the same bits, which
 * FASTPE_NO_VECTOR_EXTENSIONS selects on any compiler (the tests build it). */
#if defined(__GNUC__) && !defined(FASTPE_NO_VECTOR_EXTENSIONS)
#define FPE_VECTOR_EXTENSIONS 1
typedef double fpe_v8d __attribute__((vector_size(64), aligned(8)));
#else
#define FPE_VECTOR_EXTENSIONS 0
#endif
#define FPE_SKIP_LANES 4

FPE_DISPATCH
static void fpe_skip(double *restrict s, double *restrict c,
                     const double *restrict step_cos, const double *restrict step_sin,
                     fpe_idx n, fpe_idx steps)
{
    fpe_idx k = 0;
#if FPE_VECTOR_EXTENSIONS
    for (; k + 8 * FPE_SKIP_LANES <= n; k += 8 * FPE_SKIP_LANES) {
        fpe_v8d vs[FPE_SKIP_LANES], vc[FPE_SKIP_LANES], cw[FPE_SKIP_LANES], sw[FPE_SKIP_LANES];
        memcpy(vs, s + k, sizeof vs);
        memcpy(vc, c + k, sizeof vc);
        memcpy(cw, step_cos + k, sizeof cw);
        memcpy(sw, step_sin + k, sizeof sw);
        for (fpe_idx i = 0; i < steps; i++) {
            for (int j = 0; j < FPE_SKIP_LANES; j++) {
                fpe_v8d sk = vs[j], ck = vc[j];
                vs[j] = sk * cw[j] + ck * sw[j];
                vc[j] = ck * cw[j] - sk * sw[j];
            }
        }
        memcpy(s + k, vs, sizeof vs);
        memcpy(c + k, vc, sizeof vc);
    }
#endif
    /* The rest (all of it without vector extensions): the same rotation, row by row. */
    for (fpe_idx i = 0; i < steps && k < n; i++)
        fpe_advance(s + k, c + k, step_cos + k, step_sin + k, n - k);
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
    }

/* One column of a row, per mode (FPE_MODE_*, _modes.h), formed as the row
 * steps and the row applies form it: the encoding rounded once to the
 * storage type, then x * scale + pe in that type, in a dispatched clone like
 * theirs so the multiply-add is contracted alike. The columns outside the
 * sine/cosine pairs (a lone sine of an odd width, zero columns) go through it. */
#define FPE_DEFINE_EMIT_COLUMN(SUFFIX)                                                  \
    FPE_DISPATCH                                                                        \
    static void fpe_emit_column_##SUFFIX(FPE_T *dst, const FPE_T *src, double scale,   \
                                         double v, int mode)                            \
    {                                                                                   \
        const FPE_T sc = (FPE_T)scale;                                                  \
        if (mode == FPE_MODE_STORE) *dst = (FPE_T)v;                                    \
        else if (mode == FPE_MODE_ADD_INPLACE) *dst = *dst * sc + (FPE_T)v;             \
        else *dst = *src * sc + (FPE_T)v;                                               \
    }

#define FPE_T float
FPE_DEFINE_ROW_OPS(f32)
FPE_DEFINE_EMIT_COLUMN(f32)
#undef FPE_T
#define FPE_T double
FPE_DEFINE_ROW_OPS(f64)
FPE_DEFINE_EMIT_COLUMN(f64)
#undef FPE_T

/* Fused steps over several consecutive rows: the state of a strip of
 * 8 * FPE_STRIP frequencies stays in registers while it is emitted into a
 * block of up to FPE_ROW_BLOCK rows and rotated between them, so it is loaded
 * and stored once per block instead of once per row. Each frequency goes
 * through the operations of the one-row step above, written as the same
 * expressions (so the compiler contracts them into the same multiply-adds):
 * the bits are the same. A block is written strip by strip, FPE_ROW_BLOCK
 * sequential streams that the prefetcher follows. Rows lie dst_rs (src_rs)
 * bytes apart. The interleaved and two-block layouts take the register path;
 * other layouts, and the frequencies past the last whole strip, take the
 * one-row step row by row, as do compilers without GCC's vector extensions
 * and __builtin_shufflevector. Measured on a 2-core AVX-512 machine (float32,
 * 1024 columns): 4, 8 and 16 rows per block within noise of each other with
 * 32 frequencies per strip; 4 rows of 32 frequencies lost to the one-row step;
 * 16 frequencies per strip gained less than 32. A block's strips are all
 * written before the next block's (not one strip down all the rows, which
 * touched each row in 256-byte pieces a whole tile apart): 18% less CPU time
 * on a (1, 8192, 1024) float32 add, 9% on an (8192, 4096) table, measured as
 * single-threaded calls interleaved in one process; 4 rows per block then
 * within noise of 8. */
#ifndef FPE_ROW_BLOCK
#define FPE_ROW_BLOCK 8
#endif
#ifndef FPE_STRIP
#define FPE_STRIP 4
#endif

#if FPE_VECTOR_EXTENSIONS && ((!defined(__clang__) && __GNUC__ >= 12) || defined(__clang__))
#define FPE_ROWS_VECTOR 1
typedef float fpe_v8f __attribute__((vector_size(32), aligned(4)));
typedef float fpe_v16f __attribute__((vector_size(64), aligned(4)));
#else
#define FPE_ROWS_VECTOR 0
#endif

#define FPE_ROW_AT(T, base, rs, t) ((T *)((char *)(base) + (t) * (rs)))

/* Ask for the cache line at p ahead of its use, for writing, into L1: for
 * rows visited through a table of offsets, which the hardware prefetchers
 * cannot guess. Nothing where the compiler has no prefetch builtin. */
#if defined(__GNUC__)
#define fpe_prefetch_write(p) __builtin_prefetch((const void *)(p), 1, 3)
#else
#define fpe_prefetch_write(p) ((void)(p))
#endif

/* One vector pe of encodings (type VT) into the row elements at dp (src: sp),
 * with a prefetch of the same elements FPE_PREFETCH_ROWS rows further on.
 * Without it the blocked rows are slower than the one-row step: the
 * emission leaves too few misses of x in flight for the latency to the last
 * level cache, and the hardware prefetchers do not make up for it. Into L2
 * (locality 2): L1's few fill buffers would cap the misses in flight. A
 * prefetch past the end of the array is harmless (it never faults). */
#ifndef FPE_PREFETCH_ROWS
#define FPE_PREFETCH_ROWS 16
#endif
#define FPE_PREFETCH(p, rs) __builtin_prefetch((const char *)(p) + FPE_PREFETCH_ROWS * (rs), 0, 2);
#define FPE_VEMIT_STORE(VT, dp, sp, pe)                                                 \
    { FPE_PREFETCH(dp, dst_rs) memcpy(dp, &(pe), sizeof(VT)); }
#define FPE_VEMIT_ADD_INPLACE(VT, dp, sp, pe)                                           \
    {                                                                                   \
        FPE_PREFETCH(dp, dst_rs)                                                        \
        VT x_;                                                                          \
        memcpy(&x_, dp, sizeof(VT));                                                    \
        x_ = x_ * sc + (pe);                                                            \
        memcpy(dp, &x_, sizeof(VT));                                                    \
    }
#define FPE_VEMIT_ADD_TO(VT, dp, sp, pe)                                                \
    {                                                                                   \
        FPE_PREFETCH(sp, src_rs)                                                        \
        FPE_PREFETCH(dp, dst_rs)                                                        \
        VT x_;                                                                          \
        memcpy(&x_, sp, sizeof(VT));                                                    \
        x_ = x_ * sc + (pe);                                                            \
        memcpy(dp, &x_, sizeof(VT));                                                    \
    }

/* Eight frequencies' (sin, cos) in one row, rounded to the storage type:
 * interleaved (sin k, cos k, sin k+1, ...) at dp, or as two blocks. */
#define FPE_VINTERLEAVED_f32(EMIT, dp, sp, sk, ck)                                      \
    {                                                                                   \
        fpe_v8f fs_ = __builtin_convertvector(sk, fpe_v8f);                             \
        fpe_v8f fc_ = __builtin_convertvector(ck, fpe_v8f);                             \
        fpe_v16f pe_ = __builtin_shufflevector(fs_, fc_, 0, 8, 1, 9, 2, 10, 3, 11,      \
                                               4, 12, 5, 13, 6, 14, 7, 15);             \
        EMIT(fpe_v16f, (dp), (sp), pe_)                                                 \
    }
#define FPE_VINTERLEAVED_f64(EMIT, dp, sp, sk, ck)                                      \
    {                                                                                   \
        fpe_v8d lo_ = __builtin_shufflevector(sk, ck, 0, 8, 1, 9, 2, 10, 3, 11);        \
        fpe_v8d hi_ = __builtin_shufflevector(sk, ck, 4, 12, 5, 13, 6, 14, 7, 15);      \
        EMIT(fpe_v8d, (dp), (sp), lo_)                                                  \
        EMIT(fpe_v8d, (dp) + 8, (sp) + 8, hi_)                                          \
    }
#define FPE_VBLOCK_f32(EMIT, dp, sp, v)                                                 \
    { fpe_v8f f_ = __builtin_convertvector(v, fpe_v8f); EMIT(fpe_v8f, (dp), (sp), f_) }
#define FPE_VBLOCK_f64(EMIT, dp, sp, v) EMIT(fpe_v8d, (dp), (sp), v)

/* The whole strips of frequencies from 0 over all `rows` rows, a block of
 * rows at a time, every strip of a block before the next block (each
 * frequency still steps row after row, so the bits do not depend on the
 * order); leaves k at the first frequency past them. EMIT_ROW(j, t) emits
 * vector j of the strip into row t. */
#define FPE_STRIPS(EMIT_ROW, EMIT)                                                      \
    {                                                                                   \
        const fpe_idx k_end = n - n % (8 * FPE_STRIP);                                  \
        for (fpe_idx t0 = 0; t0 < rows; t0 += FPE_ROW_BLOCK) {                          \
            fpe_idx t1 = rows - t0 < FPE_ROW_BLOCK ? rows : t0 + FPE_ROW_BLOCK;         \
            for (k = 0; k < k_end; k += 8 * FPE_STRIP) {                                \
                fpe_v8d vs[FPE_STRIP], vc[FPE_STRIP], cw[FPE_STRIP], sw[FPE_STRIP];     \
                memcpy(vs, s + k, sizeof vs);                                           \
                memcpy(vc, c + k, sizeof vc);                                           \
                memcpy(cw, step_cos + k, sizeof cw);                                    \
                memcpy(sw, step_sin + k, sizeof sw);                                    \
                for (fpe_idx t = t0; t < t1; t++) {                                     \
                    for (int j = 0; j < FPE_STRIP; j++) {                               \
                        fpe_v8d sk = vs[j], ck = vc[j];                                 \
                        EMIT_ROW(EMIT, j, t)                                            \
                        vs[j] = sk * cw[j] + ck * sw[j];                                \
                        vc[j] = ck * cw[j] - sk * sw[j];                                \
                    }                                                                   \
                }                                                                       \
                memcpy(s + k, vs, sizeof vs);                                           \
                memcpy(c + k, vc, sizeof vc);                                           \
            }                                                                           \
        }                                                                               \
        k = k_end;                                                                      \
    }

#if FPE_ROWS_VECTOR
#define FPE_ROW_INTERLEAVED(EMIT, j, t)                                                 \
    FPE_VINTERLEAVE(EMIT, FPE_ROW_AT(FPE_T, dst, dst_rs, t) + 2 * k + 16 * j,      \
                    FPE_ROW_AT(const FPE_T, src, src_rs, t) + 2 * k + 16 * j, sk, ck)
#define FPE_ROW_BLOCKS(EMIT, j, t)                                                          \
    {                                                                                   \
        FPE_T *dp_ = FPE_ROW_AT(FPE_T, dst, dst_rs, t) + k + 8 * j;                     \
        const FPE_T *sp_ = FPE_ROW_AT(const FPE_T, src, src_rs, t) + k + 8 * j;         \
        FPE_VBLOCK(EMIT, dp_ + d.sin_off, sp_ + r.sin_off, sk)                          \
        FPE_VBLOCK(EMIT, dp_ + d.cos_off, sp_ + r.cos_off, ck)                          \
        (void)sp_;                                                                      \
    }
#define FPE_ROWS_VECTOR_SHAPES(EMIT)                                                    \
    if (d.ks == 2 && d.sin_off == 0 && d.cos_off == 1                                   \
        && r.ks == 2 && r.sin_off == 0 && r.cos_off == 1) {                             \
        FPE_STRIPS(FPE_ROW_INTERLEAVED, EMIT)                                                 \
    } else if (d.ks == 1 && r.ks == 1) {                                                \
        FPE_STRIPS(FPE_ROW_BLOCKS, EMIT)                                                      \
    }
#else
#define FPE_ROWS_VECTOR_SHAPES(EMIT)
#endif

#define FPE_ROWS_ARGS                                                                   \
    fpe_idx rows, double *restrict s, double *restrict c,                               \
    const double *restrict step_cos, const double *restrict step_sin, fpe_idx n
#define FPE_ROWS_REST(STEP, ...)                                                        \
    if (k < n)                                                                          \
        for (fpe_idx t = 0; t < rows; t++)                                              \
            STEP(__VA_ARGS__, s + k, c + k, step_cos + k, step_sin + k, n - k);

#define FPE_DEFINE_ROWS(SUFFIX)                                                         \
    FPE_DISPATCH                                                                        \
    static void fpe_rows_store_##SUFFIX(FPE_T *dst, fpe_idx dst_rs, fpe_cols d,         \
                                        FPE_ROWS_ARGS)                                  \
    {                                                                                   \
        const FPE_T *src = dst;                                                         \
        const fpe_idx src_rs = dst_rs;                                                  \
        const fpe_cols r = d;                                                           \
        fpe_idx k = 0;                                                                  \
        (void)src; (void)src_rs; (void)r;                                               \
        FPE_ROWS_VECTOR_SHAPES(FPE_VEMIT_STORE)                                         \
        FPE_ROWS_REST(fpe_step_store_##SUFFIX,                                          \
                      FPE_ROW_AT(FPE_T, dst, dst_rs, t) + k * d.ks, d)                  \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_rows_add_inplace_##SUFFIX(FPE_T *dst, fpe_idx dst_rs, fpe_cols d,   \
                                              double scale, FPE_ROWS_ARGS)              \
    {                                                                                   \
        const FPE_T sc = (FPE_T)scale;                                                  \
        const FPE_T *src = dst;                                                         \
        const fpe_idx src_rs = dst_rs;                                                  \
        const fpe_cols r = d;                                                           \
        fpe_idx k = 0;                                                                  \
        (void)src; (void)src_rs; (void)r; (void)sc;                                     \
        FPE_ROWS_VECTOR_SHAPES(FPE_VEMIT_ADD_INPLACE)                                   \
        FPE_ROWS_REST(fpe_step_add_inplace_##SUFFIX,                                    \
                      FPE_ROW_AT(FPE_T, dst, dst_rs, t) + k * d.ks, d, scale)           \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_rows_add_to_##SUFFIX(FPE_T *dst, fpe_idx dst_rs, fpe_cols d,        \
                                         const FPE_T *src, fpe_idx src_rs, fpe_cols r,  \
                                         double scale, FPE_ROWS_ARGS)                   \
    {                                                                                   \
        const FPE_T sc = (FPE_T)scale;                                                  \
        fpe_idx k = 0;                                                                  \
        (void)sc;                                                                       \
        FPE_ROWS_VECTOR_SHAPES(FPE_VEMIT_ADD_TO)                                        \
        FPE_ROWS_REST(fpe_step_add_to_##SUFFIX,                                         \
                      FPE_ROW_AT(FPE_T, dst, dst_rs, t) + k * d.ks, d,                  \
                      FPE_ROW_AT(const FPE_T, src, src_rs, t) + k * r.ks, r, scale)     \
    }

#define FPE_T float
#define FPE_VINTERLEAVE FPE_VINTERLEAVED_f32
#define FPE_VBLOCK FPE_VBLOCK_f32
FPE_DEFINE_ROWS(f32)
#undef FPE_T
#undef FPE_VINTERLEAVE
#undef FPE_VBLOCK
#define FPE_T double
#define FPE_VINTERLEAVE FPE_VINTERLEAVED_f64
#define FPE_VBLOCK FPE_VBLOCK_f64
FPE_DEFINE_ROWS(f64)
#undef FPE_T
#undef FPE_VINTERLEAVE
#undef FPE_VBLOCK

/* The one-row and blocked steps with the mode as an argument (FPE_MODE_*):
 * src and r are read by FPE_MODE_ADD_TO only, scale by the adds. */
#define FPE_DEFINE_STEP_MODES(SUFFIX)                                                   \
    static inline void fpe_step_##SUFFIX(FPE_T *dst, fpe_cols d, const FPE_T *src,      \
                                         fpe_cols r, double scale, int mode,            \
                                         FPE_STEP_ARGS)                                 \
    {                                                                                   \
        if (mode == FPE_MODE_STORE)                                                     \
            fpe_step_store_##SUFFIX(dst, d, s, c, step_cos, step_sin, n);               \
        else if (mode == FPE_MODE_ADD_INPLACE)                                          \
            fpe_step_add_inplace_##SUFFIX(dst, d, scale, s, c, step_cos, step_sin, n);  \
        else                                                                            \
            fpe_step_add_to_##SUFFIX(dst, d, src, r, scale, s, c, step_cos, step_sin, n); \
    }                                                                                   \
    static inline void fpe_rows_##SUFFIX(FPE_T *dst, fpe_idx dst_rs, fpe_cols d,        \
                                         const FPE_T *src, fpe_idx src_rs, fpe_cols r,  \
                                         double scale, int mode, FPE_ROWS_ARGS)         \
    {                                                                                   \
        if (mode == FPE_MODE_STORE)                                                     \
            fpe_rows_store_##SUFFIX(dst, dst_rs, d, rows, s, c, step_cos, step_sin, n); \
        else if (mode == FPE_MODE_ADD_INPLACE)                                          \
            fpe_rows_add_inplace_##SUFFIX(dst, dst_rs, d, scale, rows, s, c, step_cos,  \
                                          step_sin, n);                                 \
        else                                                                            \
            fpe_rows_add_to_##SUFFIX(dst, dst_rs, d, src, src_rs, r, scale, rows, s, c, \
                                     step_cos, step_sin, n);                            \
    }

#define FPE_T float
FPE_DEFINE_STEP_MODES(f32)
#undef FPE_T
#define FPE_T double
FPE_DEFINE_STEP_MODES(f64)
#undef FPE_T

/* Whole rows from an encoding row pe already in column order: dst = pe,
 * dst = dst * scale + pe in place, or dst = src * scale + pe (src and dst
 * disjoint: the Python layer copies a partially overlapping input first).
 * XT is the storage type, PT the encoding row's (a learned table may differ
 * from x), WT the type the sum is formed in: the storage type when they agree
 * (PE was rounded to it once), float64 when they differ and for the 16-bit
 * types. LOAD and STORE convert between XT and WT. */
#define FPE_DEFINE_ROW_ADDS(XT, PT, WT, SUFFIX, LOAD, STORE)                            \
    FPE_DISPATCH                                                                        \
    static void fpe_store_##SUFFIX(XT *restrict dst, fpe_idx stride,                    \
                                   const PT *restrict pe, fpe_idx n)                    \
    {                                                                                   \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++) dst[j] = STORE(XT, (WT)pe[j]);              \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) dst[j * stride] = STORE(XT, (WT)pe[j]);     \
        }                                                                               \
    }                                                                                   \
    FPE_DISPATCH                                                                        \
    static void fpe_add_inplace_##SUFFIX(XT *restrict dst, fpe_idx stride,              \
                                         const PT *restrict pe, double scale, fpe_idx n)\
    {                                                                                   \
        const WT sc = (WT)scale;                                                        \
        if (stride == 1) {                                                              \
            for (fpe_idx j = 0; j < n; j++)                                             \
                dst[j] = STORE(XT, LOAD(WT, dst[j]) * sc + (WT)pe[j]);                  \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++) {                                           \
                fpe_idx i = j * stride;                                                 \
                dst[i] = STORE(XT, LOAD(WT, dst[i]) * sc + (WT)pe[j]);                  \
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
            for (fpe_idx j = 0; j < n; j++)                                             \
                dst[j] = STORE(XT, LOAD(WT, src[j]) * sc + (WT)pe[j]);                  \
        } else {                                                                        \
            for (fpe_idx j = 0; j < n; j++)                                             \
                dst[j * dst_stride] = STORE(XT, LOAD(WT, src[j * src_stride]) * sc      \
                                                    + (WT)pe[j]);                       \
        }                                                                               \
    }

/* Rows from prepared encodings. The rows of float64 encodings that several
 * rows of x share are prepared once (fpe_half_prepare): each pe as two
 * float32, hi = fl32(pe) and nlo = fl32(hi - pe) (hi - pe is exact in
 * float64), hi a NaN where pe is neither 0 nor between FPE_PREPARED_MIN and
 * FPE_PREPARED_MAX in magnitude (nlo is then normal or 0, and nothing
 * overflows). An element then takes float32 operations only:
 * y = fl32(fl32(x * scale + hi) - nlo), one fused multiply-add and a
 * subtraction, with x * scale exact in float32 (fpe_half_prepared). y lies
 * within 1.5 float32 ulps (of y) of the exact S = x * scale + pe:
 *   - where x * scale + hi is exact (Sterbenz: wherever they cancel), the
 *     sum is 0 or a multiple of ulp(hi) / 2 at least twice |nlo| (half an
 *     ulp only at hi = 2**e, where a pe below it is within a quarter), so
 *     |nlo| <= |y|: nlo's rounding errs by half an ulp of y at most, the
 *     subtraction by another half;
 *   - elsewhere |x * scale + hi| >= |hi| / 2, some 2**23 times |nlo|: the
 *     multiply-add errs by an ulp of y at most, the subtraction by half, nlo
 *     by 2**-23 of one.
 * So y rounded to nearest 16-bit value is S correctly rounded, and also
 * fl64(S) correctly rounded (the float64 rows' rule; fl64(S) is nearer S
 * still), unless a 16-bit midpoint lies within 1.5 ulps of y, i.e. y's bits
 * below the 16-bit precision are within one unit of the midpoint pattern (no
 * midpoint lies that near a power of two). The loops flag lanes within
 * FPE_PREPARED_WINDOW units, twice that, and also every NaN and, for
 * float16, every |y| below 2**-14 (the rounding position moves there), and
 * form those again as the float64 rows do: about 5e-4 of random float16
 * lanes, 1e-4 of bfloat16 ones. Every level gives the float64 rows' bits
 * (tests/dtypes checks all 65536 values of x against near-ties). */
#define FPE_PREPARED_WINDOW 2
#define FPE_PREPARED_MIN 0x1p-60f
#define FPE_PREPARED_MAX 0x1p60f

/* 16-bit rows from float64 encodings with AVX-512, or AVX2 with F16C (GCC on
 * x86-64; the widest the CPU has is chosen at run time; plain target
 * attributes, not target_clones, so sanitized builds check them too): the
 * same float64 sum, narrowed to float32 by truncation with the last bit set
 * when inexact (round to odd, which keeps the next rounding correct), then
 * rounded to 16 bits by the hardware (float16) or by integer arithmetic
 * (bfloat16). The same bits as the portable loops; the tests run every
 * level (set_half_simd). Rows go 8 elements at a time, the tail through the
 * portable loop. A fourth level, for CPUs with AVX512-BF16, narrows
 * bfloat16 with its instruction (fpe_apply_bf16i). */
#define FPE_HALF_PORTABLE 0
#define FPE_HALF_AVX2 1
#define FPE_HALF_AVX512 2
#define FPE_HALF_AVX512BF16 3
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FASTPE_NO_DISPATCH)
#include <immintrin.h>
#define FPE_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,f16c,fma")))
#define FPE_AVX2 __attribute__((target("avx2,f16c,fma")))
#define FPE_AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,f16c,fma")))

/* The implementation in use (FPE_HALF_*): set at import by
 * fpe_half_simd_init, and by tests. */
static int fpe_half_level = FPE_HALF_PORTABLE;

/* The widest implementation this CPU runs. */
static int fpe_half_best(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c") || !__builtin_cpu_supports("fma")) return FPE_HALF_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return __builtin_cpu_supports("avx512bf16") ? FPE_HALF_AVX512BF16 : FPE_HALF_AVX512;
    return __builtin_cpu_supports("avx2") ? FPE_HALF_AVX2 : FPE_HALF_PORTABLE;
}

/* float32 -> bfloat16 bits, nearest even, a NaN the portable narrowing's
 * quiet NaN of its sign (32-bit lanes). */
#define FPE_BF16_BITS(VEC, SET1, SRLI, AND, ADD, OR, U, F, NAN_SELECT)                    \
    VEC lsb_ = AND(SRLI(U, 16), SET1(1));                                               \
    VEC r_ = SRLI(ADD(ADD(U, SET1(0x7fff)), lsb_), 16);                                 \
    VEC nan_ = OR(AND(SRLI(U, 16), SET1(0x8000)), SET1(0x7fc0));                        \
    r_ = NAN_SELECT(r_, nan_, F);

/* ---- AVX-512: 8 float64 lanes */
FPE_AVX512 static inline __m256 fpe_f32_odd8(__m512d d)
{
    __m256 t = _mm512_cvt_roundpd_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask8 inexact = _mm512_cmp_pd_mask(_mm512_cvtps_pd(t), d, _CMP_NEQ_UQ);
    __m256i bits = _mm256_castps_si256(t);
    return _mm256_castsi256_ps(_mm256_mask_or_epi32(bits, inexact, bits, _mm256_set1_epi32(1)));
}

FPE_AVX512 static inline __m512d fpe_load8_f16(const fpe_half *p)
{
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)));
}

/* A NaN comes out as the portable narrowing's quiet NaN of its sign (F16C
 * keeps the payload): the same bits at every level. */
FPE_AVX512 static inline __m128i fpe_narrow8_f16(__m512d d)
{
    __m256 f = fpe_f32_odd8(d);
    __m128i r = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask8 nan = _mm256_cmp_ps_mask(f, f, _CMP_UNORD_Q);
    if (__builtin_expect(nan != 0, 0)) r = _mm_mask_mov_epi16(r, nan, _mm_and_si128(r, _mm_set1_epi16((short)0xfe00)));
    return r;
}

FPE_AVX512 static inline __m512d fpe_load8_bf16(const fpe_half *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
}

#define FPE_NAN_SELECT512(R, NAN, F) _mm256_mask_mov_epi32(R, _mm256_cmp_ps_mask(F, F, _CMP_UNORD_Q), NAN)
FPE_AVX512 static inline __m128i fpe_narrow8_bf16(__m512d d)
{
    __m256 f = fpe_f32_odd8(d);
    __m256i u = _mm256_castps_si256(f);
    FPE_BF16_BITS(__m256i, _mm256_set1_epi32, _mm256_srli_epi32, _mm256_and_si256, _mm256_add_epi32,
                  _mm256_or_si256, u, f, FPE_NAN_SELECT512)
    /* 16-bit halves of the 8 results (all < 2**16): pack within lanes, gather the lanes. */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r_, r_), 0x08));
}

/* ---- AVX2: 4 float64 lanes, twice */
FPE_AVX2 static inline __m128 fpe_f32_odd4(__m256d d)
{
    __m128 t = _mm256_cvtpd_ps(d); /* nearest: one of the two neighbours of d */
    __m256d back = _mm256_cvtps_pd(t);
    __m256d magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffll));
    __m256d away = _mm256_cmp_pd(_mm256_and_pd(back, magnitude), _mm256_and_pd(d, magnitude), _CMP_GT_OQ);
    __m256d inexact = _mm256_cmp_pd(back, d, _CMP_NEQ_UQ);
    const __m256i even_lanes = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128i away32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(away), even_lanes));
    __m128i inexact32 = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(inexact), even_lanes));
    /* rounded away from zero: one step back (the mask is -1), then the odd bit */
    __m128i u = _mm_add_epi32(_mm_castps_si128(t), away32);
    return _mm_castsi128_ps(_mm_or_si128(u, _mm_and_si128(inexact32, _mm_set1_epi32(1))));
}

FPE_AVX2 static inline __m256 fpe_f32_odd8_avx2(__m256d lo, __m256d hi)
{
    return _mm256_set_m128(fpe_f32_odd4(hi), fpe_f32_odd4(lo));
}

FPE_AVX2 static inline __m256 fpe_load8_f32_f16(const fpe_half *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

FPE_AVX2 static inline __m256 fpe_load8_f32_bf16(const fpe_half *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

FPE_AVX2 static inline __m128i fpe_store8_f16_avx2(__m256 f)
{
    /* a NaN as fpe_narrow8_f16 makes it */
    __m128i r = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256i nan32 = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    if (__builtin_expect(_mm256_testz_si256(nan32, nan32), 1)) return r;
    __m128i nan = _mm_packs_epi32(_mm256_castsi256_si128(nan32), _mm256_extracti128_si256(nan32, 1));
    return _mm_andnot_si128(_mm_and_si128(nan, _mm_set1_epi16(0x01ff)), r);
}

#define FPE_NAN_SELECT256(R, NAN, F) \
    _mm256_blendv_epi8(R, NAN, _mm256_castps_si256(_mm256_cmp_ps(F, F, _CMP_UNORD_Q)))
FPE_AVX2 static inline __m128i fpe_store8_bf16_avx2(__m256 f)
{
    __m256i u = _mm256_castps_si256(f);
    FPE_BF16_BITS(__m256i, _mm256_set1_epi32, _mm256_srli_epi32, _mm256_and_si256, _mm256_add_epi32,
                  _mm256_or_si256, u, f, FPE_NAN_SELECT256)
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r_, r_), 0x08));
}

/* Rows of unit stride: returns how many leading elements were done. */
#define FPE_DEFINE_HALF_AVX512(KIND)                                                    \
    FPE_AVX512 static fpe_idx fpe_apply_avx512_##KIND(fpe_half *dst, const fpe_half *src,\
                                                      const double *pe, double scale,   \
                                                      fpe_idx n, int mode)              \
    {                                                                                   \
        const __m512d sc = _mm512_set1_pd(scale);                                       \
        const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;                   \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= 8; j += 8) {                                                    \
            __m512d v = _mm512_loadu_pd(pe + j);                                        \
            if (mode != FPE_MODE_STORE)                                                 \
                v = _mm512_fmadd_pd(fpe_load8_##KIND(x + j), sc, v);                    \
            _mm_storeu_si128((__m128i *)(dst + j), fpe_narrow8_##KIND(v));              \
        }                                                                               \
        return j;                                                                       \
    }
#define FPE_DEFINE_HALF_AVX2(KIND)                                                      \
    FPE_AVX2 static fpe_idx fpe_apply_avx2_##KIND(fpe_half *dst, const fpe_half *src,   \
                                                  const double *pe, double scale,       \
                                                  fpe_idx n, int mode)                  \
    {                                                                                   \
        const __m256d sc = _mm256_set1_pd(scale);                                       \
        const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;                   \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= 8; j += 8) {                                                    \
            __m256d lo = _mm256_loadu_pd(pe + j), hi = _mm256_loadu_pd(pe + j + 4);     \
            if (mode != FPE_MODE_STORE) {                                               \
                __m256 f = fpe_load8_f32_##KIND(x + j);                                 \
                lo = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(f)), sc, lo);\
                hi = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)), sc, hi);\
            }                                                                           \
            _mm_storeu_si128((__m128i *)(dst + j),                                      \
                             fpe_store8_##KIND##_avx2(fpe_f32_odd8_avx2(lo, hi)));      \
        }                                                                               \
        return j;                                                                       \
    }
FPE_DEFINE_HALF_AVX512(f16)
FPE_DEFINE_HALF_AVX512(bf16)
FPE_DEFINE_HALF_AVX2(f16)
FPE_DEFINE_HALF_AVX2(bf16)

/* ---- Rows from prepared encodings, AVX2 with F16C and FMA (see
 * FPE_PREPARED_WINDOW): 16 elements a step, in two vectors of 8. AVX-512
 * CPUs have a loop of their own for each kind (fpe_apply_prepared_avx512_*). */
#define FPE_PREPARED_STEP 16

/* A step's elements `elements` (bit i: element i), formed again as the
 * float64 rows form them: x * scale + pe rounded once to 16 bits
 * (fpe_half_prepared admits only scales whose product with x is exact, so
 * fused and unfused multiply-adds agree). x: the step's elements as they
 * were before the step stored anything. */
#define FPE_DEFINE_PREPARED_REDO(KIND, LOAD_FN, NARROW_FN)                              \
    static void fpe_prepared_redo_##KIND(fpe_half *dst, const fpe_half *x, const double *pe, \
                                         double scale, unsigned elements, int mode)     \
    {                                                                                   \
        for (; elements; elements &= elements - 1) {                                    \
            int i = __builtin_ctz(elements);                                            \
            double v = mode == FPE_MODE_STORE ? pe[i] : (double)LOAD_FN(x[i]) * scale + pe[i]; \
            dst[i] = NARROW_FN(v);                                                      \
        }                                                                               \
    }
FPE_DEFINE_PREPARED_REDO(f16, fpe_f16_to_f32, fpe_f64_to_f16)
FPE_DEFINE_PREPARED_REDO(bf16, fpe_bf16_to_f32, fpe_f64_to_bf16)

/* Where element i of a step lies in the two vectors: the float16 loop reads
 * elements 0-7 and 8-15; the bfloat16 loop widens x by interleaving it with
 * zeros within 128-bit lanes, so its vectors hold elements 0-3, 8-11 and
 * 4-7, 12-15 (the prepared rows are laid out to match). */
static inline fpe_idx fpe_prepared_element(int kind, int vector, int lane)
{
    if (kind == FPE_STORAGE_F16) return 8 * vector + lane;
    return lane + (lane & 4) + 4 * vector;
}

/* hi and nlo of the whole steps of a row of n encodings pe, each vector of
 * 8 in the order the loop of the kind reads it (fpe_prepared_element). */
FPE_AVX2 static void fpe_half_prepare_avx2(float *hi, float *nlo, const double *pe, fpe_idx n, int kind)
{
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 smallest = _mm256_set1_ps(FPE_PREPARED_MIN), largest = _mm256_set1_ps(FPE_PREPARED_MAX);
    const __m256 zero = _mm256_setzero_ps(), nan = _mm256_set1_ps(NAN);
    for (fpe_idx j = 0; n - j >= FPE_PREPARED_STEP; j += FPE_PREPARED_STEP) {
        for (int v = 0; v < 2; v++) {
            const double *a = pe + j + fpe_prepared_element(kind, v, 0);
            const double *b = pe + j + fpe_prepared_element(kind, v, 4);
            __m256d pa = _mm256_loadu_pd(a), pb = _mm256_loadu_pd(b);
            __m128 ha = _mm256_cvtpd_ps(pa), hb = _mm256_cvtpd_ps(pb);
            /* hi - pe is exact in float64 (at most 29 significant bits) */
            __m128 la = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(ha), pa));
            __m128 lb = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(hb), pb));
            __m256 h = _mm256_set_m128(hb, ha), m = _mm256_and_ps(h, magnitude);
            __m256 in_range = _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(m, smallest, _CMP_GE_OQ),
                                                         _mm256_cmp_ps(m, largest, _CMP_LE_OQ)),
                                           _mm256_cmp_ps(m, zero, _CMP_EQ_OQ));
            _mm256_storeu_ps(hi + j + 8 * v, _mm256_blendv_ps(nan, h, in_range));
            _mm256_storeu_ps(nlo + j + 8 * v, _mm256_set_m128(lb, la));
        }
    }
}

/* Ask for a step's elements dst_ahead (x: src_ahead) bytes further on, a
 * row or more ahead in their sequence, into L2: the loops sweep a tile of
 * rows over several sequences in turn, and a miss on x (the 2 KiB of a
 * 1024-element row, a new page every row or two) then stalls them, where
 * the hardware prefetchers lose the streams (docs/performance.rst). A
 * prefetch past the end of the array is harmless. */
#if defined(__GNUC__)
#define FPE_PREPARED_PREFETCH(J)                                                        \
    __builtin_prefetch((const char *)(dst + (J)) + dst_ahead, 1, 2);                    \
    if (mode == FPE_MODE_ADD_TO) __builtin_prefetch((const char *)(x + (J)) + src_ahead, 0, 2);
#else
#define FPE_PREPARED_PREFETCH(J) (void)dst_ahead; (void)src_ahead;
#endif

/* y = fl32(fl32(x * scale + hi) - nlo) of one vector (x unused by stores). */
#define FPE_PREPARED_SUM(Y, X, J)                                                       \
    __m256 Y = _mm256_loadu_ps(hi + (J));                                               \
    if (mode != FPE_MODE_STORE) Y = _mm256_fmadd_ps(X, sc, Y);                          \
    Y = _mm256_sub_ps(Y, _mm256_loadu_ps(nlo + (J)));
/* The bound the bits below the 16-bit precision are compared with, hidden
 * from the optimiser: GCC turns the comparison with a constant into a minimum
 * and an equality and builds the constant again in every iteration. */
#define FPE_PREPARED_WINDOW_BOUND(NAME)                                                 \
    __m256i NAME = _mm256_set1_epi32(2 * FPE_PREPARED_WINDOW + 1);                      \
    __asm__("" : "+x"(NAME));
/* Lanes whose bits below the 16-bit precision lie within the window of the
 * midpoint pattern (TO_WINDOW: the window's half-width less the pattern;
 * an integer mask). */
#define FPE_PREPARED_NEAR(U, TO_WINDOW, LOW_BITS)                                       \
    _mm256_cmpgt_epi32(window, _mm256_and_si256(_mm256_add_epi32(U, TO_WINDOW), LOW_BITS))
/* Bit i: element i of the step, from the lane masks of its two vectors. */
static inline unsigned fpe_prepared_elements(int kind, int mask0, int mask1)
{
    unsigned elements = 0;
    for (int lane = 0; lane < 8; lane++) {
        elements |= (unsigned)((mask0 >> lane) & 1) << fpe_prepared_element(kind, 0, lane);
        elements |= (unsigned)((mask1 >> lane) & 1) << fpe_prepared_element(kind, 1, lane);
    }
    return elements;
}

/* float16: F16C both ways. Hard lanes also: |y| below float16's normal range
 * (the rounding position moves there) or NaN (F16C keeps NaN payloads). */
FPE_AVX2 static fpe_idx fpe_apply_prepared_avx2_f16(fpe_half *dst, const fpe_half *src, const double *pe,
                                                    const float *hi, const float *nlo, double scale,
                                                    fpe_idx n, int mode, fpe_idx dst_ahead, fpe_idx src_ahead)
{
    const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;
    const __m256 sc = _mm256_set1_ps((float)scale);
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 smallest_normal = _mm256_set1_ps(0x1p-14f);
    const __m256i to_window = _mm256_set1_epi32(FPE_PREPARED_WINDOW - 0x1000), low_bits = _mm256_set1_epi32(0x1fff);
    FPE_PREPARED_WINDOW_BOUND(window)
    fpe_idx j = 0;
    for (; n - j >= FPE_PREPARED_STEP; j += FPE_PREPARED_STEP) {
        FPE_PREPARED_PREFETCH(j)
        __m128i xa = _mm_setzero_si128(), xb = _mm_setzero_si128();
        if (mode != FPE_MODE_STORE) {
            xa = _mm_loadu_si128((const __m128i *)(x + j));
            xb = _mm_loadu_si128((const __m128i *)(x + j + 8));
        }
        FPE_PREPARED_SUM(y0, _mm256_cvtph_ps(xa), j)
        FPE_PREPARED_SUM(y1, _mm256_cvtph_ps(xb), j + 8)
        __m256 hard0 = _mm256_or_ps(_mm256_cmp_ps(_mm256_and_ps(y0, magnitude), smallest_normal, _CMP_NGE_UQ),
                                    _mm256_castsi256_ps(FPE_PREPARED_NEAR(_mm256_castps_si256(y0), to_window, low_bits)));
        __m256 hard1 = _mm256_or_ps(_mm256_cmp_ps(_mm256_and_ps(y1, magnitude), smallest_normal, _CMP_NGE_UQ),
                                    _mm256_castsi256_ps(FPE_PREPARED_NEAR(_mm256_castps_si256(y1), to_window, low_bits)));
        _mm_storeu_si128((__m128i *)(dst + j), _mm256_cvtps_ph(y0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128((__m128i *)(dst + j + 8), _mm256_cvtps_ph(y1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (_mm256_movemask_ps(_mm256_or_ps(hard0, hard1))) {
            fpe_half xs[FPE_PREPARED_STEP];
            _mm_storeu_si128((__m128i *)xs, xa);
            _mm_storeu_si128((__m128i *)(xs + 8), xb);
            fpe_prepared_redo_f16(dst + j, xs, pe + j, scale,
                                  fpe_prepared_elements(FPE_STORAGE_F16, _mm256_movemask_ps(hard0),
                                                        _mm256_movemask_ps(hard1)), mode);
        }
    }
    return j;
}

/* bfloat16: widened by interleaving with zeros, narrowed by adding half a
 * unit and keeping the top 16 bits (away from the midpoints any rounding to
 * nearest is the rounding; a carry moves into the exponent, up to infinity).
 * The window's half-width is added with the half unit: the bits below are
 * then in [0, 2 * window] near a midpoint, and the top 16 bits are unchanged
 * elsewhere. Hard lanes also: NaN (a lane of y0 + y1 NaN: either is). */
FPE_AVX2 static fpe_idx fpe_apply_prepared_avx2_bf16(fpe_half *dst, const fpe_half *src, const double *pe,
                                                     const float *hi, const float *nlo, double scale,
                                                     fpe_idx n, int mode, fpe_idx dst_ahead, fpe_idx src_ahead)
{
    const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;
    const __m256 sc = _mm256_set1_ps((float)scale);
    const __m256i to_window = _mm256_set1_epi32(0x8000 + FPE_PREPARED_WINDOW), low_bits = _mm256_set1_epi32(0xffff);
    const __m256i zero = _mm256_setzero_si256();
    FPE_PREPARED_WINDOW_BOUND(window)
    fpe_idx j = 0;
    for (; n - j >= FPE_PREPARED_STEP; j += FPE_PREPARED_STEP) {
        FPE_PREPARED_PREFETCH(j)
        __m256i w = mode == FPE_MODE_STORE ? zero : _mm256_loadu_si256((const __m256i *)(x + j));
        FPE_PREPARED_SUM(y0, _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, w)), j)
        FPE_PREPARED_SUM(y1, _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, w)), j + 8)
        __m256i v0 = _mm256_add_epi32(_mm256_castps_si256(y0), to_window);
        __m256i v1 = _mm256_add_epi32(_mm256_castps_si256(y1), to_window);
        __m256i near0 = _mm256_cmpgt_epi32(window, _mm256_and_si256(v0, low_bits));
        __m256i near1 = _mm256_cmpgt_epi32(window, _mm256_and_si256(v1, low_bits));
        __m256 pair = _mm256_add_ps(y0, y1);
        __m256 hard = _mm256_or_ps(_mm256_cmp_ps(pair, pair, _CMP_UNORD_Q), _mm256_castsi256_ps(_mm256_or_si256(near0, near1)));
        _mm256_storeu_si256((__m256i *)(dst + j),
                            _mm256_packus_epi32(_mm256_srli_epi32(v0, 16), _mm256_srli_epi32(v1, 16)));
        if (_mm256_movemask_ps(hard)) {
            fpe_half xs[FPE_PREPARED_STEP];
            _mm256_storeu_si256((__m256i *)xs, w);
            int nan0 = _mm256_movemask_ps(_mm256_cmp_ps(y0, y0, _CMP_UNORD_Q));
            int nan1 = _mm256_movemask_ps(_mm256_cmp_ps(y1, y1, _CMP_UNORD_Q));
            fpe_prepared_redo_bf16(dst + j, xs, pe + j, scale,
                                   fpe_prepared_elements(FPE_STORAGE_BF16,
                                                         nan0 | _mm256_movemask_ps(_mm256_castsi256_ps(near0)),
                                                         nan1 | _mm256_movemask_ps(_mm256_castsi256_ps(near1))), mode);
        }
    }
    return j;
}

/* The prepared loops with AVX-512, one per kind: the AVX2 loops' arithmetic
 * and tests lane by lane, one vector of 16 lanes a step, elements in order
 * (bfloat16's prepared rows then laid out as float16's, fpe_prepared_layout),
 * the hard lanes a mask register. On the AMD EPYC development machine with
 * AVX-512, against the AVX2 loops side by side (two runs each): float16
 * add_sinusoidal of (8, 256, 1024) and (64, 64, 1024) 0.58-0.80x,
 * (8, 2048, 1024) 0.82-0.88x (bound by memory); bfloat16 0.76-0.83x and
 * 0.91-0.94x. */
#define FPE_P512_WIDEN_f16(X16) _mm512_cvtph_ps(X16)
#define FPE_P512_WIDEN_bf16(X16) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(X16), 16))
/* y rounded to float16 into *out (F16C); the hard lanes: |y| below float16's
 * normal range or NaN, or the bits below float16's precision within the
 * window of the midpoint pattern. */
FPE_AVX512 static inline __mmask16 fpe_p512_round_f16(__m512 y, __m512i window, __m256i *out)
{
    const __m512i to_window = _mm512_set1_epi32(FPE_PREPARED_WINDOW - 0x1000), low_bits = _mm512_set1_epi32(0x1fff);
    *out = _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_cmp_ps_mask(_mm512_abs_ps(y), _mm512_set1_ps(0x1p-14f), _CMP_NGE_UQ)
           | _mm512_cmpgt_epi32_mask(window, _mm512_and_si512(_mm512_add_epi32(_mm512_castps_si512(y), to_window),
                                                              low_bits));
}
/* y rounded to bfloat16 into *out as the AVX2 loop rounds it (half a unit
 * and the window's half-width added, the top 16 bits kept); the hard lanes:
 * NaN, or the bits below within the window. */
FPE_AVX512 static inline __mmask16 fpe_p512_round_bf16(__m512 y, __m512i window, __m256i *out)
{
    __m512i v = _mm512_add_epi32(_mm512_castps_si512(y), _mm512_set1_epi32(0x8000 + FPE_PREPARED_WINDOW));
    *out = _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16));
    return _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q)
           | _mm512_cmpgt_epi32_mask(window, _mm512_and_si512(v, _mm512_set1_epi32(0xffff)));
}
#define FPE_DEFINE_PREPARED_AVX512(KIND)                                                \
    FPE_AVX512 static fpe_idx fpe_apply_prepared_avx512_##KIND(fpe_half *dst, const fpe_half *src, \
                                                              const double *pe, const float *hi, \
                                                              const float *nlo, double scale, \
                                                              fpe_idx n, int mode,      \
                                                              fpe_idx dst_ahead,        \
                                                              fpe_idx src_ahead)        \
    {                                                                                   \
        const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;                   \
        const __m512 sc = _mm512_set1_ps((float)scale);                                 \
        __m512i window = _mm512_set1_epi32(2 * FPE_PREPARED_WINDOW + 1);                \
        __asm__("" : "+v"(window));  /* as FPE_PREPARED_WINDOW_BOUND */                 \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= FPE_PREPARED_STEP; j += FPE_PREPARED_STEP) {                    \
            FPE_PREPARED_PREFETCH(j)                                                    \
            __m256i xs16 = _mm256_setzero_si256(), bits;                                \
            __m512 y = _mm512_loadu_ps(hi + j);                                         \
            if (mode != FPE_MODE_STORE) {                                               \
                xs16 = _mm256_loadu_si256((const __m256i *)(x + j));                    \
                y = _mm512_fmadd_ps(FPE_P512_WIDEN_##KIND(xs16), sc, y);                \
            }                                                                           \
            y = _mm512_sub_ps(y, _mm512_loadu_ps(nlo + j));                             \
            __mmask16 hard = fpe_p512_round_##KIND(y, window, &bits);                   \
            _mm256_storeu_si256((__m256i *)(dst + j), bits);                            \
            if (hard) {                                                                 \
                fpe_half xs[FPE_PREPARED_STEP];                                         \
                _mm256_storeu_si256((__m256i *)xs, xs16);                               \
                fpe_prepared_redo_##KIND(dst + j, xs, pe + j, scale, (unsigned)hard, mode); \
            }                                                                           \
        }                                                                               \
        return j;                                                                       \
    }
FPE_DEFINE_PREPARED_AVX512(f16)
FPE_DEFINE_PREPARED_AVX512(bf16)

/* The widest prepared loop of each kind at the level in use, and the order
 * its prepared rows are laid out in (fpe_prepared_element): the AVX2
 * bfloat16 loop's own, else elements in order. */
#define FPE_PREPARED_WIDEST_f16(...)                                                    \
    (fpe_half_level >= FPE_HALF_AVX512 ? fpe_apply_prepared_avx512_f16(__VA_ARGS__)     \
                                       : fpe_apply_prepared_avx2_f16(__VA_ARGS__))
#define FPE_PREPARED_WIDEST_bf16(...)                                                   \
    (fpe_half_level >= FPE_HALF_AVX512 ? fpe_apply_prepared_avx512_bf16(__VA_ARGS__)    \
                                       : fpe_apply_prepared_avx2_bf16(__VA_ARGS__))
static inline int fpe_prepared_layout(int kind)
{
    return fpe_half_level >= FPE_HALF_AVX512 ? FPE_STORAGE_F16 : kind;
}

#define FPE_HALF_PREPARE(hi, nlo, pe, n, kind) fpe_half_prepare_avx2(hi, nlo, pe, n, fpe_prepared_layout(kind))
#define FPE_PREPARED_FAST(KIND)                                                         \
    if (fpe_half_level >= FPE_HALF_AVX2) {                                              \
        fpe_idx done = FPE_PREPARED_WIDEST_##KIND(dst, src, pe, hi, nlo, scale, n, mode, \
                                                  dst_ahead, src_ahead);                \
        dst += done;                                                                    \
        src += mode == FPE_MODE_ADD_TO ? done : 0;                                      \
        pe += done;                                                                     \
        n -= done;                                                                      \
    }

/* 16 float32 lanes -> bfloat16 bits by integer arithmetic (any value; no
 * AVX512-BF16 instruction, so the AVX-512 loops use it too). */
FPE_AVX512 static inline __m256i fpe_bf16_bits16(__m512 f)
{
    __m512i u = _mm512_castps_si512(f);
#define FPE_NAN_SELECT_16(R, NAN, F) _mm512_mask_mov_epi32(R, _mm512_cmp_ps_mask(F, F, _CMP_UNORD_Q), NAN)
    FPE_BF16_BITS(__m512i, _mm512_set1_epi32, _mm512_srli_epi32, _mm512_and_si512, _mm512_add_epi32,
                  _mm512_or_si512, u, f, FPE_NAN_SELECT_16)
#undef FPE_NAN_SELECT_16
    return _mm512_cvtepi32_epi16(r_);
}

/* bfloat16 with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and
 * later): the float32 round to odd as above, 16 lanes at a time, then
 * VCVTNEPS2BF16 (nearest even, NaN quieted as the integer rounding does):
 * measured 1.6x the rows per second of fpe_apply_avx512_bf16 in L1. It
 * flushes subnormals to zero, so a block holding a subnormal float32 takes
 * the integer rounding instead. (AVX512-FP16's direct float64 <-> float16
 * conversions were slower than the float32 route on Sapphire Rapids, so
 * float16 keeps fpe_apply_avx512_f16.) */
FPE_AVX512BF16 static fpe_idx fpe_apply_bf16i(fpe_half *dst, const fpe_half *src, const double *pe,
                                                  double scale, fpe_idx n, int mode)
{
    const __m512d sc = _mm512_set1_pd(scale);
    const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;
    fpe_idx j = 0;
    for (; n - j >= 16; j += 16) {
        __m512d lo = _mm512_loadu_pd(pe + j), hi = _mm512_loadu_pd(pe + j + 8);
        if (mode != FPE_MODE_STORE) {
            __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + j)));
            __m512 xf = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
            lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xf)), sc, lo);
            hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(xf, 1)), sc, hi);
        }
        __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(fpe_f32_odd8(lo)), fpe_f32_odd8(hi), 1);
        __m256i bits;
        if (_mm512_fpclass_ps_mask(f, 0x20)) { /* 0x20: subnormal */
            bits = fpe_bf16_bits16(f);
        } else {
            __m256bh b = _mm512_cvtneps_pbh(f);
            memcpy(&bits, &b, sizeof bits);
            /* a NaN as the integer rounding makes it (the instruction keeps the payload) */
            __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
            if (__builtin_expect(nan != 0, 0))
                bits = _mm256_mask_mov_epi16(bits, nan, _mm256_and_si256(bits, _mm256_set1_epi16((short)0xffc0)));
        }
        _mm256_storeu_si256((__m256i *)(dst + j), bits);
    }
    return j;
}

/* bfloat16 takes the AVX512-BF16 rows first where they are chosen. */
#define FPE_HALF_FAST_f16 FPE_HALF_FAST_STEP(fpe_apply_avx512_f16)
#define FPE_HALF_FAST_bf16                                                              \
    {                                                                                   \
        if (fpe_half_level == FPE_HALF_AVX512BF16) FPE_HALF_FAST_STEP(fpe_apply_bf16i)  \
        FPE_HALF_FAST_STEP(fpe_apply_avx512_bf16)                                       \
    }
#define FPE_HALF_FAST_STEP(FN)                                                          \
    {                                                                                   \
        fpe_idx done = FN(dst, src, pe, scale, n, mode);                                \
        dst += done;                                                                    \
        src += mode == FPE_MODE_ADD_TO ? done : 0;                                      \
        pe += done;                                                                     \
        n -= done;                                                                      \
    }
/* The vector rows take what they can of a unit-stride call. */
#define FPE_HALF_FAST(KIND)                                                             \
    if (dst_stride == 1 && (mode != FPE_MODE_ADD_TO || src_stride == 1)) {              \
        if (fpe_half_level >= FPE_HALF_AVX512) FPE_HALF_FAST_##KIND                     \
        else if (fpe_half_level == FPE_HALF_AVX2) FPE_HALF_FAST_STEP(fpe_apply_avx2_##KIND)\
    }

/* The float64 rotation of one 16-bit pair, rounded once to 16 bits. The
 * multiply-adds are explicit (fma, an instruction where the level has one),
 * so every implementation forms the same float64 values. */
#define FPE_ROTATE_PAIR_ONCE(VA, VB, CK, SK, NARROW64, A_OUT, B_OUT)                    \
    {                                                                                   \
        double va_ = (VA), vb_ = (VB), ck_ = (CK), sk_ = (SK);                          \
        A_OUT = NARROW64(fma(va_, ck_, -(vb_ * sk_)));                                  \
        B_OUT = NARROW64(fma(vb_, ck_, va_ * sk_));                                     \
    }

/* The 16-bit rotation's float32 form: pairs per block of the portable loop,
 * and the constants of its bound (see FPE_ROTATE32_PAIR). */
#define FPE_ROT32_BLOCK 64
#define FPE_ROT32_EPS 0x1p-21f
#define FPE_ROT32_FLOOR 0x1p-126f
#define FPE_ROT32_LARGEST 0x1p120f
#define FPE_ROT32_SMALLEST 0x1p-100f

/* The 16-bit rotation's float32 form (FPE_ROTATE32_PAIR, whose bound it
 * shares), 8 pairs a step with F16C's conversions for float16, both streams
 * of unit stride: each step is written, its undecided lanes formed again in
 * float64 first (FPE_ROTATE_PAIR_ONCE); returns the pairs done. */
#define FPE_ROT32_LOAD_f16(P) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(P)))
#define FPE_ROT32_LOAD_bf16(P) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(P))), 16))
/* The 16-bit value of y - e (8 lanes) into *out; bit i set where lane i of
 * y + e rounds to the same one (bfloat16 ties away from zero, as
 * fpe_f32_to_bf16_bits; float16 by F16C, nearest even: both monotone). */
FPE_AVX2 static inline unsigned fpe_rot32_decide_f16(__m256 y, __m256 e, __m128i *out)
{
    __m128i lo = _mm256_cvtps_ph(_mm256_sub_ps(y, e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m128i hi = _mm256_cvtps_ph(_mm256_add_ps(y, e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m128i same = _mm_cmpeq_epi16(lo, hi);
    *out = lo;
    return (unsigned)_mm_movemask_epi8(_mm_packs_epi16(same, same)) & 0xffu;
}

FPE_AVX2 static inline unsigned fpe_rot32_decide_bf16(__m256 y, __m256 e, __m128i *out)
{
    const __m256i half = _mm256_set1_epi32(0x8000);
    __m256i lo = _mm256_srli_epi32(_mm256_add_epi32(_mm256_castps_si256(_mm256_sub_ps(y, e)), half), 16);
    __m256i hi = _mm256_srli_epi32(_mm256_add_epi32(_mm256_castps_si256(_mm256_add_ps(y, e)), half), 16);
    *out = _mm_packus_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1));
    return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(lo, hi)));
}

#define FPE_ROT32_CVT8(P) _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd((P) + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(P)))

#define FPE_DEFINE_ROTATE32_AVX2(KIND)                                                  \
    FPE_AVX2 static fpe_idx fpe_rotate32_avx2_##KIND(fpe_half *da, fpe_half *db,        \
                                                    const fpe_half *sa, const fpe_half *sb, \
                                                    const double *cos_row,              \
                                                    const double *sin_row, fpe_idx n)   \
    {                                                                                   \
        const __m256 eps = _mm256_set1_ps(FPE_ROT32_EPS), floor_ = _mm256_set1_ps(FPE_ROT32_FLOOR); \
        const __m256 largest = _mm256_set1_ps(FPE_ROT32_LARGEST);                       \
        const __m256 smallest = _mm256_set1_ps(FPE_ROT32_SMALLEST);                     \
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));    \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= 8; j += 8) {                                                    \
            __m256 a = FPE_ROT32_LOAD_##KIND(sa + j), b = FPE_ROT32_LOAD_##KIND(sb + j); \
            __m256 c = FPE_ROT32_CVT8(cos_row + j), s = FPE_ROT32_CVT8(sin_row + j);    \
            __m256 ya = _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s));                     \
            __m256 yb = _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s));                     \
            __m256 ac = _mm256_and_ps(c, magnitude), as = _mm256_and_ps(s, magnitude);  \
            __m256 m = _mm256_fmadd_ps(_mm256_and_ps(a, magnitude), ac,                 \
                                       _mm256_mul_ps(_mm256_and_ps(b, magnitude), as)); \
            __m256 e = _mm256_fmadd_ps(m, eps, floor_);                                 \
            __m128i la, lb;                                                             \
            unsigned same = fpe_rot32_decide_##KIND(ya, e, &la) & fpe_rot32_decide_##KIND(yb, e, &lb); \
            /* ordered compares: NaN fails them */                                     \
            __m256 fine = _mm256_and_ps(_mm256_cmp_ps(m, largest, _CMP_LT_OQ),          \
                                        _mm256_and_ps(_mm256_cmp_ps(ac, smallest, _CMP_GE_OQ), \
                                                      _mm256_cmp_ps(as, smallest, _CMP_GE_OQ))); \
            unsigned undecided = ~(same & (unsigned)_mm256_movemask_ps(fine)) & 0xffu;  \
            if (undecided) {                                                            \
                float fa[8], fb[8];                                                     \
                fpe_half ta[8], tb[8];                                                  \
                _mm256_storeu_ps(fa, a);                                                \
                _mm256_storeu_ps(fb, b);                                                \
                _mm_storeu_si128((__m128i *)ta, la);                                    \
                _mm_storeu_si128((__m128i *)tb, lb);                                    \
                for (int l = 0; l < 8; l++)                                             \
                    if ((undecided >> l) & 1u)                                          \
                        FPE_ROTATE_PAIR_ONCE(fa[l], fb[l], cos_row[j + l], sin_row[j + l], \
                                             fpe_f64_to_##KIND, ta[l], tb[l])           \
                la = _mm_loadu_si128((const __m128i *)ta);                              \
                lb = _mm_loadu_si128((const __m128i *)tb);                              \
            }                                                                           \
            _mm_storeu_si128((__m128i *)(da + j), la);                                  \
            _mm_storeu_si128((__m128i *)(db + j), lb);                                  \
        }                                                                               \
        return j;                                                                       \
    }
FPE_DEFINE_ROTATE32_AVX2(f16)
FPE_DEFINE_ROTATE32_AVX2(bf16)

/* The bfloat16 loop above with AVX-512, 16 pairs a step: the same float32
 * operations lane by lane, so the same decisions and bits; the undecided
 * lanes in a mask register. On the AMD EPYC development machine it took
 * 0.86-0.92x the AVX2 loop's time on bfloat16 rotations side by side; the
 * float16 form took 1.25x (its four 16-lane float16 conversions a step cost
 * more there than eight 8-lane ones), so float16 keeps the AVX2 loop. */
/* fpe_rot32_decide_bf16 with 16 lanes. */
FPE_AVX512 static inline __mmask16 fpe_rot32_decide16_bf16(__m512 y, __m512 e, __m256i *out)
{
    const __m512i half = _mm512_set1_epi32(0x8000);
    __m512i lo = _mm512_srli_epi32(_mm512_add_epi32(_mm512_castps_si512(_mm512_sub_ps(y, e)), half), 16);
    __m512i hi = _mm512_srli_epi32(_mm512_add_epi32(_mm512_castps_si512(_mm512_add_ps(y, e)), half), 16);
    *out = _mm512_cvtepi32_epi16(lo);
    return _mm512_cmpeq_epi32_mask(lo, hi);
}

FPE_AVX512 static fpe_idx fpe_rotate32_avx512_bf16(fpe_half *da, fpe_half *db, const fpe_half *sa,
                                                   const fpe_half *sb, const double *cos_row,
                                                   const double *sin_row, fpe_idx n)
{
    const __m512 eps = _mm512_set1_ps(FPE_ROT32_EPS), floor_ = _mm512_set1_ps(FPE_ROT32_FLOOR);
    const __m512 largest = _mm512_set1_ps(FPE_ROT32_LARGEST), smallest = _mm512_set1_ps(FPE_ROT32_SMALLEST);
    fpe_idx j = 0;
#define FPE_ROT32_LOAD16(P) FPE_P512_WIDEN_bf16(_mm256_loadu_si256((const __m256i *)(P)))
#define FPE_ROT32_CVT16(P) \
    _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_loadu_pd(P))), _mm512_cvtpd_ps(_mm512_loadu_pd((P) + 8)), 1)
    for (; n - j >= 16; j += 16) {
        __m512 a = FPE_ROT32_LOAD16(sa + j), b = FPE_ROT32_LOAD16(sb + j);
        __m512 c = FPE_ROT32_CVT16(cos_row + j), s = FPE_ROT32_CVT16(sin_row + j);
        __m512 ya = _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s));
        __m512 yb = _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s));
        __m512 ac = _mm512_abs_ps(c), as = _mm512_abs_ps(s);
        __m512 m = _mm512_fmadd_ps(_mm512_abs_ps(a), ac, _mm512_mul_ps(_mm512_abs_ps(b), as));
        __m512 e = _mm512_fmadd_ps(m, eps, floor_);
        __m256i la, lb;
        __mmask16 same = fpe_rot32_decide16_bf16(ya, e, &la) & fpe_rot32_decide16_bf16(yb, e, &lb);
        /* ordered compares: NaN fails them */
        __mmask16 fine = _mm512_cmp_ps_mask(m, largest, _CMP_LT_OQ) & _mm512_cmp_ps_mask(ac, smallest, _CMP_GE_OQ)
                         & _mm512_cmp_ps_mask(as, smallest, _CMP_GE_OQ);
        unsigned undecided = ~(unsigned)(same & fine) & 0xffffu;
        if (undecided) {
            float fa[16], fb[16];
            fpe_half ta[16], tb[16];
            _mm512_storeu_ps(fa, a);
            _mm512_storeu_ps(fb, b);
            _mm256_storeu_si256((__m256i *)ta, la);
            _mm256_storeu_si256((__m256i *)tb, lb);
            for (int l = 0; l < 16; l++)
                if ((undecided >> l) & 1u)
                    FPE_ROTATE_PAIR_ONCE(fa[l], fb[l], cos_row[j + l], sin_row[j + l], fpe_f64_to_bf16, ta[l], tb[l])
            la = _mm256_loadu_si256((const __m256i *)ta);
            lb = _mm256_loadu_si256((const __m256i *)tb);
        }
        _mm256_storeu_si256((__m256i *)(da + j), la);
        _mm256_storeu_si256((__m256i *)(db + j), lb);
    }
#undef FPE_ROT32_LOAD16
#undef FPE_ROT32_CVT16
    return j;
}
#define FPE_ROT32_WIDE_bf16(...) (fpe_half_level >= FPE_HALF_AVX512 ? fpe_rotate32_avx512_bf16(__VA_ARGS__) : 0)
#define FPE_ROT32_WIDE_f16(...) 0

/* Both streams of unit stride, in and out: the vector loops take the row's
 * first multiple of 8 pairs (a step reads its pairs before writing them),
 * bfloat16's AVX-512 loop 16 a step first where the CPU has it. */
#define FPE_ROTATE32_FAST(KIND)                                                         \
    if (fpe_half_level >= FPE_HALF_AVX2 && r.ks == 1 && d.ks == 1) {                    \
        done = FPE_ROT32_WIDE_##KIND(dst + d.sin_off, dst + d.cos_off, src + r.sin_off, \
                                     src + r.cos_off, cos_row, sin_row, n);             \
        done += fpe_rotate32_avx2_##KIND(dst + d.sin_off + done, dst + d.cos_off + done, \
                                         src + r.sin_off + done, src + r.cos_off + done, \
                                         cos_row + done, sin_row + done, n - done);     \
    }

/* A 16-bit table of x's own format added to x with scale 1: the sum of two
 * 16-bit values formed in float32 and rounded to nearest even is the float64
 * sum rounded once (float32's 24 bits are at least twice the 16-bit
 * precision plus 2, so the double rounding is innocuous: Figueroa, "When is
 * double rounding innocuous?", 1995), so the loops need no window and no
 * float64. NaN lanes are formed again the float64 way (fpe_same_sum), so a
 * NaN's bits never depend on which operand a vector addition passes on.
 * bfloat16 is rounded to nearest even by integer arithmetic
 * (FPE_BF16_BITS), overflow carrying into infinity. Prefetch as
 * FPE_PREPARED_PREFETCH. */
static void fpe_same_redo(int kind, fpe_half *dst, const fpe_half *x, const fpe_half *pe, unsigned elements)
{
    for (; elements; elements &= elements - 1) {
        int i = __builtin_ctz(elements);
        dst[i] = fpe_same_sum(kind, x[i], pe[i]);
    }
}
#define FPE_STORAGE_f16_KIND FPE_STORAGE_F16
#define FPE_STORAGE_bf16_KIND FPE_STORAGE_BF16
/* Widened and narrowed as the float64 rows' AVX2 loops do (fpe_load8_f32_*,
 * fpe_store8_*_avx2). */
#define FPE_DEFINE_SAME_AVX2(KIND)                                                      \
    FPE_AVX2 static fpe_idx fpe_apply_same_avx2_##KIND(fpe_half *dst, const fpe_half *src, \
                                                       const fpe_half *pe, fpe_idx n, int mode, \
                                                       fpe_idx dst_ahead, fpe_idx src_ahead) \
    {                                                                                   \
        const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;                   \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= 8; j += 8) {                                                    \
            FPE_PREPARED_PREFETCH(j)                                                    \
            __m256 y = _mm256_add_ps(fpe_load8_f32_##KIND(x + j), fpe_load8_f32_##KIND(pe + j)); \
            unsigned nan = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(y, y, _CMP_UNORD_Q)); \
            fpe_half xs[8];                                                             \
            if (nan) memcpy(xs, x + j, sizeof xs); /* before the store overwrites it */ \
            _mm_storeu_si128((__m128i *)(dst + j), fpe_store8_##KIND##_avx2(y));        \
            if (nan) fpe_same_redo(FPE_STORAGE_##KIND##_KIND, dst + j, xs, pe + j, nan); \
        }                                                                               \
        return j;                                                                       \
    }
FPE_DEFINE_SAME_AVX2(f16)
FPE_DEFINE_SAME_AVX2(bf16)
/* With AVX-512, 16 lanes a step, widened as the prepared loops do
 * (FPE_P512_WIDEN_*), bfloat16 narrowed by fpe_bf16_bits16. */
#define FPE_SAME_NARROW16_f16(Y) _mm512_cvtps_ph(Y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define FPE_SAME_NARROW16_bf16(Y) fpe_bf16_bits16(Y)
#define FPE_DEFINE_SAME_AVX512(KIND)                                                    \
    FPE_AVX512 static fpe_idx fpe_apply_same_avx512_##KIND(fpe_half *dst, const fpe_half *src, \
                                                         const fpe_half *pe, fpe_idx n, int mode, \
                                                         fpe_idx dst_ahead, fpe_idx src_ahead) \
    {                                                                                   \
        const fpe_half *x = mode == FPE_MODE_ADD_INPLACE ? dst : src;                   \
        fpe_idx j = 0;                                                                  \
        for (; n - j >= 16; j += 16) {                                                  \
            FPE_PREPARED_PREFETCH(j)                                                    \
            __m256i xs16 = _mm256_loadu_si256((const __m256i *)(x + j));                \
            __m512 y = _mm512_add_ps(FPE_P512_WIDEN_##KIND(xs16),                       \
                                     FPE_P512_WIDEN_##KIND(_mm256_loadu_si256((const __m256i *)(pe + j)))); \
            __mmask16 nan = _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);                     \
            _mm256_storeu_si256((__m256i *)(dst + j), FPE_SAME_NARROW16_##KIND(y));     \
            if (nan) {                                                                  \
                fpe_half xs[16];                                                        \
                _mm256_storeu_si256((__m256i *)xs, xs16);                               \
                fpe_same_redo(FPE_STORAGE_##KIND##_KIND, dst + j, xs, pe + j, (unsigned)nan); \
            }                                                                           \
        }                                                                               \
        return j;                                                                       \
    }
FPE_DEFINE_SAME_AVX512(f16)
FPE_DEFINE_SAME_AVX512(bf16)
#define FPE_SAME_FAST(KIND)                                                             \
    if (fpe_half_level >= FPE_HALF_AVX2) {                                              \
        fpe_idx done = fpe_half_level >= FPE_HALF_AVX512                                \
                           ? fpe_apply_same_avx512_##KIND(dst, src, pe, n, mode, dst_ahead, src_ahead) \
                           : 0;                                                         \
        done += fpe_apply_same_avx2_##KIND(dst + done, src + (mode == FPE_MODE_ADD_TO ? done : 0), \
                                           pe + done, n - done, mode, dst_ahead, src_ahead); \
        dst += done;                                                                    \
        src += mode == FPE_MODE_ADD_TO ? done : 0;                                      \
        pe += done;                                                                     \
        n -= done;                                                                      \
    }
#else
static int fpe_half_level = FPE_HALF_PORTABLE;
static int fpe_half_best(void) { return FPE_HALF_PORTABLE; }
#define FPE_HALF_FAST(KIND)
#define FPE_ROTATE32_FAST(KIND)
#define FPE_HALF_PREPARE(hi, nlo, pe, n, kind) ((void)(hi), (void)(nlo), (void)(pe), (void)(n), (void)(kind))
#define FPE_PREPARED_FAST(KIND)
#define FPE_SAME_FAST(KIND)
#endif

static int fpe_half_simd_init(void) { return fpe_half_level = fpe_half_best(); }
#define FPE_NO_FAST_PATH

/* One entry for all three modes (FPE_MODE_*, _modes.h). */
#define FPE_DEFINE_ROW_APPLY(XT, PT, SUFFIX, FAST)                                      \
    static inline void fpe_apply_##SUFFIX(XT *dst, fpe_idx dst_stride,                 \
                                          const XT *src, fpe_idx src_stride,           \
                                          const PT *pe, double scale, fpe_idx n,       \
                                          int mode)                                    \
    {                                                                                   \
        FAST                                                                            \
        if (mode == FPE_MODE_STORE) fpe_store_##SUFFIX(dst, dst_stride, pe, n);         \
        else if (mode == FPE_MODE_ADD_INPLACE)                                          \
            fpe_add_inplace_##SUFFIX(dst, dst_stride, pe, scale, n);                    \
        else fpe_add_to_##SUFFIX(dst, dst_stride, src, src_stride, pe, scale, n);       \
    }

FPE_DEFINE_ROW_ADDS(float, float, float, f32, FPE_LOAD_NATIVE, FPE_STORE_NATIVE)
FPE_DEFINE_ROW_ADDS(double, double, double, f64, FPE_LOAD_NATIVE, FPE_STORE_NATIVE)
FPE_DEFINE_ROW_ADDS(float, double, double, f32_f64, FPE_LOAD_NATIVE, FPE_STORE_NATIVE)
FPE_DEFINE_ROW_ADDS(double, float, double, f64_f32, FPE_LOAD_NATIVE, FPE_STORE_NATIVE)
/* 16-bit storage: sinusoid rows come in float64, learned tables in float32
 * or float64 (the Python layer widens a 16-bit table's rows exactly). */
FPE_DEFINE_ROW_ADDS(fpe_half, double, double, f16_f64, FPE_LOAD_F16, FPE_STORE_F16)
FPE_DEFINE_ROW_ADDS(fpe_half, float, double, f16_f32, FPE_LOAD_F16, FPE_STORE_F16)
FPE_DEFINE_ROW_ADDS(fpe_half, double, double, bf16_f64, FPE_LOAD_BF16, FPE_STORE_BF16)
FPE_DEFINE_ROW_ADDS(fpe_half, float, double, bf16_f32, FPE_LOAD_BF16, FPE_STORE_BF16)
FPE_DEFINE_ROW_APPLY(float, float, f32, FPE_NO_FAST_PATH)
FPE_DEFINE_ROW_APPLY(double, double, f64, FPE_NO_FAST_PATH)
FPE_DEFINE_ROW_APPLY(float, double, f32_f64, FPE_NO_FAST_PATH)
FPE_DEFINE_ROW_APPLY(double, float, f64_f32, FPE_NO_FAST_PATH)
FPE_DEFINE_ROW_APPLY(fpe_half, double, f16_f64, FPE_HALF_FAST(f16))
FPE_DEFINE_ROW_APPLY(fpe_half, float, f16_f32, FPE_NO_FAST_PATH)
FPE_DEFINE_ROW_APPLY(fpe_half, double, bf16_f64, FPE_HALF_FAST(bf16))
FPE_DEFINE_ROW_APPLY(fpe_half, float, bf16_f32, FPE_NO_FAST_PATH)

/* Whether a call's 16-bit rows of kind (FPE_STORAGE_F16 or FPE_STORAGE_BF16)
 * go through prepared encodings: a level with the prepared loops, and a scale
 * whose product with every x is exact in float32: 0, or a float32 of at most
 * 24 - p significant bits (p: the kind's, 11 or 8) between 2**-40 and 2**40
 * in magnitude (wherever the product can cancel against an encoding it is
 * then a normal float32; where it overflows, so does the result). Other
 * scales take the float64 rows. */
static int fpe_half_prepared(int kind, double scale)
{
    int fraction_bits = 24 - (kind == FPE_STORAGE_F16 ? 11 : 8) - 1;
    double magnitude = fabs(scale);
    if (fpe_half_level < FPE_HALF_AVX2) return 0;
    if (scale == 0) return 1;
    if (!(magnitude >= 0x1p-40 && magnitude <= 0x1p40)) return 0;
    return (fpe_bits64_of(scale) & ((1ull << (52 - fraction_bits)) - 1)) == 0;
}

/* Prepare a row of n float64 encodings pe into prepared[0, 2n) (hi, then
 * nlo), for the 16-bit kind's loops; only where fpe_half_prepared. */
static inline void fpe_half_prepare(float *prepared, const double *pe, fpe_idx n, int kind)
{
    FPE_HALF_PREPARE(prepared, prepared + n, pe, n, kind);
}

/* fpe_apply_f16_f64 / fpe_apply_bf16_f64 (per kind) of a row pe that was
 * prepared into `prepared` as well: the vector loops take the whole steps of
 * a unit-stride row, the rest goes the float64 way. */
static inline void fpe_apply_half_prepared(int kind, fpe_half *dst, fpe_idx dst_stride, const fpe_half *src,
                                           fpe_idx src_stride, const double *pe, const float *prepared,
                                           double scale, fpe_idx n, int mode, fpe_idx dst_ahead,
                                           fpe_idx src_ahead)
{
    const float *hi = prepared, *nlo = prepared + n;
    if (dst_stride == 1 && (mode != FPE_MODE_ADD_TO || src_stride == 1)) {
        if (kind == FPE_STORAGE_F16) {
            FPE_PREPARED_FAST(f16)
        } else {
            FPE_PREPARED_FAST(bf16)
        }
    }
    (void)hi; (void)nlo;
    if (n == 0) return;
    if (kind == FPE_STORAGE_F16) fpe_apply_f16_f64(dst, dst_stride, src, src_stride, pe, scale, n, mode);
    else fpe_apply_bf16_f64(dst, dst_stride, src, src_stride, pe, scale, n, mode);
}

/* x + pe rounded once to 16 bits (scale 1), pe a row of the same 16-bit
 * kind as x: the vector loops (FPE_SAME_FAST) where the rows have unit
 * stride, the float64 way for the rest (the sum of two 16-bit values is
 * exact in float64). mode: FPE_MODE_ADD_INPLACE or FPE_MODE_ADD_TO. */
static inline void fpe_apply_half_same(int kind, fpe_half *dst, fpe_idx dst_stride, const fpe_half *src,
                                       fpe_idx src_stride, const fpe_half *pe, fpe_idx n, int mode,
                                       fpe_idx dst_ahead, fpe_idx src_ahead)
{
    if (dst_stride == 1 && (mode != FPE_MODE_ADD_TO || src_stride == 1)) {
        if (kind == FPE_STORAGE_F16) {
            FPE_SAME_FAST(f16)
        } else {
            FPE_SAME_FAST(bf16)
        }
    }
    (void)dst_ahead; (void)src_ahead;
    for (fpe_idx j = 0; j < n; j++)
        dst[j * dst_stride] = fpe_same_sum(kind, mode == FPE_MODE_ADD_INPLACE ? dst[j * dst_stride]
                                                                           : src[j * src_stride], pe[j]);
}

/* Rotary embeddings: rotate channel pairs (a, b) of one row by the angles
 * whose cosines and sines are cos_row[k], sin_row[k]:
 *   a' = a cos - b sin,  b' = b cos + a sin,
 * pair k's channels at first_off + k*ks and second_off + k*ks (the sin_off /
 * cos_off fields of fpe_cols). Formed in float64, rounded once. */
#define FPE_ROTATE_PAIR(A_IN, B_IN, A_OUT, B_OUT)                                       \
    {                                                                                   \
        double va_ = FPE_LOAD(double, A_IN), vb_ = FPE_LOAD(double, B_IN);              \
        double ck_ = cos_row[k], sk_ = sin_row[k];                                      \
        A_OUT = FPE_STORE(FPE_T, va_ * ck_ - vb_ * sk_);                                \
        B_OUT = FPE_STORE(FPE_T, vb_ * ck_ + va_ * sk_);                                \
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

#define FPE_LOAD FPE_LOAD_NATIVE
#define FPE_STORE FPE_STORE_NATIVE
#define FPE_T float
FPE_DEFINE_ROTATE(f32)
#undef FPE_T
#define FPE_T double
FPE_DEFINE_ROTATE(f64)
#undef FPE_T
#undef FPE_LOAD
#undef FPE_STORE

/* 16-bit rotation in float32. The result is still the float64 rotation
 * (FPE_ROTATE_PAIR_ONCE) rounded once; float32 only decides it when it can.
 * With a, b read exactly, c = fl32(cos), s = fl32(sin) (|c|, |s| >= 2**-100,
 * so each is within 2**-24 of itself of the float64 value), and
 *   ya = a*c - b*s,  yb = b*c + a*s,  m = |a||c| + |b||s|
 * formed in float32 (contracted into multiply-adds or not), each of ya, yb
 * is within 3 * 2**-24 * m (conversions of c and s, the product, the sum),
 * plus 2**-52 * m for the float64 sum's own roundings, plus at most a few
 * 2**-150 where products underflow, of the float64 result. The bound taken,
 * e = m * 2**-21 + 2**-126, is more than twice that, so it still holds after
 * ya - e and ya + e are rounded to float32 (each moves by at most
 * 2**-24 * (m + e)). Rounding to nearest even is monotone: when ya - e and
 * ya + e round to the same 16-bit value, so does the float64 result. Pairs
 * where they do not (a 16-bit midpoint within e, a signed zero), and pairs
 * with m >= 2**120 (overflow, infinities, NaN) or a small or zero c or s
 * (position 0's sines), are formed again in float64: on random data, a few
 * pairs in a thousand. */

/* float32 -> 16 bits, to nearest with ties away from zero, for finite values
 * below 2**121 (an overflow gives the infinity). Monotone, and equal to
 * nearest even except at ties: ya - e and ya + e lie strictly either side of
 * the float64 value, so when they round alike it is no tie and the shared
 * result is its nearest-even rounding. */
static inline uint32_t fpe_f32_to_bf16_bits(float f)
{
    return (fpe_bits_of(f) + 0x8000u) >> 16;
}

static inline uint32_t fpe_f32_to_f16_bits(float f)
{
    uint32_t u = fpe_bits_of(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    uint32_t normal = (a - ((127u - 15u) << 23) + 0x1000u) >> 13;
    /* 0.5's float32 ulp is float16's subnormal unit: the addition rounds. */
    uint32_t subnormal = fpe_bits_of(fpe_float_of(a) + 0.5f) - fpe_bits_of(0.5f);
    uint32_t r = a < ((127u - 15u + 1u) << 23) ? subnormal : normal;
    r = a >= fpe_bits_of(65520.0f) ? 0x7c00u : r;
    return r | sign;
}

/* One pair into the block's outputs; bad[J] set when float32 cannot decide. */
#define FPE_ROTATE32_PAIR(A_IN, B_IN, J)                                                \
    {                                                                                   \
        float a_ = WIDEN(A_IN), b_ = WIDEN(B_IN);                                        \
        float c_ = c32[J], s_ = s32[J];                                                 \
        float ya_ = a_ * c_ - b_ * s_, yb_ = b_ * c_ + a_ * s_;                          \
        float m_ = fabsf(a_) * fabsf(c_) + fabsf(b_) * fabsf(s_);                       \
        float e_ = m_ * FPE_ROT32_EPS + FPE_ROT32_FLOOR;                                \
        uint32_t la_ = NARROW(ya_ - e_), ha_ = NARROW(ya_ + e_);                        \
        uint32_t lb_ = NARROW(yb_ - e_), hb_ = NARROW(yb_ + e_);                        \
        oa[J] = (fpe_half)la_;                                                          \
        ob[J] = (fpe_half)lb_;                                                          \
        bad[J] = (uint32_t)(la_ != ha_) | (uint32_t)(lb_ != hb_)                        \
                 | (uint32_t)!(m_ < FPE_ROT32_LARGEST)                                  \
                 | (uint32_t)!(fabsf(c_) >= FPE_ROT32_SMALLEST)                         \
                 | (uint32_t)!(fabsf(s_) >= FPE_ROT32_SMALLEST);                        \
        any |= bad[J];                                                                  \
    }

/* dst's pairs (columns d) = src's pairs (columns r) rotated; src may be dst
 * (a block, or a vector step, is read whole before any of it is written). */
#define FPE_DEFINE_ROTATE_HALF(SUFFIX)                                                  \
    FPE_DISPATCH                                                                        \
    static void fpe_rotate_to_##SUFFIX(fpe_half *dst, fpe_cols d, const fpe_half *src,  \
                                       fpe_cols r, const double *restrict cos_row,      \
                                       const double *restrict sin_row, fpe_idx n)       \
    {                                                                                   \
        fpe_half oa[FPE_ROT32_BLOCK], ob[FPE_ROT32_BLOCK];                              \
        uint32_t bad[FPE_ROT32_BLOCK];                                                  \
        float c32[FPE_ROT32_BLOCK], s32[FPE_ROT32_BLOCK];                               \
        fpe_idx done = 0;                                                               \
        FPE_ROTATE32_FAST(SUFFIX)                                                       \
        for (fpe_idx k0 = done; k0 < n; k0 += FPE_ROT32_BLOCK) {                        \
            fpe_idx w = n - k0 < FPE_ROT32_BLOCK ? n - k0 : FPE_ROT32_BLOCK;            \
            const fpe_half *sa = src + r.sin_off + k0 * r.ks;                           \
            const fpe_half *sb = src + r.cos_off + k0 * r.ks;                           \
            uint32_t any = 0;                                                           \
            /* converted apart, so the loop below is float32 throughout */              \
            for (fpe_idx j = 0; j < w; j++) {                                           \
                c32[j] = (float)cos_row[k0 + j];                                        \
                s32[j] = (float)sin_row[k0 + j];                                        \
            }                                                                           \
            if (r.ks == 1) {                                                            \
                for (fpe_idx j = 0; j < w; j++) FPE_ROTATE32_PAIR(sa[j], sb[j], j)      \
            } else if (r.ks == 2 && r.cos_off == r.sin_off + 1) {                       \
                for (fpe_idx j = 0; j < w; j++)                                         \
                    FPE_ROTATE32_PAIR(sa[2 * j], sa[2 * j + 1], j)                      \
            } else {                                                                    \
                for (fpe_idx j = 0; j < w; j++)                                         \
                    FPE_ROTATE32_PAIR(sa[j * r.ks], sb[j * r.ks], j)                    \
            }                                                                           \
            if (any) {                                                                  \
                for (fpe_idx j = 0; j < w; j++)                                         \
                    if (bad[j])                                                         \
                        FPE_ROTATE_PAIR_ONCE(WIDEN(sa[j * r.ks]), WIDEN(sb[j * r.ks]),   \
                                             cos_row[k0 + j], sin_row[k0 + j],          \
                                             fpe_f64_to_##SUFFIX, oa[j], ob[j])         \
            }                                                                           \
            fpe_half *da = dst + d.sin_off + k0 * d.ks, *db = dst + d.cos_off + k0 * d.ks; \
            for (fpe_idx j = 0; j < w; j++) {                                           \
                da[j * d.ks] = oa[j];                                                   \
                db[j * d.ks] = ob[j];                                                   \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    static void fpe_rotate_inplace_##SUFFIX(fpe_half *dst, fpe_cols d,                  \
                                            const double *cos_row,                      \
                                            const double *sin_row, fpe_idx n)           \
    {                                                                                   \
        fpe_rotate_to_##SUFFIX(dst, d, dst, d, cos_row, sin_row, n);                    \
    }

#define WIDEN fpe_f16_to_f32
#define NARROW fpe_f32_to_f16_bits
FPE_DEFINE_ROTATE_HALF(f16)
#undef WIDEN
#undef NARROW
#define WIDEN fpe_bf16_to_f32
#define NARROW fpe_f32_to_bf16_bits
FPE_DEFINE_ROTATE_HALF(bf16)
#undef WIDEN
#undef NARROW

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
/* 16-bit storage: the same traffic as an integer add (a float16 add needs
 * conversions, which are arithmetic, not traffic). */
FPE_DEFINE_PROBES(uint16_t, u16)

#endif
