// update_rules_impl.h compiled for one instruction set (CMake builds this file once per set,
// with that set's flags and DY_UPD_SET naming the entry it defines).
#include "update_rules_impl.h"

namespace dy {
namespace upd {

const Kernels* const DY_UPD_SET = &kernels_here;

}  // namespace upd
}  // namespace dy
