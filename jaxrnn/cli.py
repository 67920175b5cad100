"""The ``jaxrnn`` command.

    jaxrnn run CONFIG [--set key=value ...] [--out DIR] [--resume | --overwrite]
    jaxrnn list
    jaxrnn table [RUNS ...] [--out FILE] [--into FILE]

Exit status: 0 done; 1 training diverged (NaN/inf loss); 2 a bad config or
command line (one line on stderr, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxrnn", description="Run jaxrnn experiment configs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,list,table}")

    run = sub.add_parser("run", help="train one config into a run folder")
    run.add_argument("config", help="a config file, or the name of one in configs/ (see 'jaxrnn list')")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set optim.learning_rate=0.01 (repeatable)")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="discard a previous run in the run folder")
    run.add_argument("--progress", choices=("auto", "bar", "lines"), default="auto",
                     help="tqdm bar or plain lines (default: a bar on a terminal)")

    sub.add_parser("list", help="every config, one line each")

    table = sub.add_parser("table", help="the Markdown results table of run folders")
    table.add_argument("runs", nargs="*", type=Path, default=[Path("runs")],
                       help="run folders, or folders of them (default: runs)")
    table.add_argument("--out", type=Path, help="write the table to this file instead of stdout")
    table.add_argument("--into", type=Path, help="replace the results block of this file (e.g. README.md)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    from jaxrnn.config import ConfigError

    try:
        return {"run": _run, "list": _list, "table": _table}[args.command](args)
    except ConfigError as error:
        return _fail(f"error: {error}", EXIT_USAGE)


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    from jaxrnn import catalog, runner, training

    config = catalog.load(args.config, args.overrides)
    folder = runner.RunDir(args.out) if args.out else runner.default_folder(config)
    try:
        runner.prepare(config, folder, resume=args.resume, overwrite=args.overwrite)
    except runner.RunExists as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    interactive = {"auto": None, "bar": True, "lines": False}[args.progress]
    print(f"{config.name}: {config.experiment}, {config.model.label} x{config.model.num_layers} "
          f"hidden {config.model.hidden_size}, {config.train.steps} steps -> {folder.path}", flush=True)
    try:
        summary = catalog.experiment(config.experiment).run(config, folder, resume=args.resume,
                                                            interactive=interactive)
    except training.Diverged as error:
        return _fail(f"error: {error}", EXIT_DIVERGED)
    except KeyboardInterrupt:
        return _fail(f"interrupted; continue with: jaxrnn run {args.config} --resume"
                     + (f" --out {args.out}" if args.out else ""), EXIT_INTERRUPTED)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in summary["metrics"].items())
    print(f"done in {summary['wall_time_s']:.0f} s: {metrics}  ({folder.path})", flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    from jaxrnn import catalog
    from jaxrnn.config import ConfigError

    paths = catalog.configs()
    width = max((len(p.stem) for p in paths), default=0)
    for path in paths:
        try:
            c = catalog.load(path)
        except ConfigError as error:
            print(f"{path.stem:<{width}}  INVALID: {error}")
            continue
        seq = c.model.tau or getattr(c.data, "seq_len", None)
        print(f"{path.stem:<{width}}  {c.experiment:<8} {c.model.label:<15} hidden {c.model.hidden_size:<4} "
              + (f"T {seq:<4} " if seq is not None else "")
              + f"steps {c.train.steps:<6} {c.optim.name} lr {c.optim.learning_rate:g}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from jaxrnn import results

    summaries = results.collect(args.runs)
    if not summaries:
        return _fail(f"error: no summary.json under {', '.join(map(str, args.runs))}", EXIT_USAGE)
    table = results.markdown(summaries)
    if args.into:
        try:
            results.embed(table, args.into)
        except (OSError, ValueError) as error:
            return _fail(f"error: {error}", EXIT_USAGE)
    if args.out:
        command = " ".join(["jaxrnn table", *map(str, args.runs), "--out", str(args.out)])
        args.out.write_text(f"<!-- generated by `{command}` from run folders; do not edit by hand -->\n\n{table}")
    if not args.into and not args.out:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
