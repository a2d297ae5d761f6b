// Per-element functions of the cuda backend: the bodies of its CuPy
// ElementwiseKernels (see ../ewspec.py, which names one call per kernel).
//
// Each unary op follows backends/reference_numpy/unary.py and each trainer rule
// backends/reference_numpy/updates.py, which define the semantics, in float32
// arithmetic in the same order where that matters.
// Forward functions are dn_<op>_f(x[, attr]); backward functions are
// dn_<op>_b(x, y, g[, attr]) for input x, output y and output gradient g.
#ifndef DN_ELEMENTWISE_CUH
#define DN_ELEMENTWISE_CUH

#include "device_math.cuh"

#define DN_SELU_LAMBDA 1.0507009873554804934193349852946f
#define DN_SELU_ALPHA 1.6732632423543772848170429916717f
#define DN_TWO_OVER_SQRT_PI 1.1283791670955126f

// ---------------------------------------------------------------- unary ops
DN_F float dn_tanh_f(float x) { return tanhf(x); }
DN_F float dn_tanh_b(float x, float y, float g) { return g * (1.0f - y * y); }

DN_F float dn_logistic_f(float x) { return dn_sigmoid(x); }
DN_F float dn_logistic_b(float x, float y, float g) { return g * y * (1.0f - y); }

DN_F float dn_rectify_f(float x) { return x > 0.0f || x != x ? x : 0.0f; }  // NaN stays NaN
DN_F float dn_rectify_b(float x, float y, float g) { return g * (y > 0.0f ? 1.0f : 0.0f); }

DN_F float dn_elu_f(float x, float alpha) { return x > 0.0f || x != x ? x : alpha * expm1f(fminf(x, 0.0f)); }
DN_F float dn_elu_b(float x, float y, float g, float alpha) {
  return g * (x > 0.0f ? 1.0f : alpha * expf(fminf(x, 0.0f)));
}

DN_F float dn_selu_f(float x) {
  return DN_SELU_LAMBDA * (x > 0.0f || x != x ? x : DN_SELU_ALPHA * expm1f(fminf(x, 0.0f)));
}
DN_F float dn_selu_b(float x, float y, float g) {
  return g * (DN_SELU_LAMBDA * (x > 0.0f ? 1.0f : DN_SELU_ALPHA * expf(fminf(x, 0.0f))));
}

DN_F float dn_softsign_f(float x) { return x / (1.0f + fabsf(x)); }
DN_F float dn_softsign_b(float x, float y, float g) {
  float d = 1.0f - fabsf(y);
  return g * (d * d);
}

DN_F float dn_exp_f(float x) { return expf(x); }
DN_F float dn_exp_b(float x, float y, float g) { return g * y; }

DN_F float dn_log_f(float x) { return logf(x); }
DN_F float dn_log_b(float x, float y, float g) { return g / x; }

DN_F float dn_sqrt_f(float x) { return sqrtf(x); }
DN_F float dn_sqrt_b(float x, float y, float g) { return g / (2.0f * y); }

DN_F float dn_square_f(float x) { return x * x; }
DN_F float dn_square_b(float x, float y, float g) { return g * 2.0f * x; }

DN_F float dn_cube_f(float x) { return x * x * x; }
DN_F float dn_cube_b(float x, float y, float g) { return g * 3.0f * x * x; }

DN_F float dn_abs_f(float x) { return fabsf(x); }
DN_F float dn_abs_b(float x, float y, float g) { return g * dn_sign(x); }

DN_F float dn_log_sigmoid_f(float x) { return dn_log_sigmoid(x); }
DN_F float dn_log_sigmoid_b(float x, float y, float g) { return g * (1.0f - expf(y)); }

DN_F float dn_erf_f(float x) { return erff(x); }
DN_F float dn_erf_b(float x, float y, float g) { return g * DN_TWO_OVER_SQRT_PI * expf(-x * x); }

DN_F float dn_lgamma_f(float x) { return lgammaf(x); }
DN_F float dn_lgamma_b(float x, float y, float g) { return g * (float)dn_digamma((double)x); }

// Trigonometric and hyperbolic functions, and their inverses.
DN_F float dn_sin_f(float x) { return sinf(x); }
DN_F float dn_sin_b(float x, float y, float g) { return g * cosf(x); }
DN_F float dn_cos_f(float x) { return cosf(x); }
DN_F float dn_cos_b(float x, float y, float g) { return -g * sinf(x); }
DN_F float dn_tan_f(float x) { return tanf(x); }
DN_F float dn_tan_b(float x, float y, float g) { return g * (1.0f + y * y); }
DN_F float dn_asin_f(float x) { return asinf(x); }
DN_F float dn_asin_b(float x, float y, float g) { return g / sqrtf(1.0f - x * x); }
DN_F float dn_acos_f(float x) { return acosf(x); }
DN_F float dn_acos_b(float x, float y, float g) { return -g / sqrtf(1.0f - x * x); }
DN_F float dn_atan_f(float x) { return atanf(x); }
DN_F float dn_atan_b(float x, float y, float g) { return g / (1.0f + x * x); }
DN_F float dn_sinh_f(float x) { return sinhf(x); }
DN_F float dn_sinh_b(float x, float y, float g) { return g * coshf(x); }
DN_F float dn_cosh_f(float x) { return coshf(x); }
DN_F float dn_cosh_b(float x, float y, float g) { return g * sinhf(x); }
DN_F float dn_asinh_f(float x) { return asinhf(x); }
DN_F float dn_asinh_b(float x, float y, float g) { return g / sqrtf(x * x + 1.0f); }
DN_F float dn_acosh_f(float x) { return acoshf(x); }
DN_F float dn_acosh_b(float x, float y, float g) { return g / sqrtf(x * x - 1.0f); }
DN_F float dn_atanh_f(float x) { return atanhf(x); }
DN_F float dn_atanh_b(float x, float y, float g) { return g / (1.0f - x * x); }

// The sigmoid in its tanh form, as the reference's silu computes it.
DN_F float dn_sigt(float x) { return 0.5f + 0.5f * tanhf(0.5f * x); }
DN_F float dn_silu_f(float x, float beta) { return x * dn_sigt(beta * x); }
DN_F float dn_silu_b(float x, float y, float g, float beta) {
  float s = dn_sigt(beta * x);
  return g * (s + beta * x * s * (1.0f - s));
}

// ---------------------------------------------------------------- trainer rules
// One fused kernel per rule, registered by its name alone: dn_upd_<rule> is the cuda backend's
// kernel of trainer rule <rule> (backends/cuda/updates.py builds the ElementwiseKernel and its call
// from this signature; ewspec.update_specs).  The parameters: g, the gradient, then the scalars by
// name -- a key of the trainer's hyper (lr, gscale, mom, eps, rho, beta_1, beta_2: the rule's
// record in dynet_api/trainers.py), lr_gs (lr * gscale) or one_minus_<key> (1 - key, computed in
// double on the host as the reference does) -- then by reference w and the rule's state tensors,
// updated in place.  The formulas are those of backends/reference_numpy/updates.py.  For a rule whose
// step is not proportional to lr (momentum, adadelta), the step on w must be additive (w += step):
// under weight decay the kernel steps a zero tensor, which the host adds to w times hyper's wscale.
DN_F void dn_upd_sgd(float g, float lr_gs, float& w) { w -= lr_gs * g; }

DN_F void dn_upd_momentum(float g, float mom, float lr_gs, float& w, float& v) {
  v *= mom;
  v -= lr_gs * g;
  w += v;
}

DN_F void dn_upd_adagrad(float g, float gscale, float lr, float eps, float& w, float& h) {
  float gg = g * gscale;
  h += gg * gg;
  w -= lr * gg / sqrtf(h + eps);
}

DN_F void dn_upd_adadelta(float g, float gscale, float rho, float one_minus_rho, float eps, float& w, float& hg,
                          float& hd) {
  float gg = g * gscale;
  hg *= rho;
  hg += gg * gg * one_minus_rho;  // squared first, as DyNet: g^2 overflows to inf there
  float step = -gg * sqrtf(hd + eps) / sqrtf(hg + eps);
  hd *= rho;
  hd += step * step * one_minus_rho;
  w += step;
}

DN_F void dn_upd_rmsprop(float g, float gscale, float rho, float one_minus_rho, float lr, float eps, float& w,
                         float& h) {
  float gg = g * gscale;
  h *= rho;
  h += gg * gg * one_minus_rho;
  w -= lr * gg / sqrtf(h + eps);
}

DN_F void dn_upd_adam(float g, float gscale, float beta_1, float one_minus_beta_1, float beta_2,
                      float one_minus_beta_2, float lr, float eps, float& w, float& m, float& v) {
  float gg = g * gscale;
  m *= beta_1;
  m += one_minus_beta_1 * gg;
  v *= beta_2;
  v += gg * gg * one_minus_beta_2;
  w -= lr * m / (sqrtf(v) + eps);
}

// Amsgrad: Adam with the running maximum vmax of v in the denominator.
DN_F void dn_upd_amsgrad(float g, float gscale, float beta_1, float one_minus_beta_1, float beta_2,
                         float one_minus_beta_2, float lr, float eps, float& w, float& m, float& v, float& vmax) {
  float gg = g * gscale;
  m *= beta_1;
  m += one_minus_beta_1 * gg;
  v *= beta_2;
  v += gg * gg * one_minus_beta_2;
  vmax = fmaxf(vmax, v);
  w -= lr * m / (sqrtf(vmax) + eps);
}

#endif  // DN_ELEMENTWISE_CUH
