// tessera's public C++ API: compile a model into an Engine, save/load it, run it.
//
//   tessera::Settings s;
//   tessera::Engine e = tessera::Engine::build_onnx("model.onnx", s);
//   e.save("model.tsr");
//   auto outputs = tessera::Engine::load("model.tsr").run({{"x", tensor}});
#pragma once
#include "core/error.h"
#include "core/npy.h"
#include "core/tensor.h"
#include "engine/engine.h"
#include "engine/settings.h"
