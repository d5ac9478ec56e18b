// fuse_attention: softmax(Q·Kᵀ·scale + mask)·V, as the exporters decompose
// it, becomes one Attention node (ops/attention.cc). See fuse_attention.cc
// for the patterns matched.
//
// attention_layout (run after fuse_attention, before autocast and
// fuse_elementwise): the exporters' head split, Reshape to [B, T, H, D] then
// Transpose(perm = [0, 2, 1, 3]), and the merge after the op, are absorbed
// into Attention's layout attribute: a Q, K or V made by such a Transpose that
// only this Attention reads is read untransposed (its layout entry becomes 1),
// and an output only such a Transpose reads is written transposed (output
// entry 1; the Transpose goes). A Q or K that is Rope(such a Transpose) is
// read the same way: the Rope runs on the untransposed [B, T, H, D] with its
// cos/sin tables viewed as [.., T, 1, D] (static tables that broadcast over
// heads only). Everything else is left as it is.
//
// pack_attention_qkv (after merge_matmuls and rope_blocks): when Q, K and V
// (all read seq-major) are Reshapes of the three outputs of one Split of a
// [B, T, W] tensor along W (GPT-2's fused c_attn projection, or BERT's q/k/v
// merged by merge_matmuls; Q then K then V), the Attention reads that tensor
// itself with packed = [Hq, Hkv], and the Split's copies go. After
// rope_blocks (Llama's merged q/k/v), Q and K are Ropes of the tensor's first
// two column blocks with the same tables and V a Reshape of a Slice of the
// rest: the Attention reads the tensor packed and takes the Ropes' cos/sin
// tables as its inputs 4 and 5 (RoPE in its prologue), so the Ropes and the
// Slice go.
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_attention(Graph& g);
void attention_layout(Graph& g);
void pack_attention_qkv(Graph& g);

}  // namespace tessera
