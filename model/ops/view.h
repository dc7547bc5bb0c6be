// Views and conversions: the Tensor member functions reshape, transpose, permute, narrow, slice,
// unsqueeze, squeeze, expand, contiguous, clone and to(dtype/device) are defined in view.cpp with
// their backward. Views share storage; contiguous/clone/to copy.
#pragma once
#include "model/tensor/tensor.h"
