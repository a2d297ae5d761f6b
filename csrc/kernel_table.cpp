// The kernel table: every op's kernels, gathered from the files that group them by the op
// table's sections; an op's index here is its code in this backend.
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "kernel_util.h"

namespace dy {

const std::vector<KernelDef>& kernel_table() {
  static const std::vector<KernelDef> t = [] {
    std::vector<KernelDef> r;
    for (auto part : {ku::arith_kernels, ku::unary_kernels, ku::reduce_kernels, ku::shape_kernels, ku::loss_kernels,
                      ku::conv_kernels, ku::lstm_kernels})
      for (const KernelDef& k : part()) r.push_back(k);
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
