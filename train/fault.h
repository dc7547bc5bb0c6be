// Fault injection for the robustness tests, driven by the environment (unset in normal runs):
//
//   MLAMOE_FAULT=KIND@RANK:STEP[:WHERE]
//     KIND   throw  an error on that rank (as a bug or a bad file would)
//            kill   SIGKILL on that rank (as a crashed node would)
//            nan    a NaN in that rank's gradients (as an overflow would)
//            hang   that rank sleeps forever, outside communication (as an endless loop or a stuck
//                   file system would); the collective watchdog must stop the job
//     WHERE  step (default): at the start of step STEP (1-based); checkpoint: halfway through
//            writing the checkpoint after step STEP (kill only)
#pragma once
#include <cstdint>

namespace mlamoe {

enum class FaultSite { Step, Checkpoint };
enum class FaultKind { None, Throw, Kill, Nan, Hang };

// The fault planned for (rank, step, site), if any.
FaultKind planned_fault(int64_t rank, int64_t step, FaultSite site);
// Raises a planned throw, kill or hang at this point (nan is applied by the caller).
void fault_point(int64_t rank, int64_t step, FaultSite site);

}  // namespace mlamoe
