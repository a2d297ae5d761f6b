// See update_rules.h: the choice of build, made once from the CPU and DYNET_CPU_EIGEN_ISA.
#include "update_rules.h"

#include <cstdlib>

namespace dy {
namespace upd {

namespace {

bool cpu_has(const std::string& set) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (set == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (set == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)set;
  return false;
}

struct Choice {
  const Kernels* k;
  std::string name;
};

Choice pick(const std::string& want) {
  if (want == "best" && kAvx512 && cpu_has("avx512")) return {kAvx512, "avx512"};
  if (want != "baseline" && kAvx2 && cpu_has("avx2")) return {kAvx2, "avx2"};
  return {kBase, "baseline"};
}

Choice& choice() {
  static Choice c = [] {
    const char* env = std::getenv("DYNET_CPU_EIGEN_ISA");
    std::string e = env ? env : "";
    return pick(e == "baseline" || e == "avx2" ? e : "best");
  }();
  return c;
}

}  // namespace

const Kernels& current() { return *choice().k; }
std::string isa() { return choice().name; }
std::string select(const std::string& name) {
  choice() = pick(name == "off" ? "baseline" : name);
  return choice().name;
}

}  // namespace upd
}  // namespace dy
