// Device helpers shared by the cuda backend's elementwise, reduction and raw kernels.
//
// Every CUDA C source of the backend is compiled three ways: by NVRTC through
// CuPy at run time (the backend itself), by nvcc in the CPU-side test (syntax
// and types), and as plain C++ on the host with host_emulation.h, where the
// CPU-side test runs the kernels one thread per block and compares their
// values with the NumPy reference.  So: no system headers here (NVRTC has
// none), only CUDA math functions that the C library also has, and every
// kernel correct for any blockDim.x that is a power of two up to 32.
#ifndef DN_DEVICE_MATH_CUH
#define DN_DEVICE_MATH_CUH

#define DN_F __device__ __forceinline__

// NVRTC defines no INFINITY; the bit pattern works on the device and the host.
#define DN_INF __int_as_float(0x7f800000)

DN_F float dn_sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }

// 1 / (1 + e^-x) without overflow for either sign of x.
DN_F float dn_sigmoid(float x) {
  float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

DN_F float dn_log_sigmoid(float x) { return fminf(x, 0.0f) - log1pf(expf(-fabsf(x))); }

// psi(x) as scipy.special.digamma (the reference's) defines it: for x < 0 the
// reflection psi(x) = psi(1 - x) - pi / tan(pi x), NaN at the poles (the negative
// integers and -Inf); then the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 6
// (at most 6 steps: no input makes the loop long) and the asymptotic series.
DN_F double dn_digamma(double x) {
  double acc = 0.0;
  if (x < 0.0) {
    double frac = x - floor(x);  // tan(pi x) from x's fraction: exact even where |x| is large
    if (frac == 0.0) return __int_as_float(0x7fc00000);
    acc = -3.14159265358979323846 / tan(3.14159265358979323846 * frac);
    x = 1.0 - x;
  }
  while (x < 6.0) {
    acc -= 1.0 / x;
    x += 1.0;
  }
  double inv = 1.0 / x, inv2 = inv * inv;
  double series = log(x) - 0.5 * inv -
                  inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))));
  return acc + series;
}

// Sums / maxima over the threads of a block that is one warp (blockDim.x a
// power of two <= 32); every thread gets the result.  With blockDim.x == 1 (the
// host emulation) they return their argument.
DN_F float dn_warp_sum(float v) {
  for (int off = (int)blockDim.x >> 1; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

DN_F float dn_warp_max(float v) {
  for (int off = (int)blockDim.x >> 1; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

#endif  // DN_DEVICE_MATH_CUH
