// See gemm_thin.h: the choice of build, made once from the CPU and DYNET_CPU_EIGEN_ISA.
#include "gemm_thin.h"

#include <cstdlib>

namespace dy {
namespace thin {

namespace {

bool cpu_has(const char* set) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (std::string(set) == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (std::string(set) == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)set;
  return false;
}

struct Choice {
  Fn fn = nullptr;
  std::string name = "off";
  GemvFn gemv = nullptr;
  BiasFn bias = nullptr;
};

Choice pick(const std::string& want) {
  if (want != "off" && want != "avx2" && kAvx512 && cpu_has("avx512")) return {kAvx512, "avx512", kAvx512Gemv, kAvx512Bias};
  if (want != "off" && kAvx2 && cpu_has("avx2")) return {kAvx2, "avx2", kAvx2Gemv, kAvx2Bias};
  return {};
}

Choice& current() {
  static Choice c = [] {
    const char* env = std::getenv("DYNET_CPU_EIGEN_ISA");
    std::string e = env ? env : "";
    return pick(e == "baseline" ? "off" : e == "avx2" ? "avx2" : "best");
  }();
  return c;
}

}  // namespace

bool gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  Fn f = current().fn;
  return f && f(ta, tb, m, n, k, A, B, C);
}

bool gemv_acc(bool ta, int64_t m, int64_t k, const float* A, const float* x, float* y) {
  GemvFn f = current().gemv;
  return f && f(ta, m, k, A, x, y);
}

bool gemm_bias(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C, const float* bias) {
  BiasFn f = current().bias;
  return f && f(m, n, k, A, B, C, bias);
}

std::string isa() { return current().name; }
bool active() { return current().fn != nullptr; }

std::string select(const std::string& name) {
  current() = pick(name);
  return current().name;
}

}  // namespace thin
}  // namespace dy
