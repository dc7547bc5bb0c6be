#include "train/fault.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include "model/tensor/error.h"

namespace mlamoe {

FaultKind planned_fault(int64_t rank, int64_t step, FaultSite site) {
  const char* f = std::getenv("MLAMOE_FAULT");
  if (!f) return FaultKind::None;
  std::string spec(f);
  size_t at = spec.find('@'), c1 = spec.find(':', at == std::string::npos ? 0 : at);
  MLAMOE_CHECK(at != std::string::npos && c1 != std::string::npos,
               "MLAMOE_FAULT must be KIND@RANK:STEP[:WHERE], got '" << spec << "'");
  size_t c2 = spec.find(':', c1 + 1);
  std::string kind = spec.substr(0, at), where = c2 == std::string::npos ? "step" : spec.substr(c2 + 1);
  int64_t r = std::stoll(spec.substr(at + 1, c1 - at - 1));
  int64_t s = std::stoll(spec.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1));
  MLAMOE_CHECK(where == "step" || where == "checkpoint", "MLAMOE_FAULT: WHERE must be step or checkpoint, got '" << where << "'");
  if (r != rank || s != step || (where == "checkpoint") != (site == FaultSite::Checkpoint)) return FaultKind::None;
  if (kind == "throw") return FaultKind::Throw;
  if (kind == "kill") return FaultKind::Kill;
  if (kind == "nan") return FaultKind::Nan;
  if (kind == "hang") return FaultKind::Hang;
  throw Error("MLAMOE_FAULT: KIND must be throw, kill, nan or hang, got '" + kind + "'");
}

void fault_point(int64_t rank, int64_t step, FaultSite site) {
  FaultKind k = planned_fault(rank, step, site);
  if (k == FaultKind::Kill) std::raise(SIGKILL);
  if (k == FaultKind::Throw) throw Error("injected fault at step " + std::to_string(step) + " (MLAMOE_FAULT)");
  while (k == FaultKind::Hang) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace mlamoe
