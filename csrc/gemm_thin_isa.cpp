// gemm_thin_impl.h compiled for one instruction set (CMake builds this file once per set,
// with that set's flags and DY_THIN_SET naming the entry point it defines).
#include "gemm_thin_impl.h"

#include "gemm_thin.h"

namespace dy {
namespace thin {

#ifdef DY_THIN_GEMM
const Fn DY_THIN_SET = &gemm_acc_vec;
#else
const Fn DY_THIN_SET = nullptr;
#endif

}  // namespace thin
}  // namespace dy
