"""The ``jaxrnn`` command.

    jaxrnn run CONFIG [--set key=value ...] [--seeds N] [--sweep key=v1,v2 ...] [--out DIR] [--resume | --overwrite]
    jaxrnn run --resume --out DIR [--set key=value ...]
    jaxrnn run ... --processes N --process-id I --coordinator HOST:PORT   (one process of a job)
    jaxrnn launch --processes N [--devices-per-process K] CONFIG [run options]
    jaxrnn list
    jaxrnn table [RUNS ...] [--out FILE] [--into FILE] [--figures DIR]
    jaxrnn sample RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--top-k K] [--seed S]

``CONFIG`` is a YAML file or the name of a shipped config (``jaxrnn list``).
``--resume`` continues from the run folder's last checkpoint with the config
saved there (the ``--set`` values of the first run included).

Exit status: 0 done; 1 training diverged (NaN/inf loss); 2 a bad config,
command line or file (one line on stderr, no traceback); 3 anything else
(one line; ``JAXRNN_DEBUG=1`` shows the traceback); 130 interrupted by
Ctrl-C (one line; for a run with a checkpoint, the command that resumes it).
Ctrl-C stops set-up, compiles and ``sample`` at once, and training at the
next step boundary (a second Ctrl-C: at once; in a job of several processes,
at the next record boundary where they agree).

In a job (:mod:`jaxrnn.experiment.job`), process 0 prints what a single run
prints; the others print only what is theirs alone (a process that stops
because another died says so in one line and ends with a status other than 0).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

# The standard library only: Ctrl-C is handled before the app's heavy imports (pydantic, orbax, ...).
from jaxrnn.experiment import interrupt, job

if TYPE_CHECKING:
    from jaxrnn.experiment.rundir import RunDir

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = interrupt.EXIT_INTERRUPTED

# The most characters `jaxrnn sample` draws: a bound on its time and on its output (a few MB of text).
MAX_SAMPLE_LENGTH = 1_000_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxrnn", description="Run jaxrnn experiment configs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,launch,list,table,sample}")

    run = sub.add_parser("run", help="train one config into a run folder")
    run.add_argument("config", nargs="?",
                     help="a config file, or the name of a shipped one (see 'jaxrnn list'); with --resume "
                          "and --out, the run folder's own config is used and this may be left out")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set optim.learning_rate=0.01 (repeatable)")
    run.add_argument("--seeds", metavar="N",
                     help="train N seeds side by side in one program (sets train.seeds; default: the config's)")
    run.add_argument("--sweep", dest="sweeps", action="append", default=[], metavar="KEY=V1,V2,...",
                     help="train each value of a config key, e.g. --sweep optim.learning_rate=0.001,0.003 "
                          "(repeatable: every combination)")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the run folder's last checkpoint, with the config saved there")
    mode.add_argument("--overwrite", action="store_true", help="discard a previous run in the run folder")
    run.add_argument("--progress", choices=("auto", "bar", "lines"), default="auto",
                     help="tqdm bar or plain lines (default: a bar on a terminal)")
    _job_options(run)

    launch = sub.add_parser("launch", help="try a job of several processes on this machine: start them all")
    launch.add_argument("--processes", "-n", required=True, metavar="N", help="how many processes to start")
    launch.add_argument("--devices-per-process", metavar="K", default="1",
                        help="each process's devices: K forced host devices on a CPU, GPUs i*K .. i*K+K-1 for "
                             "process i on a GPU machine (default: %(default)s)")
    launch.add_argument("--port", metavar="P", help="the coordinator's port on localhost (default: a free one)")
    launch.add_argument("run_args", nargs=argparse.REMAINDER, metavar="CONFIG [run options]",
                        help="what each process runs: jaxrnn run's arguments")

    sub.add_parser("list", help="every shipped config, one line each")

    table = sub.add_parser("table", help="the Markdown results table of run folders")
    table.add_argument("runs", nargs="*", type=Path, default=[Path("runs")],
                       help="run folders, or folders of them (default: runs)")
    table.add_argument("--out", type=Path, help="write the table to this file instead of stdout")
    table.add_argument("--into", type=Path, help="replace the results block of this file (e.g. README.md), and each "
                                                 "experiment's own table where the file has its block")
    table.add_argument("--figures", type=Path, metavar="DIR",
                       help="draw every experiment's figures into DIR from the runs of the configs they need")

    sample = sub.add_parser("sample", help="text generated by a language-model run's last checkpoint")
    sample.add_argument("run", type=Path, metavar="RUN_DIR",
                        help="the run folder (e.g. runs/charlm_lstm: of several seeds, the first's), or one "
                             "seed's folder in it (runs/charlm_lstm/seed-1)")
    sample.add_argument("--prompt", default="The ", help="the text to start from (default: %(default)r)")
    sample.add_argument("--length", type=int, default=400,
                        help=f"characters to generate, at most {MAX_SAMPLE_LENGTH:,} (default: %(default)s)")
    sample.add_argument("--temperature", type=float, default=0.7,
                        help="0 takes the most likely character; higher is more random (default: %(default)s)")
    sample.add_argument("--top-k", type=int, default=None, help="draw among the k most likely characters only")
    sample.add_argument("--seed", type=int, default=0, help="the same seed gives the same text (default: 0)")
    return p


def _job_options(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "one process of a job", "a run trained by several processes (one per host), train.devices: all; "
        "default: JAX_NUM_PROCESSES, JAX_PROCESS_ID, JAX_COORDINATOR_ADDRESS, or SLURM's under srun")
    group.add_argument("--processes", metavar="N", help="how many processes the job has, or auto (JAX's cluster "
                                                        "detection: Cloud TPU VMs, GKE, Kubernetes, Open MPI)")
    group.add_argument("--process-id", metavar="I", help="this process's id, 0 .. N-1 (0 writes the run's files)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's host and a free port there")
    group.add_argument("--join-timeout", type=float, default=None, metavar="S",
                       help="seconds the processes may take to find each other (default: 120)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Ctrl-C is handled for the whole command, from here on
    (:mod:`jaxrnn.experiment.interrupt`): one line and status 130.
    """
    with interrupt.handled():
        try:
            return _command(parser().parse_args(argv))
        except KeyboardInterrupt:  # a caller's own SIGINT handler, or a test's simulated Ctrl-C
            return _fail("interrupted", EXIT_INTERRUPTED)
        finally:
            job.forget()


def _command(args: argparse.Namespace) -> int:
    """Run the command ``args`` names; every error becomes one line and an exit status."""
    from jaxrnn.experiment.schema import ConfigError

    try:
        return {"run": _run, "launch": _launch, "list": _list, "table": _table,
                "sample": _sample}[args.command](args)
    except ConfigError as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    except job.JobError as error:
        return _fail(f"error: {error}", EXIT_USAGE, everyone=True)
    except BrokenPipeError:  # the reader went away (jaxrnn list | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        return _fail(f"error: {_describe(error)}", EXIT_USAGE)
    except Exception as error:  # the last resort: the command never ends in a traceback
        if os.environ.get("JAXRNN_DEBUG"):
            raise
        first = (str(error).strip().splitlines() or [""])[0][:300]
        if not job.current().single and type(error).__name__ == "JaxRuntimeError":
            # a collective lost its peers
            job.stop(f"another process of the job went away in the middle of a step ({first[:160]})")
        return _fail(f"error: {type(error).__name__}: {first} (JAXRNN_DEBUG=1 shows the traceback)", EXIT_INTERNAL,
                     everyone=True)


def _describe(error: OSError) -> str:
    """``/proc/x/config.yaml: No such file or directory``."""
    return f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)


def _fail(message: str, status: int, everyone: bool = False) -> int:
    """Print ``message`` on stderr; return ``status``. Of a job's processes, only process 0 prints what all
    of them meet alike (a bad config, a diverged run), unless ``everyone``."""
    if everyone or job.current().primary:
        print(message, file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    from jaxrnn import training
    from jaxrnn.experiment import config as config_lib
    from jaxrnn.experiment import runner, sweep
    from jaxrnn.experiment.rundir import RunDir

    place = job.declare(job.resolve(args.processes, args.process_id, args.coordinator))
    _explain(lambda: "interrupted")
    if args.config is None and not (args.resume and args.out):
        return _fail("error: jaxrnn run needs a CONFIG (a file or a name from 'jaxrnn list'), "
                     "or --resume --out DIR to continue a run", EXIT_USAGE)
    if args.out is not None and not str(args.out).strip():
        return _fail("error: --out: expected a folder, got ''", EXIT_USAGE)
    if args.join_timeout is not None and not (0 < args.join_timeout <= 86400):
        return _fail(f"error: --join-timeout: expected seconds in (0, 86400], got {args.join_timeout:g}", EXIT_USAGE,
                     everyone=True)
    overrides = args.overrides + ([f"train.seeds={args.seeds}"] if args.seeds is not None else [])
    given = None if args.config is None else config_lib.load(args.config, overrides, args.sweeps)
    folder = RunDir(args.out) if args.out else runner.default_folder(given)
    if given is not None:
        config = given  # with --resume, prepare() holds it to the run's own config
    elif sweep.is_sweep(folder):  # --resume --out SWEEP: the sweep's own config
        raw = config_lib.apply_sweeps(config_lib.apply_overrides(sweep.read(folder), overrides), args.sweeps)
        config = config_lib.from_dict(raw)
    elif folder.config_file.exists():  # --resume --out DIR: the run's own config, its --set values included
        config = config_lib.load(folder.config_file, overrides, args.sweeps)
    else:
        return _fail(f"error: --resume: no run to resume in {folder.path} (no config.yaml); give a CONFIG",
                     EXIT_USAGE)
    interactive = {"auto": None, "bar": True, "lines": False}[args.progress]
    if not place.single:  # everything above is read the same by every process; from here on they are one job
        place = job.start(place, args.join_timeout or job.JOIN_SECONDS)
        if not place.primary:  # process 0 prints the run's lines
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    runs = sweep.separate(config)
    if runs[0][0]:
        return _run_sweep(args, config, folder, runs, interactive)
    # Whatever can fail before training fails here: no run folder or header yet.
    problems = runner.check(config)
    try:
        runner.prepare(config, folder, resume=args.resume, overwrite=args.overwrite)
    except runner.RunExists as error:
        return _fail(f"error: {error}", EXIT_USAGE)
    _explain(lambda: _interrupted(folder))
    _announce(config, folder, len(problems))
    try:
        summary = runner.run(config, folder, resume=args.resume, interactive=interactive, problems=problems)
    except training.Diverged as error:
        return _fail(f"error: {error}", EXIT_DIVERGED)
    except KeyboardInterrupt:  # training stopped at a step boundary
        return _fail(_interrupted(folder), EXIT_INTERRUPTED)
    if not job.current().primary:
        return 0
    _done(summary, folder)
    if config.sweep:
        _draw_sweep(folder)
    return 0


def _draw_sweep(folder: RunDir) -> None:
    """The sweep's figures (each metric against each swept value), named on a line each."""
    from jaxrnn.experiment import results

    if not job.current().primary:
        return
    for path in results.draw_sweep(folder.path):
        print(f"wrote {path}", flush=True)


def _announce(config, folder: RunDir, count: int, point: str = "") -> None:
    """The run's header line: what trains, how long, how many replicas, where."""
    side = f", {count} replicas side by side" if count > 1 else ""
    print(f"{config.name}{point}: {config.experiment}, {config.model.description}, {config.train.steps} steps{side} "
          f"-> {folder.path}", flush=True)


def _done(summary: dict, folder: RunDir) -> None:
    """The run's last lines: its time and final metrics (of several replicas, the means; of several sweep
    points, each point's evaluation loss over its seeds)."""
    points = summary.get("points") or []
    if len(points) > 1:
        print(f"done in {summary['wall_time_s']:.0f} s ({folder.path}); eval_loss of each point, over its seeds:")
        for point in points:
            label = ", ".join(f"{k}={v}" for k, v in point["values"].items())
            spread = point["spread"].get("eval_loss", {"n": 0})
            value = (f"{spread['mean']:.4g} ± {spread['std']:.2g} (n={spread['n']})" if spread["n"]
                     else "every seed diverged")
            print(f"  {label}: {value}", flush=True)
        return
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in summary["metrics"].items())
    mean = " (means over the seeds)" if summary.get("seeds", 1) > 1 else ""
    print(f"done in {summary['wall_time_s']:.0f} s{mean}: {metrics}  ({folder.path})", flush=True)


def _run_sweep(args: argparse.Namespace, config, folder: RunDir, runs: list, interactive: bool | None) -> int:
    """Every run of a sweep over keys that change the program, one after the other, into the sweep folder.

    All runs are checked before the first starts; with ``--resume``, a run
    that finished is left as it is. A run that diverges does not stop the
    others (the status is then 1).
    """
    from jaxrnn import training
    from jaxrnn.experiment import runner, sweep

    problems = [runner.check(c) for _, c in runs]
    folders = [sweep.folder_of(folder, point) for point, _ in runs]
    if not args.resume and not args.overwrite and sweep.is_sweep(folder):
        return _fail(f"error: {folder.path} already holds a sweep; use --resume to continue it, --overwrite to start "
                     "afresh, or --out for another folder", EXIT_USAGE)
    todo = []
    for (point, c), sub, probs in zip(runs, folders, problems):
        if args.resume and sub.summary_file.exists():
            continue
        try:
            runner.prepare(c, sub, resume=args.resume, overwrite=args.overwrite)
        except runner.RunExists as error:
            return _fail(f"error: {error}", EXIT_USAGE)
        todo.append((point, c, sub, probs))
    if job.current().primary:
        sweep.write(config, folder)
    _explain(lambda: _interrupted_sweep(folder))
    print(f"{config.name}: a sweep of {len(runs)} runs ({len(runs) - len(todo)} finished before) -> {folder.path}",
          flush=True)
    diverged = 0
    for point, c, sub, probs in todo:
        _announce(c, sub, len(probs), " [" + ", ".join(f"{k}={v}" for k, v in point.items()) + "]")
        try:
            summary = runner.run(c, sub, resume=args.resume, interactive=interactive, problems=probs, point=point)
            if job.current().primary:
                _done(summary, sub)
        except training.Diverged as error:
            _fail(f"error: {error}", EXIT_DIVERGED)
            diverged += 1
        except KeyboardInterrupt:
            return _fail(_interrupted_sweep(folder), EXIT_INTERRUPTED)
    _draw_sweep(folder)
    if diverged:
        return _fail(f"error: {diverged} of the sweep's {len(runs)} runs diverged (see above); the others finished",
                     EXIT_DIVERGED)
    return 0


def _launch(args: argparse.Namespace) -> int:
    """Start a job of ``--processes`` processes of ``jaxrnn run`` on this machine and wait for them."""
    from jaxrnn.experiment import launch

    run_args = list(args.run_args)
    if run_args[:1] == ["--"]:
        run_args = run_args[1:]
    if not run_args:
        return _fail("error: jaxrnn launch needs what each process runs: CONFIG [run options], "
                     "or -- --resume --out DIR", EXIT_USAGE)
    taken = [a for a in run_args if a.split("=")[0] in ("--processes", "--process-id", "--coordinator")]
    if taken:
        return _fail(f"error: jaxrnn launch sets {taken[0].split('=')[0]} of each process itself; leave it out",
                     EXIT_USAGE)
    parser().parse_args(["run", *run_args])  # a bad run option: argparse's usage line once, not once per process
    return launch.launch(run_args, args.processes, args.devices_per_process, args.port)


def _explain(message) -> None:
    """What Ctrl-C prints from now on; nothing in the processes of a job but process 0 (it speaks for all)."""
    interrupt.explain(message if job.current().primary else lambda: "")


def _interrupted_sweep(folder: RunDir) -> str:
    """The line an interrupted sweep ends with: the command that continues it."""
    return f"interrupted; continue with: {_resume_command(folder)}"


def _interrupted(folder: RunDir) -> str:
    """The line an interrupted run ends with: the command that resumes it, once it has a checkpoint."""
    if folder.holds_run():
        return f"interrupted; continue with: {_resume_command(folder)}"
    return "interrupted before the first checkpoint (nothing to resume)"


def _resume_command(folder: RunDir) -> str:
    """``jaxrnn run --resume --out DIR``; of a job, on every process of it (on any number of processes)."""
    out = shlex.quote(str(folder.path))
    if job.current().single:
        return f"jaxrnn run --resume --out {out}"
    return (f"jaxrnn run --resume --out {out} on every process of the job (any number of them; "
            f"here: jaxrnn launch --processes N -- --resume --out {out})")


def _list(args: argparse.Namespace) -> int:
    import jaxrnn
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
        recurrent = c.model.kind == "recurrent"  # its part describes itself; a window model has a label
        model = jaxrnn.describe(c.model.build()) if recurrent else c.model.label
        print(f"{path.stem:<{width}}  {c.experiment:<13} {model:<28} T {length:<4} "
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


def _sample(args: argparse.Namespace) -> int:
    from jaxrnn import language
    from jaxrnn.experiment import catalog, replicas, runner
    from jaxrnn.experiment import config as config_lib
    from jaxrnn.experiment.progress import Progress
    from jaxrnn.experiment.rundir import RunDir
    from jaxrnn.experiment.schema import ConfigError

    _check_sample_options(args)
    folder, replica = _run_of(RunDir(args.run))
    if not folder.config_file.is_file():
        raise ConfigError(f"{folder.path} is not a run folder (no config.yaml); 'jaxrnn run CONFIG' makes one")
    config = config_lib.load(folder.config_file)
    experiment = catalog.experiment(config.experiment)
    if experiment.sample is None:
        writers = [name for name, e in catalog.experiments().items() if e.sample is not None]
        raise ConfigError(f"{folder.path} is a run of experiment {config.experiment!r}, whose model does not write "
                          f"text; sample a run of {', '.join(writers)}")
    names = [m.name for m in replicas.of(config)]
    if replica is not None and replica not in names:
        raise ConfigError(f"{args.run}: not a replica of the run in {folder.path} (its replicas: {', '.join(names)})")
    _, params = runner.restore_params(config, folder, names.index(replica) if replica is not None else 0)
    # A bar on a terminal's stderr (nothing when stderr is a file) for a text drawn in more than one piece.
    bar = Progress(args.length, unit="char") if args.length > language.CHUNK else None
    try:
        text = experiment.sample(config, params, folder, prompt=args.prompt, length=args.length,
                                 temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                                 progress=None if bar is None else bar.advance)
    finally:
        if bar is not None:
            bar.close()
    sys.stdout.write(text + "\n")
    return 0


def _run_of(folder: RunDir) -> tuple[RunDir, str | None]:
    """``(run folder, replica name)`` of a folder given to ``sample``: a run's own (no replica), or one replica's
    (``RUN/seed-3``, ``RUN/optim.learning_rate=0.003/seed-3``), whose run is the nearest folder above with a config."""
    from jaxrnn.experiment.rundir import RunDir

    if folder.config_file.is_file():
        return folder, None
    for parent in list(folder.path.parents)[:3]:
        if (parent / "config.yaml").is_file():
            return RunDir(parent), folder.path.relative_to(parent).as_posix()
    return folder, None


def _check_sample_options(args: argparse.Namespace) -> None:
    """The options of ``jaxrnn sample`` in range, before the run folder is read."""
    from jaxrnn.experiment.schema import ConfigError

    if not 1 <= args.length <= MAX_SAMPLE_LENGTH:
        raise ConfigError(f"--length: expected an integer >= 1 and <= {MAX_SAMPLE_LENGTH}, got {args.length}")
    for name, value, low in (("--top-k", args.top_k, 1), ("--seed", args.seed, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")
    if not (args.temperature >= 0 and math.isfinite(args.temperature)):
        raise ConfigError(f"--temperature: expected a finite number >= 0, got {args.temperature}")
    if not args.prompt:
        raise ConfigError("--prompt: expected at least one character")


if __name__ == "__main__":
    sys.exit(main())
