"""``fink-t2`` command line: thin wrappers that parse, call the library and report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib import import_module


def _extra_main(command: str, module: str, extras: str):
    """``main`` of ``module``, which needs the ``extras`` of the package; a one-line exit naming them if missing."""
    try:
        return import_module(module).main
    except ImportError as err:
        what = "the training extra" if extras == "train" else f"the {extras.replace(',', ' and ')} extras"
        raise SystemExit(f"fink-t2 {command} needs {what}: pip install 'fink-t2[{extras}]' ({err})") from None


def _replay(args) -> int:
    from fink_t2.stream.replay import replay

    # replay checks the input, the model and the output folder before Spark starts or anything is written
    summary = replay(
        args.path, args.output, master=args.master, max_files_per_trigger=args.max_files_per_trigger, model=args.model,
        device=args.device,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _fetch(args) -> int:
    from fink_t2.fetch import FetchError, fetch_night

    try:
        print(fetch_night(args.night, dest=args.dest, base_url=args.base_url, timeout=args.timeout, retries=args.retries))
    except FetchError as err:
        print(f"fink-t2 fetch: error: {err}", file=sys.stderr)
        return 1
    return 0


def _report(args) -> int:
    from fink_t2.report import write_report

    print(json.dumps(write_report(args.output_dir, args.html), indent=2))
    return 0


def _train(args) -> int:
    metrics = _extra_main("train", "fink_t2.model.train", "train")(args.train_args)
    print(json.dumps({"model": metrics.get("model"), "bytes": metrics["model_size"]["tflite_bytes"]}))
    return 0


def _classify(args) -> int:
    from fink_t2.classify import classify_file
    from fink_t2.runtime.model_ref import ModelRef

    print(json.dumps(classify_file(args.lightcurves, args.output, model_ref=ModelRef.resolve(args.model),
                                   device=args.device), indent=2))
    return 0


def _compress(args) -> int:
    print(json.dumps(_extra_main("compress", "fink_t2.model.compress", "train")(args.compress_args), indent=2))
    return 0


def _export_onnx(args) -> int:
    main_ = _extra_main("export-onnx", "fink_t2.model.onnx_export", "gpu,train")
    print(json.dumps(main_(args.export_args), indent=2))
    return 0


def _device_option(sub) -> None:
    sub.add_argument("--device", choices=("auto", "cpu", "gpu"), default=os.environ.get("FINK_T2_DEVICE") or "auto",
                     help="auto: a usable GPU when one is visible, else the CPU; cpu: never the GPU; gpu: fail "
                          "without a usable GPU (default $FINK_T2_DEVICE or auto; docs/gpu.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fink-t2", description="Real-time light-curve classification of ZTF alerts (t2).")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replay", help="replay an archived night through t2 with Spark Structured Streaming")
    rep.add_argument("path", help="folder of .avro alerts, Avro container file, ztf_public_YYYYMMDD.tar.gz, or Fink parquet")
    rep.add_argument("--output", required=True, help="output folder: parquet, checkpoint (_checkpoint) and staging")
    rep.add_argument("--master", default=None, help="Spark master URL (default local[*] or $SPARK_MASTER)")
    rep.add_argument("--max-files-per-trigger", type=int, default=None, help="input files per micro-batch")
    rep.add_argument("--model", default=None, help="t2 model file with its contract (default $FINK_T2_MODEL or the shipped one)")
    _device_option(rep)
    rep.set_defaults(func=_replay)

    fe = sub.add_parser("fetch", help="download a ZTF public nightly archive ztf_public_YYYYMMDD.tar.gz (resumable, checked)")
    fe.add_argument("night", help="night as YYYYMMDD")
    fe.add_argument("--dest", default=".", help="folder for the archive (default: current folder)")
    fe.add_argument("--base-url", default=None, help="archive folder URL (default $FINK_T2_ARCHIVE_URL, else ztf.uw.edu)")
    fe.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    fe.add_argument("--retries", type=int, default=3, help="resumed retries after a network failure")
    fe.set_defaults(func=_fetch)

    rp = sub.add_parser("report", help="HTML report (self-contained, PNGs beside it) of a replay output")
    rp.add_argument("output_dir", help="output folder of fink-t2 replay")
    rp.add_argument("--html", default=None, help="HTML file to write (default OUTPUT_DIR/_report/report.html)")
    rp.set_defaults(func=_report)

    tr = sub.add_parser("train", help="train t2 and write the quantized model, its contract and metrics "
                        "(options: python -m fink_t2.model.train --help)")
    tr.set_defaults(func=_train)

    cl = sub.add_parser("classify", help="classify a light-curve table (CSV/CSV.gz/parquet: objectId, mjd, band, mag, "
                        "magerr) without Spark: one row per object")
    cl.add_argument("lightcurves", help="light-curve table, one row per measurement")
    cl.add_argument("--output", required=True, help="CSV (or .parquet) to write: objectId, probabilities, class")
    cl.add_argument("--model", default=None, help="t2 model file with its contract (default $FINK_T2_MODEL or the shipped one)")
    _device_option(cl)
    cl.set_defaults(func=_classify)

    co = sub.add_parser("compress", help="compressed variants (pruned, clustered, quantized) of the float model kept by "
                        "fink-t2 train (options: python -m fink_t2.model.compress --help)")
    co.set_defaults(func=_compress)

    ex = sub.add_parser("export-onnx", help="convert the model to ONNX beside it, for the CUDA backends "
                        "(options: python -m fink_t2.model.onnx_export --help)")
    ex.set_defaults(func=_export_onnx)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, unknown = build_parser().parse_known_args(argv)
    if args.command == "train":  # options belong to fink_t2.model.train
        args.train_args = unknown
    elif args.command == "compress":  # options belong to fink_t2.model.compress
        args.compress_args = unknown
    elif args.command == "export-onnx":  # options belong to fink_t2.model.onnx_export
        args.export_args = unknown
    elif unknown:
        build_parser().parse_args(argv)  # reports the unknown options and exits 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"fink-t2 {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)  # one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
