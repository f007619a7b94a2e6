"""``fink-t2 export-onnx``: the shipped ``.tflite`` as an ONNX file beside it, for the CUDA backends.

The GPU backends of :mod:`fink_t2.runtime.gpu_onnx` (ONNX Runtime's CUDA provider, or PyTorch on CUDA) run
``t2.onnx``, converted from ``t2.tflite`` by tf2onnx (which reads ``.tflite`` files), then rewritten
so that it computes what the TFLite interpreter computes:

* The model is dynamic-range quantized: its six ``FULLY_CONNECTED`` layers hold int8 weights and
  quantize their float input on the fly (``asymmetric_quantize_inputs``). TFLite and XNNPACK do that
  **per row** (one scale and zero point per row of the matrix product, i.e. per alert and node), so
  an alert's probabilities never depend on the other alerts of its batch. tf2onnx writes ONNX's
  ``DynamicQuantizeLinear``, which quantizes the **whole tensor** with one scale: probabilities then
  move by up to 0.05 and depend on the batch. Each ``DynamicQuantizeLinear → DequantizeLinear`` pair
  is replaced here by the per-row asymmetric int8 quantization of XNNPACK (the interpreter's CPU
  kernels), written in plain ONNX ops: range widened to hold 0, 255 levels over it, zero point
  nudged from the nearer end, round half to even, clip to [−128, 127], back to float.
* tf2onnx also quantizes the float bias of one layer; TFLite never does: the bias is used as it is.

The file carries, in its ONNX metadata, the source file's SHA-256 (``fink_t2.source_sha256``), its
contract (``fink_t2.core.contract``) and how it was made (``fink_t2.converter``). The runtime refuses a
conversion whose SHA-256 is not the running model's (a stale ``t2.onnx`` after a new ``t2.tflite``).
The export checks the result against the interpreter before writing it (``EXPORT_TOLERANCE``).

ONNX Runtime must run this file with basic graph optimizations only: its extended level fuses the
dequantized weights and the matrix products into its own quantized kernels, which moves the
probabilities by up to 0.03 (seen with onnxruntime 1.32 on the CPU). With basic optimizations, on the
65,542 real BTS alert views, the file agrees with the XNNPACK interpreter within 1.5e-3 (3 views above
1e-3: a value on a quantization step's edge rounds the other way after float differences upstream);
TFLite's own reference kernels differ from its XNNPACK kernels by up to 2.2e-3 on the same views.

Needs tf2onnx, onnx and onnxruntime (``gpu`` extra) and TensorFlow (``train`` extra; tf2onnx reads
the ``.tflite`` through it)::

    fink-t2 export-onnx [--model fink_t2/data/t2.tflite] [--output fink_t2/data/t2.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from fink_t2.runtime.gpu_onnx import META_CONTRACT, META_SHA, onnx_path_for, probe_batch

#: largest |ONNX − interpreter| probability accepted by the export's own check
EXPORT_TOLERANCE = 1e-3
OPSET = 17
META_CONVERTER = "fink_t2.converter"


def _per_row_quantize(graph, x: str, out: str, prefix: str) -> list:
    """Nodes computing ``out`` = TFLite's per-row asymmetric int8 fake-quantization of ``x`` (last axis)."""
    from onnx import helper, numpy_helper

    def const(name, value):
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), f"{prefix}/{name}"))
        return f"{prefix}/{name}"

    zero, levels, qmin, qmax, one = (const(n, v) for n, v in
                                     (("zero", 0.0), ("levels", 255.0), ("qmin", -128.0), ("qmax", 127.0), ("one", 1.0)))
    t = lambda name: f"{prefix}/{name}"
    node = helper.make_node
    return [
        node("ReduceMin", [x], [t("min")], axes=[-1], keepdims=1),
        node("ReduceMax", [x], [t("max")], axes=[-1], keepdims=1),
        node("Min", [t("min"), zero], [t("rmin")]),  # the range always holds 0
        node("Max", [t("max"), zero], [t("rmax")]),
        node("Sub", [t("rmax"), t("rmin")], [t("span")]),
        node("Equal", [t("span"), zero], [t("flat")]),  # an all-zero row: multiplier 1, quantized to 0
        node("Where", [t("flat"), one, t("span")], [t("safe_span")]),
        node("Div", [levels, t("safe_span")], [t("mult")]),  # quantized units per unit of x
        node("Mul", [t("rmin"), t("mult")], [t("rmin_q")]),
        node("Mul", [t("rmax"), t("mult")], [t("rmax_q")]),
        node("Add", [qmin, t("rmin_q")], [t("err_min")]),
        node("Add", [qmax, t("rmax_q")], [t("err_max")]),
        node("Add", [t("err_min"), t("err_max")], [t("err")]),
        node("Greater", [t("err"), zero], [t("from_min")]),
        node("Sub", [qmin, t("rmin_q")], [t("zp_min")]),
        node("Sub", [qmax, t("rmax_q")], [t("zp_max")]),
        node("Where", [t("from_min"), t("zp_min"), t("zp_max")], [t("zp_raw")]),
        node("Clip", [t("zp_raw"), qmin, qmax], [t("zp_clip")]),
        node("Round", [t("zp_clip")], [t("zp")]),  # half to even, as rintf
        node("Mul", [x, t("mult")], [t("x_scaled")]),
        node("Add", [t("x_scaled"), t("zp")], [t("x_shift")]),
        node("Round", [t("x_shift")], [t("x_round")]),
        node("Clip", [t("x_round"), qmin, qmax], [t("q")]),
        node("Sub", [t("q"), t("zp")], [t("q_centered")]),
        node("Div", [t("q_centered"), t("mult")], [out]),
    ]


def per_row_dynamic_quantization(model):
    """Rewrite tf2onnx's per-tensor ``DynamicQuantizeLinear → DequantizeLinear`` pairs as TFLite's per row.

    A pair applied to a constant (a float bias) is removed: TFLite adds the bias unquantized.
    Returns the number of pairs rewritten and removed; raises ValueError on a pattern it does not know.
    """
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced, new_nodes = set(), []
    rewritten = removed = 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            continue
        users = list({id(u): u for name in node.output for u in consumers.get(name, [])}.values())
        if len(users) != 1 or users[0].op_type != "DequantizeLinear" or list(users[0].input) != list(node.output):
            raise ValueError(f"{node.name}: DynamicQuantizeLinear not followed by one DequantizeLinear")
        dequant = users[0]
        replaced.update((id(node), id(dequant)))  # by identity: ONNX node names may be empty
        if node.input[0] in constants:
            _rename_input(graph, dequant.output[0], node.input[0])
            removed += 1
        else:
            new_nodes.append((dequant.output[0], _per_row_quantize(graph, node.input[0], dequant.output[0],
                                                                   f"{dequant.output[0]}/per_row")))
            rewritten += 1
    kept = []
    pending = dict(new_nodes)
    for node in graph.node:
        if id(node) in replaced:
            if node.op_type == "DequantizeLinear" and node.output[0] in pending:
                kept.extend(pending.pop(node.output[0]))  # same place in the (topological) order
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return rewritten, removed


def _rename_input(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for output in graph.output:
        if output.name == old:
            raise ValueError(f"{old} is a graph output")


def convert(tflite_path: str):
    """The ONNX ``ModelProto`` of a t2 ``.tflite`` file, rewritten and annotated (see the module doc)."""
    import onnx
    import tf2onnx
    import tf2onnx.convert

    from fink_t2.runtime.model_ref import ModelRef

    ref = ModelRef.resolve(tflite_path)
    model, _ = tf2onnx.convert.from_tflite(ref.path, opset=OPSET)
    rewritten, removed = per_row_dynamic_quantization(model)
    if rewritten == 0:
        raise ValueError(f"{ref.path}: no dynamic-range quantized layer found: expected a tflite_dynamic t2 model")
    onnx.checker.check_model(model)
    converter = (f"tf2onnx {tf2onnx.__version__} (opset {OPSET}) + fink_t2.model.onnx_export: "
                 f"{rewritten} per-row input quantizations, {removed} bias quantizations removed")
    for key, value in ((META_SHA, ref.sha256), (META_CONTRACT, json.dumps(ref.contract, sort_keys=True)),
                       (META_CONVERTER, converter)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model, ref


def max_difference(onnx_bytes: bytes, ref, x: np.ndarray) -> float:
    """max |p_onnx − p_interpreter| on ``x`` (ONNX Runtime on the CPU; batch 64 and one at a time)."""
    import onnxruntime

    from fink_t2.runtime.inference import T2Model

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # see ORT_OPTIMIZATION
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = T2Model(ref.path, contract=ref.contract).predict(x)
    batched = np.concatenate([session.run(None, {name: x[i : i + 64]})[0] for i in range(0, len(x), 64)])
    single = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(min(len(x), 32))])
    return float(max(np.abs(batched - expected).max(), np.abs(single - expected[: len(single)]).max()))


def export_onnx(model: str | None = None, output: str | None = None) -> dict:
    """Convert ``model`` (default: $FINK_T2_MODEL or the shipped one), check it, write ``output``."""
    model_proto, ref = convert(model)
    data = model_proto.SerializeToString()
    difference = max_difference(data, ref, probe_batch(contract=ref.contract))
    if not difference <= EXPORT_TOLERANCE:
        raise ValueError(f"{ref.path}: the ONNX conversion differs from the interpreter by {difference:.3g} "
                         f"(> {EXPORT_TOLERANCE}); not written")
    output = os.path.abspath(output or onnx_path_for(ref.path))
    Path(output).write_bytes(data)
    return {"onnx": output, "bytes": len(data), "source": ref.path, "source_sha256": ref.sha256,
            "max_abs_difference_vs_interpreter": difference,
            "converter": next(p.value for p in model_proto.metadata_props if p.key == META_CONVERTER)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="fink-t2 export-onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="t2 .tflite file (default $FINK_T2_MODEL or the shipped one)")
    parser.add_argument("--output", default=None, help="ONNX file to write (default: beside the model, .onnx)")
    args = parser.parse_args(argv)
    return export_onnx(args.model, args.output)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
