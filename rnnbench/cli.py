"""The `rnnbench` command: a thin click layer over the library."""

from __future__ import annotations

import dataclasses
import importlib
import json
import warnings
from pathlib import Path

import click

from rnnbench.config import (
    CHOICES,
    DEFAULTS,
    PRESETS,
    SIZING,
    RunConfig,
    command_line_wins,
    config_grid,
    listed,
    option_flags,
    parse_seeds,
    parse_values,
    preset,
)
from rnnbench.registry import CELLS, TASKS, RegistryError
from rnnbench.tune import PRUNERS, SAMPLERS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    envvar="RNNBENCH_PLUGINS",
    help="Import MODULE first, so that the cells it registers can be used "
    "(repeatable; $RNNBENCH_PLUGINS holds a space-separated list).",
)
@click.version_option(package_name="rnnbench")
def main(plugins: tuple[str, ...]) -> None:
    """Benchmark recurrent cells on long-sequence tasks."""
    import os
    import sys

    from rnnbench import logs

    logs.to_stream()  # the library's lines and warnings to this invocation's stderr

    # The `rnnbench` console script, unlike `python -m`, does not put the current folder on
    # sys.path: add it, last, so that `--plugin my_cells` finds ./my_cells.py, and a file here
    # named like an installed package never shadows it (as planned.load_plugins does in jobs).
    if plugins and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise click.UsageError(f"cannot import plugin module {module!r}: {error}") from None
        except RegistryError as error:
            raise click.UsageError(f"plugin module {module!r}: {error}") from None


@main.command("ls")
@click.argument("pattern", default="*")
@click.option(
    "--params",
    "budget",
    type=click.IntRange(min=1),
    default=None,
    help="Instead, print the hidden size each cell gets for this parameter budget on --task.",
)
@click.option(
    "--task", "task_name", default="pmnist", show_default=True, help="The task for --params."
)
def ls(pattern: str, budget: int | None, task_name: str) -> None:
    """List the registered cells matching PATTERN (a glob, e.g. 'eurnn*'), with their
    options as `name: type = default`; then the tasks and the presets."""
    names = CELLS.names(pattern)
    if not names:
        raise click.UsageError(f"no cell matches {pattern!r}; known: {', '.join(CELLS.names())}")
    width = max(map(len, names))
    if budget is not None:
        from rnnbench.sizing import match_hidden_size

        try:
            task = TASKS.build(task_name)
        except RegistryError as error:
            raise click.UsageError(str(error)) from None
        click.echo(
            f"{'cell':{width}}  hidden  params  (budget {budget} on {task_name}, readout included)"
        )
        for name in names:
            try:
                size, params = match_hidden_size(task, CELLS.parse(name), budget)
                click.echo(f"{name:{width}}  {size:6d}  {params:6d}")
            except ValueError as error:
                click.echo(f"{name:{width}}  -- {error}")
        return
    click.echo("cells:")
    for name in names:
        entry = CELLS.get(name)
        click.echo(f"  {name:{width}}  {entry.summary}")
        options = "; ".join(o.describe() for o in entry.options.values()) or "(no options)"
        click.echo(f"  {'':{width}}  options: {options}")
    click.echo("tasks:")
    for name in TASKS.names():
        entry = TASKS.get(name)
        click.echo(f"  {name:{width}}  {entry.summary}")
        if entry.options:
            click.echo(
                f"  {'':{width}}  options: "
                f"{'; '.join(o.describe() for o in entry.options.values())}"
            )
        if entry.factory.presets:
            implied = "; ".join(
                f"{preset_}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                for preset_, values in entry.factory.presets.items()
            )
            click.echo(f"  {'':{width}}  with presets: {implied}")
    click.echo("presets:")
    for name, config in PRESETS.items():
        changed = [
            f"{f.name}={getattr(config, f.name)}"
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != f.default
        ]
        click.echo(f"  {name:{width}}  {', '.join(changed) or '(the defaults)'}")


def expand_cells(text: str) -> list:
    """`eurnn,lstm`, `eurnn:capacity=4`, `eurnn*` -> specs (globs expand against the registry)."""
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if any(ch in item for ch in "*?["):
            matches = CELLS.names(item)
            if not matches:
                raise RegistryError(f"no cell matches {item!r}; known: {', '.join(CELLS.names())}")
            specs += [CELLS.parse(name) for name in matches]
        else:
            specs.append(CELLS.parse(item))
    if not specs:
        raise RegistryError(f"no cell given in --cells {text!r}; known: {', '.join(CELLS.names())}")
    return specs


def config_options(command):
    """One option per RunConfig field (except seed: --seeds), with the flags config.option_flags
    gives it; default None = the preset's value (or the config file's)."""
    for f in reversed([f for f in dataclasses.fields(RunConfig) if f.name != "seed"]):
        flags = option_flags(f.name)
        kind = (
            click.Choice(CHOICES[f.name])
            if f.name in CHOICES
            else {int: int, float: float}.get(type(f.default), str)
        )
        choices = f" ({', '.join(CHOICES[f.name])})" if f.name in CHOICES else ""
        if listed(f.name):  # a comma-separated list makes a sweep (parsed by config.parse_values)
            kind, choices = str, choices + "; a comma-separated list sweeps over its values"
        if isinstance(f.default, bool):  # --tensorboard / --no-tensorboard
            command = click.option(
                f"{flags[0]}/--no-{flags[0][2:]}",
                f.name,
                default=None,
                help=f"{f.metadata['help']} [default preset: off]",
            )(command)
            continue
        command = click.option(
            *flags,
            f.name,
            type=kind,
            default=None,
            help=f"{f.metadata['help']}{choices} [default preset: {f.default}]",
        )(command)
    return command


def _command_line_wins(fields: dict) -> dict:
    """config.command_line_wins, with what click says of where each value came from."""
    from click.core import ParameterSource

    context = click.get_current_context()
    source = {name: context.get_parameter_source(name) for name in SIZING}
    return command_line_wins(
        fields,
        {n for n, where in source.items() if where == ParameterSource.COMMANDLINE},
        {n for n, where in source.items() if where == ParameterSource.DEFAULT_MAP},
    )


def _apply(command, decorators):
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _read_config(ctx: click.Context, _param, value: str | None) -> None:
    """--config FILE: the file's values become the defaults of the command's options, so that
    options given on the command line override them (configfile.read checks every key)."""
    from rnnbench import configfile

    if value is None:
        return
    path = configfile.locate(value)
    checks = {
        **{
            name: (lambda text, name=name: parse_values(name, text))
            for name in DEFAULTS
            if listed(name)
        },
        "cells": expand_cells,
        "task": TASKS.parse,
        "seeds": parse_seeds,
        "tune_seeds": parse_seeds,
        "final_seeds": parse_seeds,
        "preset": preset,
    }
    if (
        ctx.command.name == "tune"
    ):  # (which cells have which options is checked once the cells are known)
        from rnnbench import tune

        kinds = tune.searchable()
        checks["space"] = lambda items: [tune.parse_dimension(item, kinds) for item in items]
        checks["name"] = tune.check_name
        checks["trials"] = lambda text: tune.check_trials(int(text))
    listed_keys = {name for name in DEFAULTS if listed(name)} | {
        "cells",
        "seeds",
        "tune_seeds",
        "final_seeds",
    }
    ctx.default_map = {
        **(ctx.default_map or {}),
        **configfile.read(path, ctx.command, listed_keys, checks),
    }
    ctx.meta["config_file"] = path


def sweep_options(command):
    """The options that say what a sweep or study trains: cells, task, preset, every RunConfig
    field, data and results folders, and --config."""
    return _apply(
        command,
        [
            click.option(
                "--config",
                callback=_read_config,
                is_eager=True,
                expose_value=False,
                metavar="FILE|NAME",
                help="Read the options from a TOML file (or a study shipped with rnnbench, by "
                "name: torch-eunn, pmnist-tuned...); options given here override it.",
            ),
            click.option(
                "--cells",
                required=True,
                help="Comma-separated cell specs or globs: eurnn,lstm  eurnn:capacity=4  'eurnn*'.",
            ),
            click.option(
                "--task",
                "task_name",
                required=True,
                help="Task name or spec with options (see `rnnbench ls`): "
                "pmnist, copying:delay=200.",
            ),
            click.option(
                "--preset",
                "preset_name",
                default="default",
                show_default=True,
                help=f"Named configuration: {', '.join(PRESETS)}; "
                "the flags below override its fields.",
            ),
            config_options,
            click.option(
                "--data-dir",
                type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
                default=None,
                help="An existing folder where dataset files are, or are downloaded to "
                "(default: $RNNBENCH_DATA, else the user cache folder).",
            ),
            click.option(
                "--results",
                type=click.Path(file_okay=False, path_type=Path),
                default=Path("results"),
                show_default=True,
                help="Folder of the results CSVs (one per task) and curves.",
            ),
            click.option(
                "--keep-checkpoints", is_flag=True, help="Keep the checkpoints of finished runs."
            ),
        ],
    )


def executor_options(command):
    """Where the runs train: --executor and its options."""
    return _apply(
        command,
        [
            click.option(
                "--in-process",
                is_flag=True,
                help="inline: train every run in this process instead of a fresh child process per "
                "run (for debugging; the memory and clocks of a run then include what earlier runs "
                "left).",
            ),
            click.option(
                "--executor",
                type=click.Choice(["inline", "local", "slurm"]),
                default="inline",
                show_default=True,
                help="inline: one run after another in this process; local: parallel processes on "
                "this machine (--jobs); slurm: one SLURM job array, one run per task (returns "
                "after submitting).",
            ),
            click.option(
                "--jobs",
                type=click.IntRange(min=1),
                default=None,
                help="local: runs at once, each with its share of the cores [default: 2].",
            ),
            click.option(
                "--wait",
                is_flag=True,
                help="slurm: wait for the jobs, then print the summary table.",
            ),
            click.option("--partition", default=None, help="slurm: the partition."),
            click.option(
                "--time",
                "time_min",
                type=click.IntRange(min=1),
                default=None,
                help="slurm: time limit per job, in minutes; a job that reaches it is requeued and "
                "resumes from its checkpoint [default: 1440].",
            ),
            click.option(
                "--gpus-per-task",
                type=click.IntRange(min=0),
                default=None,
                help="slurm: GPUs per run.",
            ),
            click.option(
                "--cpus-per-task",
                type=click.IntRange(min=1),
                default=None,
                help="slurm: CPU cores per run (also its torch threads) "
                "[default: the cluster's, 1 thread].",
            ),
            click.option("--mem", default=None, help="slurm: memory per run, e.g. 16G."),
            click.option("--account", default=None, help="slurm: the account to charge."),
            click.option("--qos", default=None, help="slurm: the quality of service."),
            click.option(
                "--array-parallelism",
                type=click.IntRange(min=1),
                default=None,
                help="slurm: at most this many runs of the array at once.",
            ),
            click.option(
                "--sbatch",
                "sbatch_options",
                multiple=True,
                metavar="KEY=VALUE",
                help="slurm: any other sbatch option, without its dashes (repeatable): "
                "--sbatch constraint=a100.",
            ),
        ],
    )


def _errors(body):
    """Run `body`, turning the library's errors into click's (exit 2 for bad input, 1 otherwise)."""
    from rnnbench import claims, executors
    from rnnbench.data import DownloadError
    from rnnbench.runner import RowNotWritten

    try:
        return body()
    except (
        RegistryError,
        ValueError,
    ) as error:  # (ForeignFile too: a results file that is not ours)
        raise click.UsageError(str(error)) from None
    except (
        DownloadError,
        FileNotFoundError,
        PermissionError,
        claims.LockTimeout,
        claims.ClaimLost,
        executors.SubmissionFailed,
    ) as error:
        raise click.ClickException(str(error)) from None
    except RowNotWritten as error:  # says whether the run keeps a checkpoint to resume from
        raise click.ClickException(f"{error} The rows written before are intact.") from None
    except (
        OSError
    ) as error:  # a folder that could not be written (disk full, read-only...): before any row
        raise click.ClickException(f"{error}; nothing of this run was written") from None


@dataclasses.dataclass
class _Sweep:
    """What `run` and `tune` both make of their options (_sweep)."""

    task: str  # the task's spec, the preset's options applied
    specs: list
    config: RunConfig
    grid: dict
    executor: object
    executor_options: dict
    plugins: tuple
    results: Path
    data_dir: Path | None


def _sweep(cells, task_name, preset_name, data_dir, results, fields, wait=None) -> _Sweep:
    """The preamble `run` and `tune` share: the executor options popped from `fields` (the rest are
    RunConfig fields), the folders made absolute (jobs may run in another folder, on another node),
    then the task (an unknown task or option is refused first), the cells, the config and grid,
    the executor (`wait`: forced, as a study must) and the plugins."""
    from rnnbench import executors, planned, sweep

    options = {name: fields.pop(name) for name in executors.EXECUTOR_OPTIONS}
    results, data_dir = results.resolve(), data_dir.resolve() if data_dir else None
    task_spec = sweep.resolve_task(task_name, preset_name)
    specs = expand_cells(cells)
    config, grid = config_grid(preset_name, _command_line_wins(fields))
    executor = executors.from_options(options, wait, announce=click.echo)
    plugins = planned.plugin_origins(click.get_current_context().find_root().params["plugins"])
    return _Sweep(task_spec, specs, config, grid, executor, options, plugins, results, data_dir)


@main.command("run")
@sweep_options
@click.option(
    "--seeds",
    default="0",
    show_default=True,
    help="Seeds, comma-separated and ranges (0-4 = 0,1,2,3,4); one run per cell, setting and seed.",
)
@click.option("--force", is_flag=True, help="Run again even runs that already have an ok row.")
@executor_options
def run(cells, task_name, preset_name, seeds, data_dir, results, force, keep_checkpoints, **fields):
    """Train every cell of --cells on --task for every seed, and every combination of the values
    given as lists (--lr 1e-4,1e-3 --hidden 64,128); one CSV row per run."""
    from rnnbench import configfile, store, sweep

    def body():
        s = _sweep(cells, task_name, preset_name, data_dir, results, fields)
        seed_list = parse_seeds(seeds)
        runs, data = sweep.plan(
            s.task,
            s.specs,
            seed_list,
            s.config,
            s.results,
            s.data_dir,
            force,
            keep_checkpoints,
            s.grid,
            s.plugins,
            s.executor.threads,
            runs_at_once=s.executor.runs_at_once,
        )
        document = configfile.run_document(
            s.specs, s.task, preset_name, seed_list, s.config, s.grid, s.executor_options
        )
        configfile.keep(s.results, "run-" + store.run_key(document)[:12], document)
        return runs, s.executor.run(runs, data), s.executor, s.grid

    runs, rows, where, grid = _errors(body)
    if rows is None:  # submitted, not waited for
        return
    _print_rows(rows, list(grid))
    if any(r["status"] == "failed" for r in rows) or not where.complete(runs, rows):
        raise SystemExit(1)


@main.command("tune")
@sweep_options
@click.option(
    "--space",
    "space",
    multiple=True,
    metavar="NAME=LOW:HIGH[:log] | NAME=V1,V2,...",
    help="A searched hyper-parameter (repeatable): a RunConfig field (lr, clip, batch-size as "
    "batch_size...) or a cell option (angles_lr); CELL.NAME=... for one cell's own.",
)
@click.option(
    "--trials",
    type=int,
    default=None,
    help="Trials per cell (the same budget for every cell) [default: the grid's size].",
)
@click.option(
    "--tune-seeds",
    default="0",
    show_default=True,
    help="Seeds of each trial (the mean is its score).",
)
@click.option(
    "--final-seeds",
    default="1,2,3",
    show_default=True,
    help="Fresh seeds on which each cell's chosen setting runs: the rows tables cite.",
)
@click.option(
    "--sampler",
    type=click.Choice(SAMPLERS),
    default=None,
    help="How settings are chosen [default: grid when every --space lists its values, else tpe].",
)
@click.option(
    "--pruner",
    type=click.Choice(PRUNERS),
    default="none",
    show_default=True,
    help="asha: stop trials early whose validation curve lags (successive halving).",
)
@click.option(
    "--sampler-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the sampler (random, tpe; grid's order).",
)
@click.option(
    "--name",
    "study_name",
    default=None,
    help="The study's name (its rows' `study`, its journal RESULTS/studies/NAME.journal) "
    "[default: the config file's name, else TASK-tuned].",
)
@executor_options
def tune_command(
    cells,
    task_name,
    preset_name,
    data_dir,
    results,
    keep_checkpoints,
    space,
    trials,
    tune_seeds,
    final_seeds,
    sampler,
    pruner,
    sampler_seed,
    study_name,
    **fields,
):
    """Tune each cell of --cells on --task: the same budget of --trials settings from --space for
    every cell, chosen by validation score only (Optuna; a killed study resumes where it stopped),
    then each cell's chosen setting on --final-seeds (rows with phase `final`)."""
    from rnnbench import tune

    config_file = click.get_current_context().meta.get("config_file")

    def body():
        s = _sweep(cells, task_name, preset_name, data_dir, results, fields, wait=True)
        request = tune.Request(
            study_name or tune.default_name(s.task, config_file),
            s.specs,
            s.task,
            preset_name,
            s.config,
            list(space),
            s.grid,
            trials,
            sampler,
            pruner,
            sampler_seed,
            parse_seeds(tune_seeds),
            parse_seeds(final_seeds),
        )
        return tune.run_study(
            request,
            s.executor,
            s.executor_options,
            s.results,
            s.data_dir,
            keep_checkpoints,
            s.plugins,
        )

    rows, study = _errors(body)
    if rows is None:
        raise SystemExit(1)
    _print_rows(
        rows, ["trial", *sorted({k for r in rows for k in json.loads(r.get("tuned_json") or "{}")})]
    )
    planned = len(study.cells) * len(study.final_seeds)
    if len(rows) < planned:
        click.echo(
            f"{planned - len(rows)} of the {planned} final runs have no row (a cell without a "
            "complete trial, or a run killed): see above",
            err=True,
        )
    if any(r["status"] == "failed" for r in rows) or len(rows) < planned:
        raise SystemExit(1)


def _print_rows(rows, varied=()):
    """The sweep's rows as a table; `varied`: the columns a grid or study set per run (lr...)."""
    import pandas as pd

    if rows:
        varied = [c for c in varied if c in rows[0] and c != "hidden_size"]
        table = pd.DataFrame(rows).reindex(
            columns=[
                "cell_spec",
                "hidden_size",
                *varied,
                "seed",
                "status",
                "test_acc",
                "test_acc_final",
                "train_time_s",
                "step_time_ms",
                "peak_mem_mb",
            ]
        )
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


@main.command("status")
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder of the results CSVs.",
)
@click.option(
    "--sweep", "sweep_id", default=None, help="The sweep (its job array id) [default: the latest]."
)
def status(results, sweep_id):
    """Which runs of a submitted sweep are done (ok, diverged, failed), pending, running, or lost
    (killed or cancelled before writing a row: submit the same sweep again to run them)."""
    import pandas as pd

    from rnnbench import executors
    from rnnbench.store import layout

    try:
        path = (
            layout.sweep_record(results, sweep_id) if sweep_id else executors.latest_sweep(results)
        )
        if not path.exists():
            known = sorted(p.stem for p in layout.sweep_records(results))
            raise click.UsageError(
                f"no sweep {sweep_id!r} in {layout.sweeps_folder(results)}; "
                f"known: {', '.join(known) or 'none'}"
            )
        table = pd.DataFrame(executors.sweep_status(path))
    except (FileNotFoundError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"sweep {path.stem} ({results}):")
    click.echo(table.to_string(index=False))
    counts = table.state.value_counts()
    click.echo(", ".join(f"{n} {state}" for state, n in counts.items()))


@main.command("report")
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder of the results CSVs.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the tables and figures go [default: RESULTS/report].",
)
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option(
    "--cells", default=None, help="Only these cells: comma-separated names, specs or globs."
)
@click.option(
    "--status",
    "statuses",
    default="ok",
    show_default=True,
    help="Comma-separated statuses to include (ok, diverged, pruned, failed); a study's trials are "
    "shown whatever their status.",
)
@click.option(
    "--html",
    is_flag=True,
    help="Also write report.html: the whole report in one page to open or send (figures embedded, "
    "sortable tables, every run with its config, status and error, failed ones included).",
)
def report(results, out, tasks, cells, statuses, html):
    """Tables (Markdown, LaTeX, CSV) and seaborn figures from every row in --results:
    mean and standard deviation over seeds, per task, data, machine and number of threads;
    and for each tuning study (`rnnbench tune`), its final runs, trials and searched ranges."""
    from rnnbench import cell, store
    from rnnbench import report as reporting

    wanted = tuple(s.strip() for s in statuses.split(",") if s.strip())
    unknown = [s for s in wanted if s not in store.STATUSES]
    if unknown:
        raise click.UsageError(
            f"unknown status {unknown[0]!r}; choose from {', '.join(store.STATUSES)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows, curves = reporting.read_results(results)
            cards = store.read_task_cards(results)
            cell_cards = cell.cards(sorted(set(rows["cell"])), store.read_cell_cards(results))
        except reporting.ReportError as error:
            raise click.UsageError(str(error)) from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    selected, counts = reporting.select(
        rows, list(tasks) or None, [c.strip() for c in cells.split(",")] if cells else None, wanted
    )
    others = {status: n for status, n in counts.items() if status not in wanted}
    if others:
        click.echo(
            "left out: "
            + ", ".join(f"{n} {status}" for status, n in sorted(others.items()))
            + " (--status to include)",
            err=True,
        )
    if selected.empty:
        filters = ([f"--task {','.join(tasks)}"] if tasks else []) + (
            [f"--cells {cells}"] if cells else []
        )
        what = f" matching {' '.join(filters)}" if filters else ""
        raise click.UsageError(
            f"no {'/'.join(wanted)} rows in {results}{what}; "
            f"tasks there: {', '.join(sorted(rows['task'].unique())) or 'none'}"
        )
    try:
        runs, _ = reporting.select(
            rows,
            list(tasks) or None,
            [c.strip() for c in cells.split(",")] if cells else None,
            store.STATUSES,
        )  # (the page's run lists show every status)
        files, markdown = reporting.write_report(
            selected,
            curves,
            out or store.layout.report_folder(results),
            cards,
            html,
            runs,
            cell_cards,
        )
    except (
        reporting.ReportError
    ) as error:  # a folder that cannot be written, a name that would leave it
        raise click.ClickException(str(error)) from None
    click.echo(markdown)
    click.echo(
        f"wrote {len(files)} files to {out or store.layout.report_folder(results)}", err=True
    )


@main.command("cite")
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Cite the cells and tasks of every row in this folder.",
)
@click.option(
    "--cells",
    default=None,
    help="Instead, cite these cells: comma-separated names, specs or globs.",
)
@click.option("--task", "tasks", multiple=True, help="Instead, cite this task (repeatable).")
def cite(results, cells, tasks):
    """Print the BibTeX of the cells and tasks used in --results (or of those named by --cells and
    --task), each entry once, after a comment saying what cites it."""
    from rnnbench import cell, store
    from rnnbench import cite as citing

    kept_cells, kept_tasks = [], []
    if cells or tasks:
        try:
            cell_names = [spec.name for spec in expand_cells(cells)] if cells else []
            task_names = [TASKS.parse(t).name for t in tasks]
        except RegistryError as error:
            raise click.UsageError(str(error)) from None
    else:
        if not results.is_dir():
            raise click.UsageError(
                f"results folder {results} does not exist; name what to cite with --cells "
                "and --task, or run `rnnbench run ...` first"
            )
        cell_names, task_names = store.used(results)
        if not cell_names and not task_names:
            raise click.UsageError(
                f"no rows in {results}; name what to cite with --cells and --task"
            )
        kept_cells, kept_tasks = store.read_cell_cards(results), store.read_task_cards(results)
    carded = {str(card["task_spec"]).split(":")[0] for card in kept_tasks}
    task_cards = kept_tasks + [
        {"task_spec": name, "citation": getattr(TASKS.get(name).factory, "citation", "")}
        for name in dict.fromkeys(task_names)
        if name not in carded and name in TASKS.names()
    ]
    found = citing.of(cell_names, task_names, cell.cards(cell_names, kept_cells), task_cards)
    for problem in found.missing:
        click.echo(f"warning: {problem}", err=True)
    click.echo(found.bibtex(), nl=False)
