// The whole-graph executor of the cpu_eigen backend (Backend.make_executor): runs a graph's
// node ranges and its backward pass inside C++, reading the front end only through contract.h.
#pragma once

#include <pybind11/pybind11.h>

namespace dy {

// Adds the Executor class (dynet_api.backend.GraphExecutor's methods, plus arena_floats) to the module.
void bind_executor(pybind11::module_& m);

}  // namespace dy
