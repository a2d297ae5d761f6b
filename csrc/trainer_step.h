// trainer_step(trainer): Trainer.update() in C++ for a model whose parameters all live on this
// backend (see trainer_step.cpp); the backend offers it to the front end as Backend.trainer_step.
#pragma once

#include <pybind11/pybind11.h>

namespace dy {

namespace py = pybind11;

// Adds trainer_step to the extension module m.
void add_trainer_step(py::module_& m);

}  // namespace dy
