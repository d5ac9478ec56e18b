"""Cases for Conv and ConvTranspose (src/ops/conv.cc): 1-D, 2-D and 3-D,
group and depthwise, strides, dilations, explicit pads, every auto_pad,
optional bias, kernel_shape given or taken from the weight; ConvTranspose's
output_padding and output_shape.

Inputs are fresh random arrays each run; weights are graph inputs in some
cases and initializers (`constants`) in others. ONNX Runtime has no float64
Conv/ConvTranspose and rejects dilations under SAME auto_pad, so those are
checked by tests/cpp/conv_ops_test.cc instead.
"""
import numpy as np

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def conv(x, w, b=None, const=False, **attrs):
    ins = {"x": f32(*x), "w": f32(*w)}
    if b is not None:
        ins["b"] = f32(b)
    return ins, attrs, (["w", "b"] if b is not None else ["w"]) if const else []


def conv_cases():
    specs = [
        ("2d_basic", conv((1, 3, 8, 8), (4, 3, 3, 3))),
        ("2d_bias_const", conv((2, 3, 7, 9), (5, 3, 3, 3), 5, const=True)),
        ("2d_pad_stride", conv((2, 3, 10, 9), (4, 3, 3, 3), 4, pads=[1, 1, 1, 1], strides=[2, 2])),
        ("2d_asym_pads", conv((1, 2, 6, 7), (3, 2, 3, 2), pads=[0, 1, 2, 0], strides=[1, 2])),
        ("2d_dilation", conv((1, 2, 11, 10), (3, 2, 3, 3), 3, dilations=[2, 3], pads=[2, 1, 2, 1])),
        ("2d_kernel_shape_attr", conv((1, 2, 5, 5), (2, 2, 2, 3), kernel_shape=[2, 3])),
        ("2d_group2", conv((2, 4, 6, 6), (6, 2, 3, 3), 6, group=2, pads=[1, 1, 1, 1])),
        ("2d_depthwise", conv((2, 8, 9, 9), (8, 1, 3, 3), 8, const=True, group=8, pads=[1, 1, 1, 1], strides=[2, 2])),
        ("2d_depthwise_mult", conv((1, 3, 7, 7), (6, 1, 5, 5), group=3, pads=[2, 2, 2, 2])),
        ("2d_same_upper", conv((1, 3, 7, 8), (2, 3, 3, 4), auto_pad="SAME_UPPER", strides=[2, 3])),
        ("2d_same_lower", conv((1, 3, 7, 8), (2, 3, 4, 3), auto_pad="SAME_LOWER", strides=[2, 2])),
        ("2d_valid", conv((1, 3, 8, 9), (2, 3, 3, 2), 2, auto_pad="VALID", strides=[2, 2])),
        ("2d_1x1", conv((2, 16, 5, 5), (8, 16, 1, 1), 8, const=True)),
        ("2d_wide", conv((1, 32, 14, 14), (64, 32, 3, 3), 64, const=True, pads=[1, 1, 1, 1])),
        ("1d", conv((2, 3, 20), (4, 3, 5), 4, pads=[2, 1], strides=[3])),
        ("1d_dilated_group", conv((1, 4, 16), (4, 2, 3), group=2, dilations=[3])),
        ("1d_same_lower", conv((1, 2, 9), (3, 2, 4), auto_pad="SAME_LOWER", strides=[2])),
        ("3d", conv((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), 3, pads=[1, 0, 1, 1, 0, 1], strides=[1, 2, 2])),
        ("3d_group_dilated", conv((1, 4, 6, 6, 6), (4, 2, 2, 2, 2), group=2, dilations=[2, 1, 2])),
    ]
    cases = [Case("Conv", ins, attrs, constants=consts, id=name) for name, (ins, attrs, consts) in specs]
    x, w = f32(1, 2, 6, 6), f32(3, 2, 3, 3)
    cases.append(Case("Conv", {"x": x.astype(np.float16), "w": w.astype(np.float16)}, {"pads": [1, 1, 1, 1]}, id="float16"))
    # float16 through the CUDA backend's staged paths: asymmetric pads (padded into
    # scratch), depthwise groups and the bias add.
    cases.append(Case("Conv", {"x": f32(1, 4, 7, 6).astype(np.float16), "w": f32(4, 1, 3, 3).astype(np.float16),
                               "b": f32(4).astype(np.float16)},
                      {"group": 4, "pads": [0, 1, 2, 0], "strides": [1, 2]}, id="float16_depthwise_asym_bias"))
    cases.append(Case("Conv", {"x": f32(1, 4, 5, 6, 5).astype(np.float16), "w": f32(6, 2, 3, 2, 3).astype(np.float16)},
                      {"group": 2, "dilations": [1, 2, 1], "pads": [1, 1, 1, 1, 1, 1]}, id="float16_3d_group_dilated"))
    cases.append(Case("Conv", {"x": f32(2, 4, 7, 8), "w": f32(6, 2, 3, 3), "b": f32(6)},
                      {"group": 2, "dilations": [1, 2], "pads": [1, 0, 0, 2], "strides": [2, 1]}, id="2d_asym_group_dilated_bias"))
    cases.append(Case("Conv", {"x": f32(1, 3, 11), "w": f32(3, 1, 4), "b": f32(3)},
                      {"group": 3, "auto_pad": "SAME_UPPER"}, id="1d_depthwise_same_upper_bias"))
    cases.append(Case("Conv", {"x": f32(1, 2, 5, 5), "w": f32(2, 2, 3, 3), "b": f32(2)}, {"auto_pad": "SAME_UPPER"},
                      opset=13, id="opset13"))
    cases.append(Case("Conv", {"x": f32(1, 2, 5, 5), "w": f32(2, 2, 3, 3)}, {"strides": [2, 2]}, opset=21, id="opset21"))
    return cases


def conv_transpose_cases():
    specs = [
        ("2d_basic", conv((1, 3, 4, 5), (3, 2, 3, 3))),
        ("2d_stride_bias", conv((2, 3, 4, 4), (3, 4, 3, 3), 4, const=True, strides=[2, 2])),
        ("2d_pads", conv((1, 2, 5, 5), (2, 3, 3, 3), 3, strides=[2, 2], pads=[1, 1, 1, 1])),
        ("2d_asym_pads", conv((1, 2, 4, 5), (2, 2, 4, 3), strides=[2, 3], pads=[1, 0, 2, 1])),
        ("2d_output_padding", conv((1, 2, 4, 4), (2, 2, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
        ("2d_dilation", conv((1, 2, 5, 4), (2, 3, 3, 2), dilations=[2, 3], strides=[1, 2])),
        ("2d_group", conv((1, 4, 5, 5), (4, 3, 3, 3), 6, group=2, strides=[2, 2])),
        ("2d_depthwise", conv((2, 3, 6, 6), (3, 1, 4, 4), 3, const=True, group=3, strides=[2, 2], pads=[1, 1, 1, 1])),
        ("2d_output_shape", conv((1, 2, 4, 4), (2, 2, 3, 3), strides=[2, 2], output_shape=[8, 8])),
        ("2d_output_shape_odd", conv((1, 2, 4, 5), (2, 2, 3, 3), strides=[2, 2], output_shape=[8, 10])),
        ("2d_output_shape_upper", conv((1, 2, 4, 5), (2, 2, 3, 3), strides=[2, 2], output_shape=[8, 10],
                                       auto_pad="SAME_UPPER")),
        ("2d_same_upper", conv((1, 2, 4, 5), (2, 2, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2])),
        ("2d_same_lower", conv((1, 2, 4, 5), (2, 2, 3, 4), auto_pad="SAME_LOWER", strides=[2, 2])),
        ("2d_valid", conv((1, 2, 3, 3), (2, 2, 3, 3), auto_pad="VALID", strides=[2, 1])),
        ("2d_kernel_shape_attr", conv((1, 2, 3, 4), (2, 2, 2, 3), kernel_shape=[2, 3])),
        ("1d", conv((2, 3, 7), (3, 2, 4), 2, strides=[3], pads=[1, 2])),
        ("1d_output_padding", conv((1, 2, 5), (2, 2, 3), strides=[3], output_padding=[2])),
        ("1d_group_dilated", conv((1, 4, 6), (4, 1, 3), group=2, dilations=[2])),
        ("3d", conv((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), 2, strides=[2, 1, 2], pads=[0, 1, 0, 1, 1, 0])),
    ]
    cases = [Case("ConvTranspose", ins, attrs, constants=consts, id=name) for name, (ins, attrs, consts) in specs]
    h = np.float16
    cases += [
        Case("ConvTranspose", {"x": f32(1, 2, 4, 4).astype(h), "w": f32(2, 3, 3, 3).astype(h), "b": f32(3).astype(h)},
             {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, id="float16_output_padding_bias"),
        Case("ConvTranspose", {"x": f32(1, 4, 4, 5).astype(h), "w": f32(4, 2, 3, 3).astype(h), "b": f32(4).astype(h)},
             {"group": 2, "strides": [2, 2], "pads": [1, 0, 0, 1]}, id="float16_group_asym_pads_bias"),
        Case("ConvTranspose", {"x": f32(2, 3, 5, 4), "w": f32(3, 2, 3, 2), "b": f32(2)},
             {"strides": [3, 2], "pads": [2, 0, 0, 1], "dilations": [1, 2]}, id="2d_asym_pads_dilated_bias"),
    ]
    return cases


CASES = conv_cases() + conv_transpose_cases()
