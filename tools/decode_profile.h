// `tessera generate --profile-step N`: where one decode step's time goes.
#pragma once
#include <ostream>

#include "engine/engine.h"
#include "generate/generator.h"

namespace tessera::cli {

// Times the step three ways at `position` (every rank must call it: TP steps
// hold collectives): the GPU time of a replayed step (CUDA events), the wall
// time of Engine::run with its host copies, and one eager run timed per node,
// summed by op; prints the `top` costliest nodes when `print`.
void profile_decode_step(const Engine& e, const gen::Generator& g, int64_t position, int top, bool print, std::ostream& os);

}  // namespace tessera::cli
