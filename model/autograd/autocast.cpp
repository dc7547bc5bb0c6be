#include "model/autograd/autocast.h"

namespace mlamoe {

namespace {
thread_local bool g_autocast = false;
}  // namespace

AutocastBf16::AutocastBf16(bool on) : saved_(g_autocast) { g_autocast = on; }
AutocastBf16::~AutocastBf16() { g_autocast = saved_; }
bool autocast_bf16() { return g_autocast; }

}  // namespace mlamoe
