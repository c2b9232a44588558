# Declarations of the C leaf loops in _simd.h, for fastpe._kernels (the one
# module that compiles them).
from libc.stdint cimport uint16_t

from fastpe._kernels cimport fpe_idx

# The mode and storage codes and the float64 integer bound, defined once
# (_modes.h) for the kernels and _simd.h.
cdef extern from "_modes.h" nogil:
    enum:
        FPE_MODE_STORE
        FPE_MODE_ADD_INPLACE
        FPE_MODE_ADD_TO
        FPE_STORAGE_NATIVE
        FPE_STORAGE_F16
        FPE_STORAGE_BF16
    const double FPE_EXACT_INTEGERS

cdef extern from "_simd.h" nogil:
    void fpe_prefetch_write(const void *p)
    int FPE_DISPATCH_ENABLED
    const char *fpe_simd_level()
    ctypedef struct fpe_cols:
        fpe_idx sin_off
        fpe_idx cos_off
        fpe_idx ks
    void fpe_seed(double *s, double *c, double p, const double *freq, const double *freq_lo, fpe_idx n)
    void fpe_advance(double *s, double *c, const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_skip(double *s, double *c, const double *step_cos, const double *step_sin, fpe_idx n,
                  fpe_idx steps)
    void fpe_emit_column_f32(float *dst, const float *src, double scale, double v, int mode)
    void fpe_emit_column_f64(double *dst, const double *src, double scale, double v, int mode)
    void fpe_step_store_f32(float *dst, fpe_cols d, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_store_f64(double *dst, fpe_cols d, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_inplace_f32(float *dst, fpe_cols d, double scale, double *s, double *c,
                                  const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_inplace_f64(double *dst, fpe_cols d, double scale, double *s, double *c,
                                  const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_to_f32(float *dst, fpe_cols d, const float *src, fpe_cols r, double scale,
                             double *s, double *c, const double *step_cos, const double *step_sin,
                             fpe_idx n)
    void fpe_step_add_to_f64(double *dst, fpe_cols d, const double *src, fpe_cols r, double scale,
                             double *s, double *c, const double *step_cos, const double *step_sin,
                             fpe_idx n)
    # The same steps over `rows` consecutive rows, dst_rs (src_rs) bytes apart.
    void fpe_rows_store_f32(float *dst, fpe_idx dst_rs, fpe_cols d, fpe_idx rows, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_rows_store_f64(double *dst, fpe_idx dst_rs, fpe_cols d, fpe_idx rows, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_rows_add_inplace_f32(float *dst, fpe_idx dst_rs, fpe_cols d, double scale, fpe_idx rows,
                                  double *s, double *c, const double *step_cos, const double *step_sin,
                                  fpe_idx n)
    void fpe_rows_add_inplace_f64(double *dst, fpe_idx dst_rs, fpe_cols d, double scale, fpe_idx rows,
                                  double *s, double *c, const double *step_cos, const double *step_sin,
                                  fpe_idx n)
    void fpe_rows_add_to_f32(float *dst, fpe_idx dst_rs, fpe_cols d, const float *src, fpe_idx src_rs,
                             fpe_cols r, double scale, fpe_idx rows, double *s, double *c,
                             const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_rows_add_to_f64(double *dst, fpe_idx dst_rs, fpe_cols d, const double *src, fpe_idx src_rs,
                             fpe_cols r, double scale, fpe_idx rows, double *s, double *c,
                             const double *step_cos, const double *step_sin, fpe_idx n)
    # The steps above with the mode (FPE_MODE_*) as an argument; src, r (and
    # src_rs) are read by FPE_MODE_ADD_TO only.
    void fpe_step_f32(float *dst, fpe_cols d, const float *src, fpe_cols r, double scale, int mode,
                      double *s, double *c, const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_f64(double *dst, fpe_cols d, const double *src, fpe_cols r, double scale, int mode,
                      double *s, double *c, const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_rows_f32(float *dst, fpe_idx dst_rs, fpe_cols d, const float *src, fpe_idx src_rs, fpe_cols r,
                      double scale, int mode, fpe_idx rows, double *s, double *c, const double *step_cos,
                      const double *step_sin, fpe_idx n)
    void fpe_rows_f64(double *dst, fpe_idx dst_rs, fpe_cols d, const double *src, fpe_idx src_rs, fpe_cols r,
                      double scale, int mode, fpe_idx rows, double *s, double *c, const double *step_cos,
                      const double *step_sin, fpe_idx n)
    ctypedef uint16_t fpe_half
    # The implementation of the 16-bit rows (see _simd.h): in use, and the best available.
    int fpe_half_level
    int fpe_half_best()
    int fpe_half_simd_init()
    # 16-bit rows that several rows of x share, prepared once into 2 * n
    # float32 (where fpe_half_prepared says so; kind: FPE_STORAGE_F16 or _BF16)
    int fpe_half_prepared(int kind, double scale)
    void fpe_half_prepare(float *prepared, const double *pe, fpe_idx n, int kind)
    # x + pe, pe a row of x's own 16-bit kind (scale 1; mode: an add)
    void fpe_apply_half_same(int kind, fpe_half *dst, fpe_idx dst_stride, const fpe_half *src, fpe_idx src_stride,
                             const fpe_half *pe, fpe_idx n, int mode, fpe_idx dst_ahead, fpe_idx src_ahead)
    void fpe_apply_half_prepared(int kind, fpe_half *dst, fpe_idx dst_stride, const fpe_half *src,
                                 fpe_idx src_stride, const double *pe, const float *prepared, double scale,
                                 fpe_idx n, int mode, fpe_idx dst_ahead, fpe_idx src_ahead)
    # 16-bit rows (mode: FPE_MODE_*)
    void fpe_apply_f16_f64(fpe_half *dst, fpe_idx dst_stride, const fpe_half *src, fpe_idx src_stride,
                           const double *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_f16_f32(fpe_half *dst, fpe_idx dst_stride, const fpe_half *src, fpe_idx src_stride,
                           const float *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_bf16_f64(fpe_half *dst, fpe_idx dst_stride, const fpe_half *src, fpe_idx src_stride,
                            const double *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_bf16_f32(fpe_half *dst, fpe_idx dst_stride, const fpe_half *src, fpe_idx src_stride,
                            const float *pe, double scale, fpe_idx n, int mode)
    # Whole rows, one entry for the three modes (src read by FPE_MODE_ADD_TO only)
    void fpe_apply_f32(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                       const float *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_f64(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                       const double *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_f32_f64(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                           const double *pe, double scale, fpe_idx n, int mode)
    void fpe_apply_f64_f32(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                           const float *pe, double scale, fpe_idx n, int mode)
    void fpe_store_f32(float *dst, fpe_idx stride, const float *pe, fpe_idx n)
    void fpe_store_f64(double *dst, fpe_idx stride, const double *pe, fpe_idx n)
    void fpe_add_inplace_f32(float *x, fpe_idx stride, const float *pe, double scale, fpe_idx n)
    void fpe_add_inplace_f64(double *x, fpe_idx stride, const double *pe, double scale, fpe_idx n)
    void fpe_add_to_f32(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                        const float *pe, double scale, fpe_idx n)
    void fpe_add_to_f64(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                        const double *pe, double scale, fpe_idx n)
    void fpe_add_inplace_f32_f64(float *x, fpe_idx stride, const double *pe, double scale, fpe_idx n)
    void fpe_add_inplace_f64_f32(double *x, fpe_idx stride, const float *pe, double scale, fpe_idx n)
    void fpe_add_to_f32_f64(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                            const double *pe, double scale, fpe_idx n)
    void fpe_add_to_f64_f32(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                            const float *pe, double scale, fpe_idx n)
    void fpe_rotate_inplace_f32(float *dst, fpe_cols d, const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_inplace_f64(double *dst, fpe_cols d, const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_to_f32(float *dst, fpe_cols d, const float *src, fpe_cols r,
                           const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_to_f64(double *dst, fpe_cols d, const double *src, fpe_cols r,
                           const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_inplace_f16(fpe_half *dst, fpe_cols d, const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_inplace_bf16(fpe_half *dst, fpe_cols d, const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_to_f16(fpe_half *dst, fpe_cols d, const fpe_half *src, fpe_cols r,
                           const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_rotate_to_bf16(fpe_half *dst, fpe_cols d, const fpe_half *src, fpe_cols r,
                            const double *cos_row, const double *sin_row, fpe_idx n)
    void fpe_probe_add_f32(float *x, float value, fpe_idx n)
    void fpe_probe_add_f64(double *x, double value, fpe_idx n)
    void fpe_probe_fill_f32(float *x, float value, fpe_idx n)
    void fpe_probe_fill_f64(double *x, double value, fpe_idx n)
    void fpe_probe_add_u16(uint16_t *x, uint16_t value, fpe_idx n)
    void fpe_probe_fill_u16(uint16_t *x, uint16_t value, fpe_idx n)

