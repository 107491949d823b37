"""Caffe models as ONNX, in memory: OpenCV 5 dropped its Caffe importer, so we translate instead.

Only what the HyperLPR networks use is supported (Convolution, BatchNorm, Scale, ReLU, PReLU,
Pooling, Concat, InnerProduct, Softmax, Reshape, Flatten, Permute, Dropout); the SSD's PriorBox and
DetectionOutput layers are left out and done in numpy by :mod:`detector.plates.hyperlpr`.

The ``.caffemodel`` is read with a small protobuf wire decoder and the ``.prototxt`` with a small
text-format parser, so neither Caffe nor its generated ``caffe_pb2`` is needed.

Example::

    >>> parse_prototxt('name: "n" layer { name: "c" type: "ReLU" bottom: "x" top: "x" }')
    {'name': ['n'], 'layer': [{'name': ['c'], 'type': ['ReLU'], 'bottom': ['x'], 'top': ['x']}]}
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

Message = dict[str, list[Any]]

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n?|("(?:[^"\\]|\\.)*")|([{}:])|([^\s{}:"#]+))')


class CaffeError(ValueError):
    """A prototxt or caffemodel this translator cannot read."""


# --- prototxt (protobuf text format) ------------------------------------------------------------

def _tokens(text: str) -> Iterator[str]:
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise CaffeError(f"prototxt: cannot read at {text[position:position + 30]!r}")
            return
        position = match.end()
        token = match.group(1) or match.group(2) or match.group(3)
        if token:
            yield token


def _value(token: str) -> Any:
    if token.startswith('"'):
        return token[1:-1]
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(token, token)  # an enum name stays a string


def parse_prototxt(text: str) -> Message:
    """The text format as nested dicts; every field is a list (fields may repeat)."""
    stack: list[Message] = [{}]
    tokens = _tokens(text)
    for token in tokens:
        if token == "}":
            stack.pop()
            if not stack:
                raise CaffeError("prototxt: unbalanced '}'")
            continue
        following = next(tokens, None)
        if following == ":":
            following = next(tokens, None)
            if following == "{":
                child: Message = {}
                stack[-1].setdefault(token, []).append(child)
                stack.append(child)
            elif following is None:
                raise CaffeError(f"prototxt: {token} has no value")
            else:
                stack[-1].setdefault(token, []).append(_value(following))
        elif following == "{":
            child = {}
            stack[-1].setdefault(token, []).append(child)
            stack.append(child)
        else:
            raise CaffeError(f"prototxt: expected ':' or '{{' after {token!r}")
    if len(stack) != 1:
        raise CaffeError("prototxt: unbalanced '{'")
    return stack[0]


# --- caffemodel (protobuf wire format) ----------------------------------------------------------

def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: varints as int, the rest as bytes."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise CaffeError(f"caffemodel: unsupported wire type {wire}")
        yield number, wire, value


def _blob(data: bytes) -> np.ndarray:
    legacy = [0, 0, 0, 0]  # num, channels, height, width
    shape: list[int] = []
    floats: list[np.ndarray] = []
    raw_type, raw = 1, b""
    for number, wire, value in _fields(data):
        if number in (1, 2, 3, 4):
            legacy[number - 1] = value
        elif number == 5:  # data, packed or one float per field
            floats.append(np.frombuffer(value, "<f4"))
        elif number == 8:  # double_data
            floats.append(np.frombuffer(value, "<f8").astype(np.float32))
        elif number == 10:  # raw_data_type: DOUBLE, FLOAT, FLOAT16
            raw_type = value
        elif number == 12:  # raw_data (caffe variants that store half floats)
            raw = value
        elif number == 7:
            for sub, sub_wire, dims in _fields(value):
                if sub == 1 and sub_wire == 2:
                    position = 0
                    while position < len(dims):
                        dim, position = _varint(dims, position)
                        shape.append(dim)
                elif sub == 1:
                    shape.append(dims)
    if raw:
        floats.append(np.frombuffer(raw, {0: "<f8", 1: "<f4", 2: "<f2"}[raw_type]).astype(np.float32))
    array = np.concatenate(floats) if floats else np.zeros(0, np.float32)
    if not shape:
        shape = [d for d in legacy if d] or [array.size]
    return array.astype(np.float32).reshape(shape)


def read_caffemodel(data: bytes) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs (weights, biases, statistics) from a binary ``.caffemodel``."""
    weights: dict[str, list[np.ndarray]] = {}
    for number, _, value in _fields(data):
        if number not in (100, 2):  # layer (LayerParameter), layers (V1LayerParameter)
            continue
        name_field, blob_field = (1, 7) if number == 100 else (4, 6)
        name, blobs = "", []
        for sub, _, sub_value in _fields(value):
            if sub == name_field:
                name = sub_value.decode("utf-8")
            elif sub == blob_field:
                blobs.append(_blob(sub_value))
        if blobs:
            weights[name] = blobs
    return weights


# --- translation to ONNX --------------------------------------------------------------------------

def _one(params: Message, key: str, default: Any = None) -> Any:
    values = params.get(key)
    return values[0] if values else default


def _pair(params: Message, key: str, default: int) -> tuple[int, int]:
    """Caffe's ``key`` / ``key_h`` + ``key_w`` (``kernel`` is spelt ``kernel_size``)."""
    base = "kernel" if key == "kernel_size" else key
    both = _one(params, key, default)
    return int(_one(params, f"{base}_h", both)), int(_one(params, f"{base}_w", both))


@dataclass
class _Graph:
    weights: dict[str, list[np.ndarray]]
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)  # caffe blob -> latest onnx tensor
    rank: dict[str, int] = field(default_factory=dict)
    count: int = 0

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], top: str, rank: int, **attributes: Any) -> None:
        from onnx import helper

        self.count += 1
        output = f"{top}__{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        self.current[top], self.rank[top] = output, rank


def to_onnx(prototxt: str, caffemodel: bytes, outputs: list[str], shapes: Sequence[str] = ()) -> bytes:
    """A serialised ONNX model (opset 13, input ``data`` NCHW of any size): the named blobs, then the
    shapes (int64) of the blobs named in ``shapes`` (the SSD's prior grids depend on them)."""
    from onnx import TensorProto, helper

    net = parse_prototxt(prototxt)
    graph = _Graph(read_caffemodel(caffemodel))
    graph.current["data"], graph.rank["data"] = "data", 4
    for layer in net.get("layer", []):
        _layer(graph, layer)
    missing = [name for name in [*outputs, *shapes] if name not in graph.current]
    if missing:
        raise CaffeError(f"no such blob: {missing}")
    shape_outputs = []
    for name in shapes:
        shape_outputs.append(f"{name}__shape")
        graph.nodes.append(helper.make_node("Shape", [graph.current[name]], [f"{name}__shape"]))
    onnx_graph = helper.make_graph(
        graph.nodes, "caffe",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(graph.current[name], TensorProto.FLOAT,
                                       [f"{name}_{axis}" for axis in range(graph.rank[name])]) for name in outputs]
        + [helper.make_tensor_value_info(name, TensorProto.INT64, [4]) for name in shape_outputs],
        graph.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="nonsite")
    model.ir_version = 8
    return model.SerializeToString()


def _layer(graph: _Graph, layer: Message) -> None:
    kind, name = _one(layer, "type"), _one(layer, "name")
    if kind in ("Input", "PriorBox", "DetectionOutput"):
        return
    if any(bottom not in graph.current for bottom in layer.get("bottom", [])):
        return  # fed by a layer left out (the priors' Concat)
    bottoms = [graph.current[b] for b in layer.get("bottom", [])]
    top = _one(layer, "top", name)
    blobs = graph.weights.get(name, [])
    rank = graph.rank.get(_one(layer, "bottom", ""), 4)
    if kind == "Dropout":
        graph.current[top] = bottoms[0]
    elif kind == "Convolution":
        p = _one(layer, "convolution_param", {})
        kernel, stride, pad = _pair(p, "kernel_size", 1), _pair(p, "stride", 1), _pair(p, "pad", 0)
        inputs = [bottoms[0], graph.constant(name + "_w", blobs[0])]
        if _one(p, "bias_term", True) and len(blobs) > 1:
            inputs.append(graph.constant(name + "_b", blobs[1].reshape(-1)))
        dilation = int(_one(p, "dilation", 1))
        graph.node("Conv", inputs, top, 4, kernel_shape=list(kernel), strides=list(stride),
                   pads=[pad[0], pad[1], pad[0], pad[1]], group=int(_one(p, "group", 1)),
                   dilations=[dilation, dilation])
    elif kind == "BatchNorm":
        p = _one(layer, "batch_norm_param", {})
        factor = float(blobs[2].reshape(-1)[0]) if len(blobs) > 2 else 1.0
        factor = 0.0 if factor == 0 else 1.0 / factor
        mean, var = blobs[0].reshape(-1) * factor, blobs[1].reshape(-1) * factor
        scale = 1.0 / np.sqrt(var + float(_one(p, "eps", 1e-5)))
        shape = (-1, 1, 1) if rank == 4 else (-1,)
        graph.node("Mul", [bottoms[0], graph.constant(name + "_s", scale.reshape(shape))], top + "_mul", rank)
        graph.node("Add", [graph.current[top + "_mul"], graph.constant(name + "_b", (-mean * scale).reshape(shape))],
                   top, rank)
    elif kind == "Scale":
        shape = (-1, 1, 1) if rank == 4 else (-1,)
        graph.node("Mul", [bottoms[0], graph.constant(name + "_s", blobs[0].reshape(shape))], top + "_mul", rank)
        if len(blobs) > 1:
            graph.node("Add", [graph.current[top + "_mul"], graph.constant(name + "_b", blobs[1].reshape(shape))],
                       top, rank)
        else:
            graph.current[top] = graph.current[top + "_mul"]
    elif kind == "ReLU":
        slope = float(_one(_one(layer, "relu_param", {}), "negative_slope", 0.0))
        if slope:
            graph.node("LeakyRelu", bottoms[:1], top, rank, alpha=slope)
        else:
            graph.node("Relu", bottoms[:1], top, rank)
    elif kind == "PReLU":
        shape = (-1, 1, 1) if rank == 4 else (-1,)
        graph.node("PRelu", [bottoms[0], graph.constant(name + "_slope", blobs[0].reshape(shape))], top, rank)
    elif kind == "Pooling":
        p = _one(layer, "pooling_param", {})
        kernel, stride, pad = _pair(p, "kernel_size", 1), _pair(p, "stride", 1), _pair(p, "pad", 0)
        method = _one(p, "pool", "MAX")
        if _one(p, "global_pooling", False):
            graph.node("GlobalMaxPool" if method in ("MAX", 0) else "GlobalAveragePool", bottoms[:1], top, 4)
        else:
            attributes: dict[str, Any] = dict(kernel_shape=list(kernel), strides=list(stride),
                                              pads=[pad[0], pad[1], pad[0], pad[1]], ceil_mode=1)
            if method in ("MAX", 0):
                graph.node("MaxPool", bottoms[:1], top, 4, **attributes)
            else:
                graph.node("AveragePool", bottoms[:1], top, 4, count_include_pad=1, **attributes)
    elif kind == "Concat":
        axis = int(_one(_one(layer, "concat_param", {}), "axis", 1))
        graph.node("Concat", bottoms, top, rank, axis=axis)
    elif kind == "InnerProduct":
        p = _one(layer, "inner_product_param", {})
        flat = bottoms[0]
        if rank != 2:
            graph.node("Flatten", bottoms[:1], top + "_flat", 2, axis=1)
            flat = graph.current[top + "_flat"]
        weight = blobs[0].reshape(int(_one(p, "num_output")), -1)
        inputs = [flat, graph.constant(name + "_w", weight)]
        if _one(p, "bias_term", True) and len(blobs) > 1:
            inputs.append(graph.constant(name + "_b", blobs[1].reshape(-1)))
        graph.node("Gemm", inputs, top, 2, transB=1)
    elif kind == "Softmax":
        graph.node("Softmax", bottoms[:1], top, rank, axis=int(_one(_one(layer, "softmax_param", {}), "axis", 1)))
    elif kind == "Flatten":
        graph.node("Flatten", bottoms[:1], top, 2, axis=int(_one(_one(layer, "flatten_param", {}), "axis", 1)))
    elif kind == "Permute":
        order = [int(o) for o in _one(layer, "permute_param", {}).get("order", [])]
        graph.node("Transpose", bottoms[:1], top, rank, perm=order)
    elif kind == "Reshape":
        dims = [int(d) for d in _one(_one(layer, "reshape_param", {}), "shape", {}).get("dim", [])]
        shape = graph.constant(name + "_shape", np.zeros(0))  # replaced below by an int64 tensor
        from onnx import numpy_helper

        graph.initializers[-1] = numpy_helper.from_array(np.array(dims, np.int64), shape)
        graph.node("Reshape", [bottoms[0], shape], top, len(dims))
    else:
        raise CaffeError(f"layer {name!r}: type {kind!r} is not supported")


def load(folder: Path, stem: str, outputs: list[str], shapes: Sequence[str] = ()) -> bytes:
    """``folder/stem.prototxt`` + ``folder/stem.caffemodel`` as ONNX bytes (see :func:`to_onnx`)."""
    return to_onnx((folder / f"{stem}.prototxt").read_text(encoding="utf-8"),
                   (folder / f"{stem}.caffemodel").read_bytes(), outputs, shapes)
