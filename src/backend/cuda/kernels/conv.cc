// CUDA kernels for Conv and ConvTranspose (ops/conv.cc) through cuDNN's legacy
// descriptor API: Conv is cudnnConvolutionForward, ConvTranspose is the
// backward-data pass of the forward conv whose filter is ConvTranspose's W
// ([C, M/group, k...] maps M channels to C). Geometry comes from
// ops/conv_rules.h, as in the CPU kernels (backend/cpu/kernels/conv.cc).
//
// cuDNN pads symmetrically and takes 2 or 3 spatial dims, so:
//  - a 1-D op is given to cuDNN as 2-D with a leading extent-1 dim;
//  - a Conv with pad_begin != pad_end is run on its input padded into scratch
//    (conv_util.cu), with no padding left for cuDNN;
//  - a ConvTranspose whose output cuDNN cannot reach with pad = pad_begin is
//    computed unpadded into scratch and cropped by pad_begin (zeros past the
//    uncropped extent, which output_shape may ask for).
// Descriptors and the algorithm are chosen once per input shape, in the node
// state, on the plan's first (uncaptured) run. fp32/fp64 use FMA math only
// (no TF32) and GEMM-style algorithms (no FFT/Winograd), so they match the CPU
// at rel. L2 1e-5; f16/bf16 use tensor cores and accumulate in fp32.
#include <cudnn.h>

#include <climits>

#include "backend/cuda/device_context.h"
#include "backend/cuda/kernels/conv_util.h"
#include "ops/conv_rules.h"

namespace tessera::cuda {
namespace {

void check_dnn(const KernelContext& ctx, cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) ctx.error("[cudnn] ", what, ": ", cudnnGetErrorString(s));
}
#define TSR_DNN(ctx, call) check_dnn((ctx), (call), #call)

constexpr size_t kMaxWorkspace = size_t(1) << 30;
size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

bool precise(DType t) { return t == DType::f32 || t == DType::f64; }

cudnnDataType_t dnn_type(const KernelContext& ctx, DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: ctx.error("dtype ", dtype_name(t), " is not supported (float types only)");
  }
}

int to_int(const KernelContext& ctx, int64_t v) {
  if (v < 0 || v > INT_MAX) ctx.error("extent ", v, " does not fit cuDNN's int dims");
  return int(v);
}

// Per-spatial-dim values as cuDNN takes them: a 1-D list gets a leading `fill`.
std::vector<int> lifted(const KernelContext& ctx, const std::vector<int64_t>& v, int fill) {
  std::vector<int> out;
  if (v.size() == 1) out.push_back(fill);
  for (int64_t x : v) out.push_back(to_int(ctx, x));
  return out;
}

// [N, C, spatial...] for cuDNN (1-D lifted to [N, C, 1, W]).
std::vector<int> dnn_dims(const KernelContext& ctx, int64_t n, int64_t c, const Shape& spatial) {
  std::vector<int> d = {to_int(ctx, n), to_int(ctx, c)};
  for (int x : lifted(ctx, spatial, 1)) d.push_back(x);
  return d;
}

// Descriptors for one convolution, destroyed with the node state.
struct ConvState {
  bool ready = false;
  DType dtype = DType::f32;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;  // Conv: input, output; ConvTranspose: dy = X, dx = Y (or uncropped)
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;  // cudnnConvolutionFwdAlgo_t (Conv) or cudnnConvolutionBwdDataAlgo_t (ConvTranspose)
  size_t workspace = 0;
  bool staged = false;      // Conv: input padded into scratch; ConvTranspose: output cropped from scratch
  conv::Box box;            // the pad or crop copy
  int64_t box_planes = 0;
  size_t staged_bytes = 0;  // scratch before the workspace

  ConvState() = default;
  ConvState(const ConvState&) = delete;
  ConvState& operator=(const ConvState&) = delete;
  ~ConvState() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

void set_tensor(const KernelContext& ctx, cudnnTensorDescriptor_t d, DType t, const std::vector<int>& dims) {
  std::vector<int> strides(dims.size(), 1);
  for (int i = int(dims.size()) - 2; i >= 0; --i) strides[size_t(i)] = strides[size_t(i) + 1] * dims[size_t(i) + 1];
  TSR_DNN(ctx, cudnnSetTensorNdDescriptor(d, dnn_type(ctx, t), int(dims.size()), dims.data(), strides.data()));
}

void make_descriptors(const KernelContext& ctx, ConvState& st) {
  if (!st.x) TSR_DNN(ctx, cudnnCreateTensorDescriptor(&st.x));
  if (!st.y) TSR_DNN(ctx, cudnnCreateTensorDescriptor(&st.y));
  if (!st.w) TSR_DNN(ctx, cudnnCreateFilterDescriptor(&st.w));
  if (!st.conv) TSR_DNN(ctx, cudnnCreateConvolutionDescriptor(&st.conv));
}

void set_filter(const KernelContext& ctx, ConvState& st, const Tensor& w) {
  std::vector<int> dims = dnn_dims(ctx, w.dim(0), w.dim(1), rules::spatial_dims(w.shape()));
  TSR_DNN(ctx, cudnnSetFilterNdDescriptor(st.w, dnn_type(ctx, st.dtype), CUDNN_TENSOR_NCHW, int(dims.size()), dims.data()));
}

void set_conv(const KernelContext& ctx, ConvState& st, const rules::Window& win, const std::vector<int64_t>& pad) {
  std::vector<int> p = lifted(ctx, pad, 0), s = lifted(ctx, win.stride, 1), d = lifted(ctx, win.dilation, 1);
  cudnnDataType_t compute = st.dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  TSR_DNN(ctx, cudnnSetConvolutionNdDescriptor(st.conv, int(p.size()), p.data(), s.data(), d.data(),
                                               CUDNN_CROSS_CORRELATION, compute));
  TSR_DNN(ctx, cudnnSetConvolutionGroupCount(st.conv, int(ctx.attrs().get_int("group", 1))));
  TSR_DNN(ctx, cudnnSetConvolutionMathType(st.conv, precise(st.dtype) ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
}

// The dims cuDNN's forward conv gives for input `in` (empty when it refuses).
std::vector<int> forward_dims(const ConvState& st, cudnnTensorDescriptor_t in, size_t rank) {
  std::vector<int> dims(rank, 0);
  if (cudnnGetConvolutionNdForwardOutputDim(st.conv, in, st.w, int(rank), dims.data()) != CUDNN_STATUS_SUCCESS) return {};
  return dims;
}

bool tensor_math(cudnnMathType_t m) { return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; }

// Takes the first usable candidate: fp32/fp64 only GEMM-style algorithms on FMA
// math; the workspace within kMaxWorkspace.
template <typename Perf, typename WorkspaceFn>
bool pick_algo(const KernelContext& ctx, ConvState& st, const Perf* perf, int n, bool (*exact)(int),
               WorkspaceFn workspace_of) {
  for (int i = 0; i < n; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (precise(st.dtype) && (!exact(int(p.algo)) || tensor_math(p.mathType))) continue;
    TSR_DNN(ctx, cudnnSetConvolutionMathType(st.conv, precise(st.dtype) ? CUDNN_FMA_MATH : p.mathType));
    size_t bytes = 0;
    if (!workspace_of(int(p.algo), &bytes) || bytes > kMaxWorkspace) continue;
    st.algo = int(p.algo);
    st.workspace = bytes;
    return true;
  }
  return false;
}

// A candidate the heuristics did not offer, tried after theirs.
template <typename Perf, typename Algo>
Perf fallback(Algo algo, DType t) {
  Perf p{};
  p.algo = algo;
  p.status = CUDNN_STATUS_SUCCESS;
  p.mathType = precise(t) ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  return p;
}

bool exact_fwd(int a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool exact_bwd(int a) { return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1; }

void pick_forward(const KernelContext& ctx, ConvState& st) {
  cudnnHandle_t h = ctx.device().cudnn();
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT + 2];
  int n = 0;
  TSR_DNN(ctx, cudnnGetConvolutionForwardAlgorithm_v7(h, st.x, st.w, st.conv, st.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
  // The implicit GEMMs as the last resort: they take every geometry.
  for (auto algo : {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM})
    perf[n++] = fallback<cudnnConvolutionFwdAlgoPerf_t>(algo, st.dtype);
  auto ws = [&](int algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, st.x, st.w, st.conv, st.y, cudnnConvolutionFwdAlgo_t(algo), bytes) ==
           CUDNN_STATUS_SUCCESS;
  };
  if (!pick_algo(ctx, st, perf, n + 1, exact_fwd, ws)) ctx.error("cuDNN has no forward algorithm for this convolution");
}

void pick_backward_data(const KernelContext& ctx, ConvState& st) {
  cudnnHandle_t h = ctx.device().cudnn();
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT + 2];
  int n = 0;
  TSR_DNN(ctx, cudnnGetConvolutionBackwardDataAlgorithm_v7(h, st.w, st.x, st.conv, st.y,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
  for (auto algo : {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0})
    perf[n++] = fallback<cudnnConvolutionBwdDataAlgoPerf_t>(algo, st.dtype);
  auto ws = [&](int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, st.w, st.x, st.conv, st.y, cudnnConvolutionBwdDataAlgo_t(algo),
                                                        bytes) == CUDNN_STATUS_SUCCESS;
  };
  if (!pick_algo(ctx, st, perf, n + 1, exact_bwd, ws)) ctx.error("cuDNN has no algorithm for this transposed convolution");
}

void check_spatial_rank(const KernelContext& ctx, size_t k) {
  if (k < 1 || k > 3) ctx.error(k, " spatial dims are not supported on cuda (cuDNN takes 1 to 3)");
}

std::string dims_str(const std::vector<int>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

void setup_conv(const KernelContext& ctx, ConvState& st) {
  const Tensor &x = ctx.input(0), &w = ctx.input(1);
  const Tensor& y = ctx.output(0);
  st.dtype = x.dtype();
  rules::Window win = rules::sliding_window(rules::spatial_dims(x.shape()), rules::spatial_dims(w.shape()), ctx.attrs(),
                                            false, rules::node_label(ctx.node()));
  size_t k = win.in.size();
  check_spatial_rank(ctx, k);
  Shape in = win.in;
  std::vector<int64_t> pad = win.pad_begin;
  if (win.pad_begin != win.pad_end) {  // pad explicitly; cuDNN then pads nothing
    st.staged = true;
    st.box.rank = int(k);
    for (size_t i = 0; i < k; ++i) {
      in[i] += win.pad_begin[i] + win.pad_end[i];
      pad[i] = 0;
      st.box.src[i] = win.in[i];
      st.box.dst[i] = in[i];
      st.box.shift[i] = -win.pad_begin[i];
    }
    st.box_planes = x.dim(0) * x.dim(1);
    st.staged_bytes = align_up(size_t(st.box_planes * numel(in)) * dtype_size(st.dtype));
  }
  make_descriptors(ctx, st);
  set_tensor(ctx, st.x, st.dtype, dnn_dims(ctx, x.dim(0), x.dim(1), in));
  set_filter(ctx, st, w);
  set_conv(ctx, st, win, pad);
  std::vector<int> want = dnn_dims(ctx, y.dim(0), y.dim(1), rules::spatial_dims(y.shape()));
  std::vector<int> got = forward_dims(st, st.x, want.size());
  if (got != want) ctx.error("cuDNN's output dims ", dims_str(got), " disagree with the inferred ", dims_str(want));
  set_tensor(ctx, st.y, st.dtype, want);
  pick_forward(ctx, st);
}

void setup_conv_transpose(const KernelContext& ctx, ConvState& st) {
  const Tensor &x = ctx.input(0), &w = ctx.input(1);
  const Tensor& y = ctx.output(0);
  st.dtype = x.dtype();
  rules::Window win = rules::transpose_window(rules::spatial_dims(x.shape()), rules::spatial_dims(w.shape()), ctx.attrs(),
                                              rules::node_label(ctx.node()));
  size_t k = win.in.size();
  check_spatial_rank(ctx, k);
  make_descriptors(ctx, st);
  std::vector<int> dy = dnn_dims(ctx, x.dim(0), x.dim(1), win.in);
  set_tensor(ctx, st.x, st.dtype, dy);
  set_filter(ctx, st, w);
  // Output element o gathers input c through tap t where c*stride + t*dilation
  // = o + pad_begin: the backward data of a forward conv padded by pad_begin,
  // when that conv maps Y's extents back onto X's.
  set_conv(ctx, st, win, win.pad_begin);
  set_tensor(ctx, st.y, st.dtype, dnn_dims(ctx, y.dim(0), y.dim(1), win.out));
  if (forward_dims(st, st.y, dy.size()) != dy) {
    // Compute the uncropped output (extent stride*(in-1) + span, no padding), then crop.
    Shape full(k);
    st.staged = true;
    st.box.rank = int(k);
    for (size_t i = 0; i < k; ++i) {
      full[i] = win.stride[i] * (win.in[i] - 1) + win.span(i);
      st.box.src[i] = full[i];
      st.box.dst[i] = win.out[i];
      st.box.shift[i] = win.pad_begin[i];
    }
    st.box_planes = y.dim(0) * y.dim(1);
    st.staged_bytes = align_up(size_t(st.box_planes * numel(full)) * dtype_size(st.dtype));
    set_conv(ctx, st, win, std::vector<int64_t>(k, 0));
    set_tensor(ctx, st.y, st.dtype, dnn_dims(ctx, y.dim(0), y.dim(1), full));
    std::vector<int> got = forward_dims(st, st.y, dy.size());
    if (got != dy) ctx.error("cuDNN maps the uncropped output to ", dims_str(got), ", not the input's ", dims_str(dy));
  }
  pick_backward_data(ctx, st);
}

// alpha = 1, beta = 0 in the type cuDNN reads them as (double for f64, else float).
struct Scales {
  float f1 = 1.0f, f0 = 0.0f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d0) : &f0; }
};

cudnnHandle_t handle_on_stream(const KernelContext& ctx) {
  cudnnHandle_t h = ctx.device().cudnn();
  TSR_DNN(ctx, cudnnSetStream(h, ctx.stream()));
  return h;
}

// An empty reduction (no input channels, or an empty kernel): zeros plus bias.
void bias_only(const KernelContext& ctx, Tensor& y) {
  cudaError_t e = cudaMemsetAsync(y.raw(), 0, y.nbytes(), ctx.stream());
  if (e != cudaSuccess) ctx.error("cudaMemsetAsync: ", cudaGetErrorString(e));
  if (ctx.has_input(2))
    conv::add_bias(ctx, y.dtype(), y.raw(), ctx.input(2).raw(), y.dim(0), y.dim(1), y.numel() / (y.dim(0) * y.dim(1)));
}

void k_conv(KernelContext& ctx) {
  Tensor& y = ctx.output(0);
  if (y.numel() == 0) return;
  const Tensor &x = ctx.input(0), &w = ctx.input(1);
  if (x.numel() == 0 || w.numel() == 0) return bias_only(ctx, y);
  ConvState& st = ctx.state<ConvState>();
  if (!st.ready) {
    setup_conv(ctx, st);
    st.ready = true;
  }
  char* scratch = static_cast<char*>(ctx.scratch(st.staged_bytes + st.workspace));
  const void* src = x.raw();
  if (st.staged) {
    conv::copy_box(ctx, st.dtype, x.raw(), scratch, st.box_planes, st.box, nullptr, 1);
    src = scratch;
  }
  Scales s;
  cudnnHandle_t h = handle_on_stream(ctx);
  TSR_DNN(ctx, cudnnConvolutionForward(h, s.one(st.dtype), st.x, src, st.w, w.raw(), st.conv, cudnnConvolutionFwdAlgo_t(st.algo),
                                       scratch + st.staged_bytes, st.workspace, s.zero(st.dtype), st.y, y.raw()));
  if (ctx.has_input(2))
    conv::add_bias(ctx, st.dtype, y.raw(), ctx.input(2).raw(), y.dim(0), y.dim(1), y.numel() / (y.dim(0) * y.dim(1)));
}
TESSERA_CUDA_KERNEL("Conv", k_conv);

void k_conv_transpose(KernelContext& ctx) {
  Tensor& y = ctx.output(0);
  if (y.numel() == 0) return;
  const Tensor &x = ctx.input(0), &w = ctx.input(1);
  if (x.numel() == 0 || w.numel() == 0) return bias_only(ctx, y);
  ConvState& st = ctx.state<ConvState>();
  if (!st.ready) {
    setup_conv_transpose(ctx, st);
    st.ready = true;
  }
  char* scratch = static_cast<char*>(ctx.scratch(st.staged_bytes + st.workspace));
  void* dst = st.staged ? static_cast<void*>(scratch) : y.raw();
  Scales s;
  cudnnHandle_t h = handle_on_stream(ctx);
  TSR_DNN(ctx, cudnnConvolutionBackwardData(h, s.one(st.dtype), st.w, w.raw(), st.x, x.raw(), st.conv,
                                            cudnnConvolutionBwdDataAlgo_t(st.algo), scratch + st.staged_bytes, st.workspace,
                                            s.zero(st.dtype), st.y, dst));
  const void* bias = ctx.has_input(2) ? ctx.input(2).raw() : nullptr;
  if (st.staged) conv::copy_box(ctx, st.dtype, scratch, y.raw(), st.box_planes, st.box, bias, y.dim(1));
  else if (bias) conv::add_bias(ctx, st.dtype, y.raw(), bias, y.dim(0), y.dim(1), y.numel() / (y.dim(0) * y.dim(1)));
}
TESSERA_CUDA_KERNEL("ConvTranspose", k_conv_transpose);

}  // namespace
}  // namespace tessera::cuda
