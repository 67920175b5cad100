"""The ``jaxrnn`` command.

    jaxrnn run CONFIG [--set key=value ...] [--out DIR] [--resume | --overwrite]
    jaxrnn run --resume --out DIR [--set key=value ...]
    jaxrnn list
    jaxrnn table [RUNS ...] [--out FILE] [--into FILE] [--figures DIR]

``CONFIG`` is a YAML file or the name of a shipped config (``jaxrnn list``).
``--resume`` continues from the run folder's last checkpoint with the config
saved there (the ``--set`` values of the first run included).

Exit status: 0 done; 1 training diverged (NaN/inf loss); 2 a bad config,
command line or file (one line on stderr, no traceback); 3 anything else
(one line; ``JAXRNN_DEBUG=1`` shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxrnn", description="Run jaxrnn experiment configs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,list,table}")

    run = sub.add_parser("run", help="train one config into a run folder")
    run.add_argument("config", nargs="?",
                     help="a config file, or the name of a shipped one (see 'jaxrnn list'); with --resume "
                          "and --out, the run folder's own config is used and this may be left out")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set optim.learning_rate=0.01 (repeatable)")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the run folder's last checkpoint, with the config saved there")
    mode.add_argument("--overwrite", action="store_true", help="discard a previous run in the run folder")
    run.add_argument("--progress", choices=("auto", "bar", "lines"), default="auto",
                     help="tqdm bar or plain lines (default: a bar on a terminal)")

    sub.add_parser("list", help="every shipped config, one line each")

    table = sub.add_parser("table", help="the Markdown results table of run folders")
    table.add_argument("runs", nargs="*", type=Path, default=[Path("runs")],
                       help="run folders, or folders of them (default: runs)")
    table.add_argument("--out", type=Path, help="write the table to this file instead of stdout")
    table.add_argument("--into", type=Path, help="replace the results block of this file (e.g. README.md), and each "
                                                 "experiment's own table where the file has its block")
    table.add_argument("--figures", type=Path, metavar="DIR",
                       help="draw every experiment's figures into DIR from the runs of the configs they need")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    from jaxrnn.experiment.schema import ConfigError

    try:
        return {"run": _run, "list": _list, "table": _table}[args.command](args)
    except ConfigError as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    except BrokenPipeError:  # the reader went away (jaxrnn list | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        return _fail(f"error: {_describe(error)}", EXIT_USAGE)
    except Exception as error:  # the last resort: the command never ends in a traceback
        if os.environ.get("JAXRNN_DEBUG"):
            raise
        first = (str(error).strip().splitlines() or [""])[0][:300]
        return _fail(f"error: {type(error).__name__}: {first} (JAXRNN_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


def _describe(error: OSError) -> str:
    """``/proc/x/config.yaml: No such file or directory``."""
    return f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    from jaxrnn import training
    from jaxrnn.experiment import config as config_lib
    from jaxrnn.experiment import runner
    from jaxrnn.experiment.rundir import RunDir
    from jaxrnn.experiment.schema import ConfigError

    if args.config is None and not (args.resume and args.out):
        return _fail("error: jaxrnn run needs a CONFIG (a file or a name from 'jaxrnn list'), "
                     "or --resume --out DIR to continue a run", EXIT_USAGE)
    if args.out is not None and not str(args.out).strip():
        return _fail("error: --out: expected a folder, got ''", EXIT_USAGE)
    given = None if args.config is None else config_lib.load(args.config, args.overrides)
    folder = RunDir(args.out) if args.out else runner.default_folder(given)
    if given is not None:
        config = given  # with --resume, prepare() holds it to the run's own config
    elif folder.config_file.exists():  # --resume --out DIR: the run's own config, its --set values included
        config = config_lib.load(folder.config_file, args.overrides)
    else:
        return _fail(f"error: --resume: no run to resume in {folder.path} (no config.yaml); give a CONFIG",
                     EXIT_USAGE)
    try:
        runner.prepare(config, folder, resume=args.resume, overwrite=args.overwrite)
    except runner.RunExists as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    interactive = {"auto": None, "bar": True, "lines": False}[args.progress]
    print(f"{config.name}: {config.experiment}, {config.model.description}, {config.train.steps} steps "
          f"-> {folder.path}", flush=True)
    try:
        summary = runner.run(config, folder, resume=args.resume, interactive=interactive)
    except training.Diverged as error:
        return _fail(f"error: {error}", EXIT_DIVERGED)
    except KeyboardInterrupt:
        return _fail(f"interrupted; continue with: jaxrnn run --resume --out {shlex.quote(str(folder.path))}",
                     EXIT_INTERRUPTED)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in summary["metrics"].items())
    print(f"done in {summary['wall_time_s']:.0f} s: {metrics}  ({folder.path})", flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    from jaxrnn.experiment import catalog
    from jaxrnn.experiment import config as config_lib
    from jaxrnn.experiment.schema import ConfigError

    paths = catalog.configs()
    width = max((len(p.stem) for p in paths), default=0)
    for path in paths:
        try:
            c = config_lib.load(path)
        except ConfigError as error:
            print(f"{path.stem:<{width}}  INVALID: {error}")
            continue
        length = catalog.experiment(c.experiment).length(c)
        hidden = f"hidden {c.model.hidden_size:<4} " if c.model.hidden_size else " " * 12
        print(f"{path.stem:<{width}}  {c.experiment:<8} {c.model.label:<15} {hidden}T {length:<4} "
              f"steps {c.train.steps:<6} {c.optim.name} lr {c.optim.learning_rate:g}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from jaxrnn.experiment import results

    summaries = results.collect(args.runs)
    if not summaries:
        return _fail(f"error: no summary.json under {', '.join(map(str, args.runs))}", EXIT_USAGE)
    table = results.markdown(summaries)
    if args.into:
        try:
            results.embed(table, args.into)
        except ValueError as error:
            return _fail(f"error: {error}", EXIT_USAGE)
        for block, own in results.experiment_tables(summaries).items():
            results.embed(own, args.into, block, required=False)
    if args.figures:
        for path in results.figures(args.runs, args.figures):
            print(f"wrote {path}")
    if args.out:
        command = " ".join(["jaxrnn table", *map(str, args.runs), "--out", str(args.out)])
        args.out.write_text(f"<!-- generated by `{command}` from run folders; do not edit by hand -->\n\n{table}")
    if not args.into and not args.out:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
