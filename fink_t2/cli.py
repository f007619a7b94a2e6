"""``fink-t2`` command line: thin wrappers that parse, call the library and report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from fink_t2.samples import SHARED_DATA


def _replay(args) -> int:
    from fink_t2.alerts import detect_format
    from fink_t2.stream import replay

    detect_format(args.path)  # fails fast, before Spark starts, on a bad path
    summary = replay(args.path, args.output, master=args.master, max_files_per_trigger=args.max_files_per_trigger)
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
    try:
        from fink_t2.model.train import train_and_export
    except ImportError as err:
        raise SystemExit(f"fink-t2 train needs the training extra: pip install 'fink-t2[train]' ({err})")
    metrics = train_and_export(data_dir=args.data_dir, output_dir=args.output_dir, epochs=args.epochs, seed=args.seed)
    print(json.dumps({k: metrics[k] for k in ("log_loss", "accuracy", "macro_f1") if k in metrics}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fink-t2", description="Real-time light-curve classification of ZTF alerts (t2).")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replay", help="replay an archived night through t2 with Spark Structured Streaming")
    rep.add_argument("path", help="folder of .avro alerts, Avro container file, ztf_public_YYYYMMDD.tar.gz, or Fink parquet")
    rep.add_argument("--output", required=True, help="output folder: parquet, checkpoint (_checkpoint) and staging")
    rep.add_argument("--master", default=None, help="Spark master URL (default local[*] or $SPARK_MASTER)")
    rep.add_argument("--max-files-per-trigger", type=int, default=None, help="input files per micro-batch")
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

    tr = sub.add_parser("train", help="train t2 and write the quantized model with its contract and metrics")
    tr.add_argument("--data-dir", default=SHARED_DATA, help="folder holding ztf_bts/ and snpcc_des/ (default %(default)s)")
    tr.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "data"))
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--seed", type=int, default=42)
    tr.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"fink-t2 {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
