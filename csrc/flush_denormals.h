// Denormal floats (|x| < 1.2e-38: the gradients deep in a long chain, an Adam moment decaying
// under a vanishing gradient) make x86 arithmetic ~100x slower.  While a graph runs or a trainer
// steps, they are flushed to zero (FTZ/DAZ), as DyNet's -Ofast build and TensorFlow do, and the
// caller's floating-point mode is restored afterwards.  The control register is written only
// when the mode is not set already: writing it costs tens of cycles, and a trainer's step calls
// a rule kernel per parameter inside its own guard.
#pragma once

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define DY_HAVE_MXCSR 1
#endif

namespace dy {

class FlushDenormals {
 public:
#ifdef DY_HAVE_MXCSR
  FlushDenormals() : saved_(_mm_getcsr()), set_((saved_ & kFlush) != kFlush) {
    if (set_) _mm_setcsr(saved_ | kFlush);
  }
  ~FlushDenormals() {
    if (set_) _mm_setcsr(saved_);
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFlush = 0x8040u;  // FTZ | DAZ
  unsigned saved_;
  bool set_;
#endif
};

}  // namespace dy
