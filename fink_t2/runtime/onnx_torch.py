"""Run an ONNX graph with PyTorch, on any device torch has (CUDA on a GPU executor, the CPU in the tests).

:class:`TorchGraph` walks the nodes of an ONNX ``ModelProto`` in their (topological) order and maps each
to one torch call. It knows the operators of t2's conversion (:mod:`fink_t2.model.onnx_export`), not
all of ONNX: a graph with any other operator is refused when it is loaded (``ValueError`` naming it),
never half-run. Nodes whose inputs are all constants (the int8 weights' ``DequantizeLinear``, shape
arithmetic) are computed once at load time. Integer tensors (shapes, indices) stay on the CPU; float
tensors live on ``device``. Float32 throughout, with TF32 off (cuDNN's default for convolutions would
otherwise round their inputs to 10-bit mantissas on Ampere and later GPUs).

onnx2torch would do the mapping for a larger operator set, but it imports torchvision, which does not
import beside the CPU build of torch that the tests use; this covers exactly what t2 needs.
"""

from __future__ import annotations

import contextlib

import numpy as np

#: ONNX TensorProto data types → torch dtype names
_DTYPES = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 11: "float64"}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ints(t) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _reduce(fn, x, axes, keepdims):
    if axes is None:
        axes = list(range(x.dim()))
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = fn(x, axis, bool(keepdims))
    return x


def _op_table(torch):
    F = torch.nn.functional

    def reshape(x, shape, allowzero=0):
        dims = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(_ints(shape))]
        return x.reshape(dims)

    def unsqueeze(x, axes):
        rank = x.dim() + len(_ints(axes))
        for axis in sorted(a % rank for a in _ints(axes)):
            x = x.unsqueeze(axis)
        return x

    def conv(x, w, b=None, strides=None, dilations=None, group=1, pads=None, auto_pad=b"NOTSET", kernel_shape=None):
        pads = list(pads or [0] * (2 * (x.dim() - 2)))
        half = len(pads) // 2
        if auto_pad not in (b"NOTSET", "NOTSET") or pads[:half] != pads[half:]:
            raise ValueError(f"Conv with auto_pad={auto_pad} / asymmetric pads {pads} is not supported")
        conv_fn = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.dim()]
        return conv_fn(x, w, b, stride=strides or 1, padding=pads[:half], dilation=dilations or 1, groups=group)

    def gather(x, index, axis=0):
        axis %= x.dim()
        flat = index.reshape(-1).to(torch.int64) % x.shape[axis]
        out = torch.index_select(x, axis, flat.to(x.device))
        return out.reshape(*x.shape[:axis], *index.shape, *x.shape[axis + 1 :])

    def slice_(x, starts, ends, axes=None, steps=None):
        axes = _ints(axes) if axes is not None else list(range(len(_ints(starts))))
        steps = _ints(steps) if steps is not None else [1] * len(axes)
        index = [slice(None)] * x.dim()
        for start, end, axis, step in zip(_ints(starts), _ints(ends), axes, steps):
            if step != 1:
                raise ValueError(f"Slice with step {step} is not supported")
            index[axis % x.dim()] = slice(start, end)
        return x[tuple(index)]

    def dequantize(x, scale, zero_point=None, axis=1):
        x = x.to(torch.float32) - (0 if zero_point is None else zero_point.to(torch.float32).reshape(
            [-1 if i == axis % x.dim() and zero_point.dim() else 1 for i in range(x.dim())]))
        if scale.dim():
            scale = scale.reshape([-1 if i == axis % x.dim() else 1 for i in range(x.dim())])
        return x * scale

    return {
        "Add": lambda a, b: a + b,
        "Sub": lambda a, b: a - b,
        "Mul": lambda a, b: a * b,
        "Div": lambda a, b: a / b,
        "Min": lambda a, b: torch.minimum(a, b.to(a.device)),
        "Max": lambda a, b: torch.maximum(a, b.to(a.device)),
        "Equal": lambda a, b: a == b,
        "Greater": lambda a, b: a > b,
        "Where": lambda c, a, b: torch.where(c, a, b),
        "MatMul": lambda a, b: torch.matmul(a, b),
        "Relu": lambda x: torch.relu(x),
        "Sqrt": lambda x: torch.sqrt(x),
        "Reciprocal": lambda x: torch.reciprocal(x),
        "Round": lambda x: torch.round(x),  # half to even, as ONNX's Round
        "Clip": lambda x, lo=None, hi=None: torch.clamp(x, lo, hi),
        "Softmax": lambda x, axis=-1: torch.softmax(x, dim=axis),
        "Transpose": lambda x, perm=None: x.permute(*(perm or reversed(range(x.dim())))),
        "Reshape": reshape,
        "Unsqueeze": unsqueeze,
        "Concat": lambda *xs, axis: torch.cat(xs, dim=axis),
        "Shape": lambda x: torch.tensor(list(x.shape), dtype=torch.int64),
        "Cast": lambda x, to: x.to(getattr(torch, _DTYPES[to])),
        "Gather": gather,
        "Slice": slice_,
        "Conv": conv,
        "DequantizeLinear": dequantize,
        "GlobalAveragePool": lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
        "ReduceMean": lambda x, axes=None, keepdims=1: _reduce(lambda t, a, k: t.mean(a, keepdim=k), x, axes, keepdims),
        "ReduceMin": lambda x, axes=None, keepdims=1: _reduce(lambda t, a, k: t.amin(a, keepdim=k), x, axes, keepdims),
        "ReduceMax": lambda x, axes=None, keepdims=1: _reduce(lambda t, a, k: t.amax(a, keepdim=k), x, axes, keepdims),
    }


class TorchGraph:
    """An ONNX graph (one input, one output) as torch calls on ``device``; ``graph(x)`` → output tensor."""

    def __init__(self, model, device="cpu"):
        import torch
        from onnx import numpy_helper

        self.torch = torch
        self.device = torch.device(device)
        self.ops = _op_table(torch)
        graph = model.graph
        unknown = sorted({n.op_type for n in graph.node if n.op_type not in self.ops or n.domain not in ("", "ai.onnx")})
        if unknown:
            raise ValueError(f"ONNX operators not supported by fink_t2.runtime.onnx_torch: {', '.join(unknown)}")
        constants = {init.name: torch.from_numpy(np.array(numpy_helper.to_array(init))) for init in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ValueError(f"expected one input and one output, found {inputs} → {[o.name for o in graph.output]}")
        self.input_name, self.output_name = inputs[0], graph.output[0].name
        self.nodes = []
        for node in graph.node:
            attrs = _attrs(node)
            if all(not name or name in constants for name in node.input):  # fold on the CPU, once
                with self._precision():
                    out = self._apply(node.op_type, [constants.get(n) for n in node.input], attrs)
                constants.update(zip(node.output, out if isinstance(out, tuple) else (out,)))
            else:
                self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        self.constants = {name: (t.to(self.device) if t.is_floating_point() or t.dtype == torch.bool else t)
                          for name, t in constants.items()}

    def _apply(self, op, args, attrs):
        while args and args[-1] is None:  # trailing optional inputs left out
            args = args[:-1]
        return self.ops[op](*args, **attrs)

    @contextlib.contextmanager
    def _precision(self):
        """Float32 matrix products and convolutions (no TF32), restored afterwards."""
        torch = self.torch
        matmul = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False), torch.inference_mode():
                yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul

    def __call__(self, x):
        values = dict(self.constants)
        values[self.input_name] = x
        with self._precision():
            for op, inputs, outputs, attrs in self.nodes:
                out = self._apply(op, [values.get(n) if n else None for n in inputs], attrs)
                values.update(zip(outputs, out if isinstance(out, tuple) else (out,)))
        return values[self.output_name]
