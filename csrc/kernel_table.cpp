// The kernel table: every op's kernels, registered next to them (DY_REGISTER) by the files that
// group them by the op table's sections; sorted by name, so an op's code does not depend on the
// order in which the files' registrations ran.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace dy {

namespace {
std::vector<KernelDef>& registered() {
  static std::vector<KernelDef>* r = new std::vector<KernelDef>();  // filled while the module loads
  return *r;
}
}  // namespace

void register_kernels(const KernelDef& k) { registered().push_back(k); }

const std::vector<KernelDef>& kernel_table() {
  static const std::vector<KernelDef> t = [] {
    std::vector<KernelDef> r = registered();
    std::sort(r.begin(), r.end(), [](const KernelDef& a, const KernelDef& b) { return std::strcmp(a.name, b.name) < 0; });
    for (size_t k = 1; k < r.size(); ++k)
      if (!std::strcmp(r[k - 1].name, r[k].name))
        throw std::logic_error(std::string("cpu_eigen: op ") + r[k].name + " is registered twice");
    return r;
  }();
  return t;
}

int kernel_code(const std::string& name) {
  static const std::unordered_map<std::string, int> m = [] {
    std::unordered_map<std::string, int> r;
    const auto& t = kernel_table();
    for (size_t k = 0; k < t.size(); ++k) r[t[k].name] = int(k);
    return r;
  }();
  auto it = m.find(name);
  return it == m.end() ? -1 : it->second;
}

}  // namespace dy
