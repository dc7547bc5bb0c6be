// Every op of the core, for code that uses many of them (modules, tests). Each op family lives in
// its own file pair with forward and backward side by side.
#pragma once
#include "model/autograd/node.h"
#include "model/ops/activation.h"
#include "model/ops/attention.h"
#include "model/ops/concat.h"
#include "model/ops/cross_entropy.h"
#include "model/ops/elementwise.h"
#include "model/ops/embedding.h"
#include "model/ops/index.h"
#include "model/ops/matmul.h"
#include "model/ops/reduce.h"
#include "model/ops/rmsnorm.h"
#include "model/ops/rope.h"
#include "model/ops/softmax.h"
#include "model/ops/topk.h"
#include "model/ops/view.h"
#include "model/tensor/tensor.h"
