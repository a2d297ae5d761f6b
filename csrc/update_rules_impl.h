// The rule loops of update_rules.h, written so the compiler vectorises them for whatever
// instruction set this translation unit is built with (branch-free bodies, restrict pointers,
// -fno-math-errno so sqrt becomes one vector instruction).
#pragma once

#include <cmath>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define DY_UPD_MXCSR 1
#endif

#include "update_rules.h"

namespace dy {
namespace upd {
namespace {

template <int R, bool CLEAR>
void step_t(float* __restrict w, float* __restrict g0, float* const* s, int64_t n, const Hyper& h) {
  const float lr = h.lr, gs = h.gs, eps = h.eps;
  float* __restrict s0 = R == sgd ? nullptr : s[0];
  float* __restrict s1 = (R == adadelta || R == adam || R == amsgrad) ? s[1] : nullptr;
  float* __restrict s2 = R == amsgrad ? s[2] : nullptr;
  if (R == sgd) {
    const float c = h.lr_gs;
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k];
      if (CLEAR) g0[k] = 0.f;
      w[k] -= c * g;
    }
  } else if (R == momentum) {
    const float c = h.lr_gs, m = h.mom, ws = h.ws;
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k];
      if (CLEAR) g0[k] = 0.f;
      float v = s0[k] * m - c * g;
      s0[k] = v;
      w[k] += v * ws;
    }
  } else if (R == adagrad) {
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k] * gs;
      if (CLEAR) g0[k] = 0.f;
      float a = s0[k] + g * g;
      s0[k] = a;
      w[k] -= lr * g / std::sqrt(a + eps);
    }
  } else if (R == adadelta) {
    const float r = h.rho, ws = h.ws;
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k] * gs;
      if (CLEAR) g0[k] = 0.f;
      float hg = s0[k] * r + (1 - r) * g * g;
      s0[k] = hg;
      float d = -g * std::sqrt(s1[k] + eps) / std::sqrt(hg + eps);
      s1[k] = s1[k] * r + (1 - r) * d * d;
      w[k] += d * ws;
    }
  } else if (R == rmsprop) {
    const float r = h.rho;
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k] * gs;
      if (CLEAR) g0[k] = 0.f;
      float e = s0[k] * r + (1 - r) * g * g;
      s0[k] = e;
      w[k] -= lr * g / std::sqrt(e + eps);
    }
  } else {  // adam, amsgrad
    const float b1 = h.b1, b2 = h.b2;
    for (int64_t k = 0; k < n; ++k) {
      float g = g0[k] * gs;
      if (CLEAR) g0[k] = 0.f;
      float m = s0[k] * b1 + (1 - b1) * g;
      float v = s1[k] * b2 + (1 - b2) * g * g;
      s0[k] = m;
      s1[k] = v;
      if (R == amsgrad) {
        v = s2[k] > v ? s2[k] : v;  // not std::max: no out-of-line copy shared across the builds
        s2[k] = v;
      }
      w[k] -= lr * m / (std::sqrt(v) + eps);
    }
  }
}

template <int R>
void step_r(float* w, float* g, float* const* s, int64_t n, const Hyper& h, bool clear) {
  if (clear)
    step_t<R, true>(w, g, s, n, h);
  else
    step_t<R, false>(w, g, s, n, h);
}

// Denormal operands slow x86 arithmetic ~100x: an Adam first moment decaying towards zero
// under a vanishing gradient made an update 5-10x slower.  The rules run with
// flush-to-zero / denormals-are-zero (what DyNet's -Ofast build gets process-wide), and
// the caller's floating-point mode is restored afterwards.
struct FlushDenormals {
#ifdef DY_UPD_MXCSR
  unsigned int saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

void step_vec(int rule, float* w, float* g, float* const* s, int64_t n, const Hyper& h, bool clear) {
  FlushDenormals ftz;
  switch (rule) {
    case sgd: return step_r<sgd>(w, g, s, n, h, clear);
    case momentum: return step_r<momentum>(w, g, s, n, h, clear);
    case adagrad: return step_r<adagrad>(w, g, s, n, h, clear);
    case adadelta: return step_r<adadelta>(w, g, s, n, h, clear);
    case rmsprop: return step_r<rmsprop>(w, g, s, n, h, clear);
    case adam: return step_r<adam>(w, g, s, n, h, clear);
    default: return step_r<amsgrad>(w, g, s, n, h, clear);
  }
}

// Eight independent double lanes (one vector's worth), summed at the end.
double sq_norm_vec(const float* __restrict p, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(p[k + j]) * double(p[k + j]);
  for (; k < n; ++k) acc[0] += double(p[k]) * double(p[k]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

const Kernels kernels_here = {&step_vec, &sq_norm_vec};

}  // namespace
}  // namespace upd
}  // namespace dy
