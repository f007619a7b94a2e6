"""``fink-t2`` command line: thin wrappers that parse, call the library and report.

No command shows a traceback unless ``--verbose``: an error is one ``stderr`` line ``fink-t2 COMMAND: error: ...``
and an exit status: 2 when the command refused to start and wrote nothing (bad input, model, output folder or
options, no Java), 1 when it started and could not finish (the input held no alert, a full disk, any other
error), 0 otherwise. ``train``, ``compress`` and ``export-onnx`` pass their options to their module's own parser
(its ``--help`` lists them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from importlib import import_module

#: commands whose options belong to a module of an extra: command → (module, extras)
FORWARDED = {"train": ("fink_t2.model.train", "train"), "compress": ("fink_t2.model.compress", "train"),
             "export-onnx": ("fink_t2.model.onnx_export", "gpu,train")}
#: lines of LiteRT's own logging on stderr (e.g. "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
LITERT_INFO = re.compile(r"^INFO: (Created TensorFlow Lite|Initialized TensorFlow Lite)")


def _needs_extra(command: str, extras: str, err: ImportError) -> SystemExit:
    what = "the training extra" if extras == "train" else f"the {extras.replace(',', ' and ')} extras"
    return SystemExit(f"fink-t2 {command} needs {what}: pip install 'fink-t2[{extras}]' ({err})")


def _run_extra(command: str, argv: list):
    """Run ``main(argv)`` of the command's module (its own parser: ``--help`` prints its options); a one-line exit
    naming the extras when a module of theirs is missing, at import or when ``main`` imports it."""
    module, extras = FORWARDED[command]
    try:
        main_ = import_module(module).main
    except ImportError as err:
        raise _needs_extra(command, extras, err) from None
    program = sys.argv[0]
    sys.argv[0] = f"fink-t2 {command}"  # the module's parser names itself after argv[0] (usage: fink-t2 train ...)
    try:
        return main_(argv)
    except ModuleNotFoundError as err:  # imported on first use (onnx, tf2onnx, onnxruntime)
        if (err.name or "fink_t2").split(".")[0] == "fink_t2":
            raise
        raise _needs_extra(command, extras, err) from None
    finally:
        sys.argv[0] = program


@contextlib.contextmanager
def _litert_info_filtered(verbose: bool):
    """Drop LiteRT's INFO lines from this process's stderr (file descriptor 2, where its C++ logging writes);
    every other line is written back once the block ends. ``verbose``: nothing is filtered."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not LITERT_INFO.match(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _replay(args) -> int:
    from fink_t2.stream.replay import replay

    # replay checks the input, the model, Java and the output folder before Spark starts or anything is written
    summary = replay(
        args.path, args.output, master=args.master, max_files_per_trigger=args.max_files_per_trigger, model=args.model,
        device=args.device, verbose=args.verbose,
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
    metrics = _run_extra("train", args.forwarded)
    print(json.dumps({"model": metrics.get("model"), "bytes": metrics["model_size"]["tflite_bytes"]}))
    return 0


def _classify(args) -> int:
    from fink_t2.classify import classify_file
    from fink_t2.runtime.model_ref import ModelRef

    ref = ModelRef.resolve(args.model)
    with _litert_info_filtered(args.verbose):
        result = classify_file(args.lightcurves, args.output, model_ref=ref, device=args.device)
    print(json.dumps(result, indent=2))
    return 0


def _compress(args) -> int:
    print(json.dumps(_run_extra("compress", args.forwarded), indent=2))
    return 0


def _export_onnx(args) -> int:
    print(json.dumps(_run_extra("export-onnx", args.forwarded), indent=2))
    return 0


def _device_option(sub) -> None:
    sub.add_argument("--device", choices=("auto", "cpu", "gpu"), default=os.environ.get("FINK_T2_DEVICE") or "auto",
                     help="auto: a usable GPU when one is visible, else the CPU; cpu: never the GPU; gpu: fail "
                          "without a usable GPU (default $FINK_T2_DEVICE or auto; docs/gpu.md)")


def _verbose_option(sub) -> None:
    sub.add_argument("--verbose", action="store_true",
                     help="show Spark's and LiteRT's own log lines, and the traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fink-t2", description="Real-time light-curve classification of ZTF and Rubin alerts (t2).",
        epilog="Exit status: 0 done; 1 started but could not finish (an input without alerts, a full disk, another "
               "error); 2 refused before writing anything (bad input, model, output folder or options; no Java). "
               "An error is one line; --verbose shows the traceback.")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replay", help="replay an archived night through t2 with Spark Structured Streaming")
    rep.add_argument("path", help="folder of .avro alerts, Avro container file, ztf_public_YYYYMMDD.tar.gz, or Fink parquet; "
                     "ZTF or Rubin (lsst.v10_0, ELAsTiCC) alerts, told from the files' schemas (a mix is refused)")
    rep.add_argument("--output", required=True, help="output folder: parquet, checkpoint (_checkpoint) and staging")
    rep.add_argument("--master", default=None, help="Spark master URL (default local[*] or $SPARK_MASTER)")
    rep.add_argument("--max-files-per-trigger", type=int, default=None, help="input files per micro-batch")
    rep.add_argument("--model", default=None, help="t2 model file with its contract (default $FINK_T2_MODEL or the shipped "
                     "one; for Rubin alerts $FINK_T2_RUBIN_MODEL or the shipped t2_lsst.tflite)")
    _device_option(rep)
    _verbose_option(rep)
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
    _verbose_option(rp)
    rp.set_defaults(func=_report)

    # add_help=False: -h/--help goes to the module's own parser, which lists the options
    tr = sub.add_parser("train", add_help=False, help="train t2 and write the quantized model, its contract and "
                        "metrics (options: fink-t2 train --help)")
    tr.set_defaults(func=_train)

    cl = sub.add_parser("classify", help="classify a light-curve table (CSV/CSV.gz/parquet: objectId, mjd, band, mag, "
                        "magerr) without Spark: one row per object")
    cl.add_argument("lightcurves", help="light-curve table, one row per measurement")
    cl.add_argument("--output", required=True, help="CSV (or .parquet) to write: objectId, probabilities, class")
    cl.add_argument("--model", default=None, help="t2 model file with its contract (default $FINK_T2_MODEL or the shipped one)")
    _device_option(cl)
    _verbose_option(cl)
    cl.set_defaults(func=_classify)

    co = sub.add_parser("compress", add_help=False, help="compressed variants (pruned, clustered, quantized) of the "
                        "float model kept by fink-t2 train (options: fink-t2 compress --help)")
    co.set_defaults(func=_compress)

    ex = sub.add_parser("export-onnx", add_help=False, help="convert the model to ONNX beside it, for the CUDA "
                        "backends (options: fink-t2 export-onnx --help)")
    ex.set_defaults(func=_export_onnx)
    return parser


def _error(command: str, text: str, status: int) -> int:
    print(f"fink-t2 {command}: error: {' '.join(str(text).split())}", file=sys.stderr)  # one line
    return status


def _failure(args, err: Exception) -> int:
    """The one line and exit status of an error raised while the command ran (see the module doc)."""
    from fink_t2.stream.output import disk_full_folder
    from fink_t2.stream.replay import NoAlertError
    from fink_t2.stream.spark import JavaNotFoundError

    if isinstance(err, (ValueError, FileNotFoundError, JavaNotFoundError)):
        return _error(args.command, err, 2)
    if isinstance(err, NoAlertError):
        return _error(args.command, err, 1)
    output = getattr(args, "output", None) or getattr(args, "output_dir", None) or os.getcwd()
    folder = disk_full_folder(err, os.path.abspath(output))
    if folder is not None:
        again = "; run the same command again once there is room: it resumes where it stopped" \
            if args.command == "replay" else "; free space and run it again"
        return _error(args.command, f"no space left on device in {folder}{again}", 1)
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return _error(args.command, f"{type(err).__name__}: {first} (--verbose shows the traceback)", 1)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, unknown = build_parser().parse_known_args(argv)
    if args.command in FORWARDED:  # options belong to the command's module (fink_t2.model.*)
        args.forwarded = unknown
    elif unknown:
        build_parser().parse_args(argv)  # reports the unknown options and exits 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if getattr(args, "verbose", False):
            raise
        return _error(args.command, "interrupted" + ("; run it again: it resumes where it stopped"
                                                      if args.command == "replay" else ""), 130)
    except Exception as err:
        if getattr(args, "verbose", False):
            raise
        return _failure(args, err)


if __name__ == "__main__":
    sys.exit(main())
