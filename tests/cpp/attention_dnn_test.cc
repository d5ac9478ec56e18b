// TESSERA_ATTENTION's values (backend/cuda/kernels/attention_dnn.h): no GPU
// needed, so CI checks them where the CUDA backend is built.
#ifdef TESSERA_WITH_CUDA
#include <gtest/gtest.h>

#include <string>

#include "backend/cuda/kernels/attention_dnn.h"
#include "core/error.h"

using namespace tessera;

TEST(AttentionEnv, CudnnByDefaultFlashKeepsTesserasKernels) {
  EXPECT_TRUE(cuda::dnn::cudnn_attention_from(nullptr));
  EXPECT_TRUE(cuda::dnn::cudnn_attention_from(""));
  EXPECT_TRUE(cuda::dnn::cudnn_attention_from("cudnn"));
  EXPECT_FALSE(cuda::dnn::cudnn_attention_from("flash"));
}

TEST(AttentionEnv, AnUnknownValueIsAnErrorNamingTheChoices) {
  try {
    cuda::dnn::cudnn_attention_from("flsh");
    FAIL() << "TESSERA_ATTENTION=flsh was accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("TESSERA_ATTENTION=flsh"), std::string::npos) << m;
    EXPECT_NE(m.find("cudnn (the default), flash"), std::string::npos) << m;
  }
}
#endif
