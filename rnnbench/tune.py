"""Tuning studies: each cell's hyper-parameters searched on the validation set, then the chosen
setting trained on fresh seeds. The protocol is AlgoPerf's "external tuning": one search space
and one budget of trials per cell, selection on validation only, test reported for the final runs.

Optuna samples the settings (grid, random or TPE) and prunes trials (ASHA) on their validation
curves. Its study lives in a journal file inside the results folder (`RESULTS/studies/NAME.journal`,
one Optuna study per cell, named `NAME:CELL`), which every process of the study shares: runs in
local or SLURM processes report their validation scores to it, and a study that was killed resumes
where it stopped. Each trial is an ordinary planned run (sweep.Sweep.runs) whose key holds the
study and the phase: a trial that has its row is never trained again, and a trial that was running
when the study was killed is taken up again (from its checkpoint), not asked anew.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench import _optuna, store
from rnnbench.config import DEFAULTS, WATCH, RunConfig, check_budget_or_size, flag, listed
from rnnbench.registry import Spec
from rnnbench.store import layout

# (optuna and the store's rows are imported where they are used: the CLI imports this module for
# its choices, and starts without pandas or optuna. What Optuna offers only privately goes through
# rnnbench._optuna.)

log = logging.getLogger(__name__)

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "asha")
OBJECTIVE = "best_valid_acc"  # the task's score on the validation split, at its best evaluation


@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: a RunConfig field (`lr`) or a cell option (`angles_lr`), over
    a range (`low`..`high`, log-scaled or not, whole numbers or not) or a list of `choices`."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices:
            return CategoricalDistribution(self.choices)
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def describe(self) -> dict[str, Any]:
        """What rows record about the dimension (study_json's space)."""
        if self.choices:
            return {"choices": list(self.choices)}
        return {
            "low": self.low,
            "high": self.high,
            "log": self.log,
            **({"int": True} if self.integer else {}),
        }

    def text(self) -> str:
        """The dimension as `--space` takes it: `lr=0.0001:0.01:log`, `clip=0,1`."""
        if self.choices:
            return f"{self.name}=" + ",".join(str(c) for c in self.choices)
        return f"{self.name}={self.low}:{self.high}" + (":log" if self.log else "")


def _number(text: str, integer: bool) -> float | int:
    value = int(text, 10) if integer else float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_dimension(text: str, kinds: dict[str, type]) -> tuple[str, Dimension]:
    """(cell name or "" for every cell, the dimension) of a `--space` item:
    `lr=1e-4:1e-2:log` (a log range), `clip=0,1` (choices), `batch_size=16:128` (whole numbers, as
    the field is), `eurnn.angles_lr=1e-4,1e-3` (eurnn's own). `kinds`: the type of each name that
    may be searched (RunConfig fields and cell options). ValueError names the item.

    >>> parse_dimension("lr=1e-4:1e-2:log", {"lr": float})
    ('', Dimension(name='lr', low=0.0001, high=0.01, log=True, integer=False, choices=()))
    """
    key, eq, values = text.rpartition(
        "="
    )  # (a cell spec before the name may hold '=': eurnn:capacity=4.x=..)
    key, values = key.strip(), values.strip()
    if not eq or not key or not values:
        raise ValueError(
            f"--space {text!r}: write NAME=LOW:HIGH[:log] or NAME=V1,V2,... (lr=1e-4:1e-2:log)"
        )
    cell, _, name = key.rpartition(".")
    if name not in kinds:
        raise ValueError(
            f"--space {text!r}: {name!r} is not a hyper-parameter that can be searched; "
            f"known: {', '.join(sorted(kinds))}"
        )
    kind = kinds[name]
    try:
        if ":" in values:
            parts = values.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "linear")):
                raise ValueError("a range is LOW:HIGH or LOW:HIGH:log")
            if kind not in (int, float):
                raise ValueError(f"{name} is not a number: list its values instead")
            low, high = (_number(p.strip(), kind is int) for p in parts[:2])
            log = len(parts) == 3 and parts[2] == "log"
            if not low < high:
                raise ValueError(f"the range runs from {low} to {high}: LOW must be below HIGH")
            if log and low <= 0:
                raise ValueError("a log range needs LOW > 0")
            return cell, Dimension(name, low, high, log, kind is int)
        choices = []
        for part in values.split(","):
            part = part.strip()
            if not part:
                raise ValueError("an empty value between commas")
            choices.append(
                _number(part, kind is int)
                if kind in (int, float)
                else (part.lower() == "true" if kind is bool else part)
            )
        if len(set(choices)) < len(choices):
            raise ValueError("a value is listed twice")
        return cell, Dimension(name, choices=tuple(choices))
    except ValueError as error:
        raise ValueError(f"--space {text!r}: {error}") from None


@dataclass
class Study:
    """What a study searches: per cell, its space; how many trials each cell gets; the sampler
    and pruner; the seeds of the trials and of the final runs."""

    name: str
    cells: list[Spec]
    space: dict[str, dict[str, Dimension]]  # cell spec -> name -> dimension
    trials: int
    sampler: str = "tpe"
    pruner: str = "none"
    tune_seeds: list[int] = field(default_factory=lambda: [0])
    final_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    sampler_seed: int = 0

    def budget(self, spec: Spec) -> int:
        """The trials of one cell: `trials`, and for the grid at most its number of points."""
        if self.sampler != "grid":
            return self.trials
        return min(self.trials or math.inf, grid_size(self.space[str(spec)]))

    def describe(self, spec: Spec, direction: str) -> str:
        """study_json: the study as it applies to this cell."""
        return json.dumps(
            {
                "space": {n: d.describe() for n, d in self.space[str(spec)].items()},
                "sampler": self.sampler,
                "pruner": self.pruner,
                "objective": OBJECTIVE,
                "direction": direction,
                "trials": self.budget(spec),
                "tune_seeds": self.tune_seeds,
                "final_seeds": self.final_seeds,
            },
            sort_keys=True,
        )


def space_items(study: Study) -> list[str]:
    """The study's space as `--space` items: dimensions every cell shares once (`lr=...`), the
    others with their cell (`eurnn.angles_lr=...`); `make_study` on them gives the same space."""
    spaces = list(study.space.values())
    shared = (
        {n: d for n, d in spaces[0].items() if all(space.get(n) == d for space in spaces)}
        if spaces
        else {}
    )
    items = [d.text() for d in shared.values()]
    for spec, dims in study.space.items():
        items += [f"{spec}.{d.text()}" for n, d in dims.items() if n not in shared]
    return items


def grid_size(space: dict[str, Dimension]) -> int:
    return math.prod(len(d.choices) for d in space.values())


def searchable(specs: list[Spec] | None = None) -> dict[str, type]:
    """The names a study may search, with their types: every RunConfig field that a list may
    sweep (not the seed, device or dtype), and every option of the study's cells (default: of
    every registered cell)."""
    from rnnbench.registry import CELLS

    kinds = {name: type(value) for name, value in DEFAULTS.items() if listed(name)}
    for cell in [spec.name for spec in specs] if specs is not None else CELLS.names():
        for name, option in CELLS.get(cell).options.items():
            kinds.setdefault(name, type(option.default))
    return kinds


def make_study(
    name: str,
    specs: list[Spec],
    items: list[str],
    trials: int | None,
    sampler: str | None,
    pruner: str,
    tune_seeds: list[int],
    final_seeds: list[int],
    sampler_seed: int = 0,
    base: RunConfig | None = None,
) -> Study:
    """A study from the command line's `--space` items. Each cell searches the dimensions given
    for every cell whose name is a RunConfig field or one of its options, then its own
    (`eurnn.angles_lr=...`), which replace a shared one of the same name. The sampler is grid when
    every dimension lists its values, else TPE, unless given. Each listed value and each end of a
    range is checked against `base` (the study's config) here, before anything runs. ValueError
    names what is wrong."""
    from rnnbench.registry import CELLS
    from rnnbench.sweep import once

    check_name(name)
    if not items:
        raise ValueError("a study needs a search space: --space lr=1e-4:1e-2:log (repeatable)")
    kinds = searchable(specs)
    shared, own = {}, {}
    for item in items:
        cell, dimension = parse_dimension(item, kinds)
        if cell and cell not in {s.name for s in specs} | {str(s) for s in specs}:
            raise ValueError(
                f"--space {item!r}: {cell!r} is not one of the study's cells "
                f"({', '.join(str(s) for s in specs)})"
            )
        target = own.setdefault(cell, {}) if cell else shared
        if dimension.name in target:
            raise ValueError(f"--space {item!r}: {dimension.name} is given twice")
        target[dimension.name] = dimension
    space = {}
    for spec in specs:
        options = CELLS.get(spec.name).options
        mine = {n: d for n, d in shared.items() if n in DEFAULTS or n in options}
        for key in (spec.name, str(spec)):
            for n, d in own.get(key, {}).items():
                if n not in DEFAULTS and n not in options:
                    raise ValueError(f"--space {key}.{n}: {spec.name} has no option {n!r}")
                mine[n] = d
        left_out = sorted(set(shared) - set(mine))
        if left_out:
            log.info(f"{spec}: has no option {', '.join(left_out)}; searched without it")
        if not mine:
            raise ValueError(f"{spec}: nothing to search (none of --space applies to it)")
        space[str(spec)] = mine
    grid_ok = all(d.choices for dims in space.values() for d in dims.values())
    sampler = sampler or ("grid" if grid_ok else "tpe")
    if sampler == "grid" and not grid_ok:
        ranged = sorted(
            {d.text() for dims in space.values() for d in dims.values() if not d.choices}
        )
        raise ValueError(
            f"--sampler grid needs listed values, not ranges: {', '.join(ranged)}; "
            "list them (lr=1e-4,1e-3,1e-2) or use --sampler random or tpe"
        )
    if sampler != "grid" and not trials:
        raise ValueError(f"--sampler {sampler} needs --trials (how many settings each cell tries)")
    if trials is not None:
        check_trials(trials)
    tune_seeds, final_seeds = once(tune_seeds, "tuning seed"), once(final_seeds, "final seed")
    if (
        pruner != "none" and len(tune_seeds) > 1
    ):  # (Optuna prunes a trial on one curve, not on a mean of several)
        raise ValueError(
            f"--pruner {pruner} prunes a trial on its validation curve: give one --tune-seeds, "
            f"not {len(tune_seeds)}"
        )
    base = base or RunConfig()
    _check_values(space, base)
    overlap = sorted(set(tune_seeds) & set(final_seeds))
    if overlap:
        raise ValueError(
            "--final-seeds must be fresh seeds, not ones the tuning used: "
            f"{', '.join(map(str, overlap))}"
        )
    return Study(
        name, specs, space, trials or 0, sampler, pruner, tune_seeds, final_seeds, sampler_seed
    )


def check_name(name: str) -> None:
    """Refuse a study name that could not name its files (its journal, its config)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
        raise ValueError(f"--name {name!r}: a study's name is letters, digits, '.', '_' and '-'")


def check_trials(trials: int) -> None:
    if trials < 1:
        raise ValueError(f"--trials must be at least 1; got {trials}")


def _check_values(space: dict[str, dict[str, Dimension]], base: RunConfig) -> None:
    """Refuse a space whose values the study's config cannot run (`--lr-warmup-steps` beyond
    `--steps`, a hidden size with a parameter budget...): a trial asked with such a setting
    would fail every time it is taken up."""
    for dims in space.values():
        if "hidden_size" in dims:
            try:
                check_budget_or_size([base.params_budget], [dims["hidden_size"]])
            except ValueError:  # (the rule, in words that say what to search instead)
                raise ValueError(
                    f"--space hidden_size: the study sizes cells by --params {base.params_budget}; "
                    "search params_budget instead, or drop --params"
                ) from None
        for dim in dims.values():
            if dim.name not in DEFAULTS:
                continue  # (a cell option: the registry checks it when the cell is built)
            for value in dim.choices or (dim.low, dim.high):
                try:
                    base.replace(**{dim.name: value}).validate()
                except ValueError as error:
                    raise ValueError(f"--space {dim.text()}: {error}") from None


# The fields whose largest searched value sets a run's memory.
MEMORY_FIELDS = ("hidden_size", "params_budget", "batch_size", "eval_batch_size")


def largest(study: Study, spec: Spec, base: RunConfig) -> RunConfig:
    """`base` with the largest value the study searches of each field that sets a run's memory
    (its hidden size, batch sizes): what the planner's memory and batch-size checks must see."""
    dims = study.space[str(spec)]
    return base.replace(
        **{
            name: max(dims[name].choices or (dims[name].high,))
            for name in MEMORY_FIELDS
            if name in dims
        }
    )


def journal_path(results: Path, name: str) -> Path:
    return layout.journal(results, name)


def _pruner(name: str, eval_every: int = 1) -> Any:
    import optuna

    # ASHA (Li et al. 2020) as Optuna implements it: a trial continues past each rung only if it
    # is in the top 1/4 of the trials that reached that rung; rungs at eval_every x 4^k steps.
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every)
    return optuna.pruners.NopPruner()


def _sampler(study: Study, spec: Spec, draw: int = 0) -> Any:
    """The sampler of a cell's study. Random and TPE samplers are made anew for each `draw` (the
    trial's number) with a seed of their own: a sampler seeded alike in every process would give a
    resumed study, or a second process, the settings it already tried."""
    import optuna

    if study.sampler == "grid":
        space = {n: list(d.choices) for n, d in study.space[str(spec)].items()}
        return optuna.samplers.GridSampler(space, seed=study.sampler_seed)
    seed = (study.sampler_seed * 1_000_003 + draw) % 2**32
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


_LOADED: dict[tuple[str, str], Any] = {}  # (journal, study name) -> its Optuna study, per process


@dataclass(frozen=True)
class Pruning:
    """What a trial's run needs to report its validation curve to the study's pruner, in
    whatever process or node it trains (it is pickled with the planned run)."""

    journal: str
    study_name: str
    trial_number: int
    pruner: str
    eval_every: int = 1

    def should_stop(self, step: int, value: float) -> bool:
        """Report the validation score at `step`; True if the pruner stops the trial here."""
        import optuna

        key = (self.journal, self.study_name)
        if key not in _LOADED:
            _quiet()
            _LOADED[key] = optuna.load_study(
                study_name=self.study_name,
                storage=_optuna.storage(Path(self.journal)),
                pruner=_pruner(self.pruner, self.eval_every),
            )
        trial, reported = _optuna.open_trial(_LOADED[key], self.trial_number)
        if step not in reported:  # (a resumed run reports again)
            trial.report(value, step)
        return trial.should_prune()


def _quiet() -> None:
    """Optuna logs every trial at INFO; the runner says what happens."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Outcome:
    """Per cell: the chosen trial's number, its settings and validation score."""

    trial: int
    params: dict[str, Any]
    value: float


def with_options(spec: Spec, params: dict[str, Any]) -> Spec:
    """`spec` with the cell options among `params` set (validated by the registry)."""
    from rnnbench.registry import CELLS, format_value

    options = {k: v for k, v in spec.options.items() if v != spec.defaults[k]}
    options.update({k: v for k, v in params.items() if k in spec.options})
    return CELLS.parse(
        spec.name + "".join(f":{k}={format_value(v)}" for k, v in sorted(options.items()))
    )


def _config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    return base.replace(**{k: v for k, v in params.items() if k in DEFAULTS})


class Tuner:
    """Runs a study: rounds of trials through an executor until every cell has its budget, then
    the chosen setting of each cell on the final seeds. `identity`: what defines the study (its
    resolved config, less where it runs), kept in the journal: the same name with another
    identity is refused, so that one study's trials never mix with another's."""

    def __init__(
        self,
        study: Study,
        sweep: Any,
        base: RunConfig,
        executor: Any,
        identity: dict[str, Any] | None = None,
    ):
        import optuna

        from rnnbench import configfile

        _quiet()
        self.study, self.sweep, self.base, self.executor = study, sweep, base, executor
        self.direction = "maximize" if sweep.task.higher_is_better else "minimize"
        self.journal = journal_path(sweep.results, study.name)
        storage = _optuna.storage(self.journal)
        identity_json = json.dumps(identity or {}, sort_keys=True, default=str)
        known = set(optuna.get_all_study_names(storage))
        for spec in study.cells:  # (all checked before any is created or changed)
            name = f"{study.name}:{spec}"
            if name in known:
                before = optuna.load_study(study_name=name, storage=storage).user_attrs.get(
                    "identity"
                )
                if before is not None and before != identity_json:
                    raise ValueError(
                        f"study {study.name!r} in {sweep.results} was started with another config "
                        f"({_differences(json.loads(before), identity or {})}); give this one "
                        f"another --name, or continue it with --config "
                        f"{configfile.sweep_path(sweep.results, study.name)}"
                    )
        self.optuna = {}
        for spec in study.cells:
            self.optuna[str(spec)] = optuna.create_study(
                study_name=f"{study.name}:{spec}",
                storage=storage,
                sampler=_sampler(study, spec),
                pruner=_pruner(study.pruner, base.eval_every),
                direction=self.direction,
                load_if_exists=True,
            )
            self.optuna[str(spec)].set_user_attr("identity", identity_json)

    def _spec(self, key: str) -> Spec:
        return next(spec for spec in self.study.cells if str(spec) == key)

    def _entries(self, spec: Spec, trial: Any, seeds: list[int], phase: str) -> list[tuple]:
        """The planned-run entries of one trial: one per seed, sized as the base config says.
        ValueError: a setting this cell cannot run."""
        from rnnbench.sweep import size_cells

        params = dict(trial.params)
        cell = with_options(spec, params)
        config = _config(self.base, params)
        config.validate()
        ((_, sized),) = size_cells(self.sweep.task, [cell], [config], quiet=True)
        pruning = (
            Pruning(
                str(self.journal),
                f"{self.study.name}:{spec}",
                trial.number,
                self.study.pruner,
                self.base.eval_every,
            )
            if phase == "tune" and self.study.pruner != "none"
            else None
        )
        extra = {
            "phase": phase,
            "study": self.study.name,
            "trial": trial.number,
            "tuned_json": json.dumps(params, sort_keys=True),
            "study_json": self.study.describe(spec, self.direction),
            "pruning": pruning,
        }
        return [(cell, sized.replace(seed=seed), extra) for seed in seeds]

    def _round(self) -> list[tuple[str, Any]]:
        """The trials to run next: those left running by a process that stopped (taken up
        again), then new ones, up to each cell's budget (with TPE, one new trial per cell per
        round, so that each round learns from the last)."""
        from optuna.trial import TrialState

        chosen = []
        for spec in self.study.cells:
            study = self.optuna[str(spec)]
            trials = study.get_trials(deepcopy=False)
            chosen += [(str(spec), t) for t in trials if t.state == TrialState.RUNNING]
            room = self.study.budget(spec) - len(trials)
            if self.study.sampler == "tpe":
                room = min(room, 1)
            distributions = {n: d.distribution() for n, d in self.study.space[str(spec)].items()}
            for draw in range(len(trials), len(trials) + max(0, room)):
                study.sampler = _sampler(self.study, spec, draw)
                chosen.append((str(spec), study.ask(distributions)))
        return chosen

    def _tell(self, spec: str, trial: Any, rows: list[dict[str, Any]], n_seeds: int) -> str:
        """Give the study a trial's outcome from its rows (validation only: the mean best
        validation score over its seeds), by store.trial_state. Rows missing (a killed run):
        it stays running, for the next `tune` to take up. A run that failed (raised) stays
        running too, and is tried once more; a second failure fails the trial."""
        from optuna.trial import TrialState

        if len(rows) < n_seeds:
            return "no row"
        state = store.trial_state(
            [row["status"] for row in rows], [_float(row.get(OBJECTIVE)) for row in rows]
        )
        if state == "failed" and self._failures([row["run_key"] for row in rows]) < 2:
            return "retry"
        study = self.optuna[spec]
        try:
            if state in ("failed", "diverged"):
                reason = next((row.get("error") for row in rows if row.get("error")), state)
                _optuna.set_error(study, trial, str(reason))  # (why, for the record)
                _optuna.tell(study, trial.number, state=TrialState.FAIL)
            elif state == "pruned":
                _optuna.tell(study, trial.number, state=TrialState.PRUNED)
            else:
                _optuna.tell(
                    study, trial.number, statistics.fmean(_float(row[OBJECTIVE]) for row in rows)
                )
        except _optuna.AlreadyTold:  # (a trial another process running this study told already)
            return "told elsewhere"
        return state

    def _failures(self, keys: list[str]) -> int:
        """The most failed rows any of these runs has."""
        return store.failures(self.sweep.results, self.sweep.task.name, keys)

    def _refuse(self, spec: str, trial: Any, error: ValueError) -> None:
        """A trial whose setting this cell cannot run (its hidden size, say): failed, with why."""
        from optuna.trial import TrialState

        log.info(
            f"{spec}: trial {trial.number} ({_settings(dict(trial.params))}) cannot run: {error}"
        )
        study = self.optuna[spec]
        _optuna.set_error(study, trial, str(error))
        _optuna.tell(study, trial.number, state=TrialState.FAIL)

    def tune(self) -> bool:
        """Run trials until every cell has its budget; False if some trial wrote no row."""
        seeds = self.study.tune_seeds
        while True:
            batch = self._round()
            if not batch:
                return True
            planned = []
            for spec, trial in batch:
                try:
                    entries = self._entries(self._spec(spec), trial, seeds, "tune")
                except ValueError as error:
                    self._refuse(spec, trial, error)
                    continue
                planned.append((spec, trial, self.sweep.runs(entries)))
            runs = [run for _, _, trial_runs in planned for run in trial_runs]
            log.info(f"study {self.study.name}: {len(planned)} trials ({len(runs)} runs)")
            rows = self.executor.run(runs, self.sweep.data) or [] if runs else []
            by_key = {row["run_key"]: row for row in rows}
            outcomes = [
                self._tell(
                    spec, trial, [by_key[r.key] for r in trial_runs if r.key in by_key], len(seeds)
                )
                for spec, trial, trial_runs in planned
            ]
            if "no row" in outcomes:
                log.info(
                    f"study {self.study.name}: {outcomes.count('no row')} trials wrote no row "
                    "(killed?); run the same command again to take them up"
                )
                return False
            if "retry" in outcomes:
                log.info(
                    f"study {self.study.name}: {outcomes.count('retry')} trials failed: trying "
                    "them once more"
                )

    def chosen(self) -> dict[str, Outcome | None]:
        """Per cell, its best complete trial by validation score (None: no trial completed)."""
        out = {}
        for spec, study in self.optuna.items():
            try:
                best = study.best_trial
            except ValueError:
                out[spec] = None
                continue
            out[spec] = Outcome(best.number, dict(best.params), best.value)
        return out

    def final(self) -> list[dict[str, Any]]:
        """The chosen setting of each cell on the final seeds; their rows."""
        entries, chosen = [], self.chosen()
        for spec in self.study.cells:
            outcome = chosen[str(spec)]
            if outcome is None:
                log.info(f"{spec}: no trial completed; no final runs")
                continue
            log.info(
                f"{spec}: chose trial {outcome.trial} ({_settings(outcome.params)}), validation "
                f"{self.sweep.task.score_name} {outcome.value:.4f}"
            )
            trial = self.optuna[str(spec)].get_trials(deepcopy=False)[outcome.trial]
            entries += self._entries(spec, trial, self.study.final_seeds, "final")
        if not entries:
            return []
        runs = self.sweep.runs(entries)
        return self.executor.run(runs, self.sweep.data) or []


@dataclass(frozen=True)
class Request:
    """A study as `rnnbench tune` asks for it, each value parsed but not yet checked (run_study
    checks them): its name, cells, task (a spec, the preset's options applied: sweep.resolve_task),
    preset name and config; `grid`: the config values given as lists (refused: a study searches
    with --space); then what make_study takes."""

    name: str
    cells: list[Spec]
    task: str
    preset: str
    config: RunConfig
    space: list[str]
    grid: dict[str, list] = field(default_factory=dict)
    trials: int | None = None
    sampler: str | None = None
    pruner: str = "none"
    sampler_seed: int = 0
    tune_seeds: list[int] = field(default_factory=lambda: [0])
    final_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])


def default_name(task: str, config_file: Path | None = None) -> str:
    """A study's name when none is given: its config file's, else the task's and `-tuned`
    (`default_name("pmnist:data=sample") == "pmnist-tuned"`)."""
    from rnnbench.registry import TASKS

    return config_file.stem if config_file else f"{TASKS.parse(task).name}-tuned"


def run_study(
    request: Request,
    executor: Any,
    executor_options: dict[str, Any],
    results: Path,
    data_dir: Path | None = None,
    keep_checkpoints: bool = False,
    plugins: tuple = (),
) -> tuple[list[dict[str, Any]] | None, Study]:
    """Run (or resume) a study: make it (make_study), size its cells at the largest values it
    searches, prepare its data, keep its resolved config (RESULTS/sweeps/NAME.toml), tune every
    cell, then run each cell's chosen setting on the final seeds. Returns the final rows (None
    when a trial wrote no row: run it again to take it up) and the study. `executor`: where the
    runs train (made from `executor_options`, which its config records). ValueError: bad input,
    before anything is written.

    >>> request = Request(
    ...     "st", [CELLS.parse("rnn")], "pmnist", "quick", preset("quick"), ["lr=1e-4:1e-2:log"],
    ...     trials=8,
    ... )  # doctest: +SKIP
    >>> rows, study = run_study(
    ...     request, executors.from_options({}), {}, Path("results")
    ... )  # doctest: +SKIP
    """
    from rnnbench import configfile, sweep
    from rnnbench.registry import TASKS

    if request.grid:
        name = next(iter(request.grid))
        raise ValueError(
            f"{flag(name)} {','.join(map(str, request.grid[name]))}: a study searches with "
            f"--space {name}=..., not lists"
        )
    config, specs = request.config, sweep.once(request.cells, "cell")
    study = make_study(
        request.name,
        specs,
        request.space,
        request.trials,
        request.sampler,
        request.pruner,
        request.tune_seeds,
        request.final_seeds,
        request.sampler_seed,
        config,
    )
    document = {
        "command": "tune",
        "name": study.name,
        "cells": [str(s) for s in specs],
        "task": str(request.task),
        "preset": request.preset,
        **configfile.config_document(config, {}),
        "space": space_items(study),
        "trials": request.trials,
        "tune_seeds": study.tune_seeds,
        "final_seeds": study.final_seeds,
        "sampler": study.sampler,
        "pruner": study.pruner,
        "sampler_seed": study.sampler_seed,
        **configfile.executor_document(executor_options),
    }
    sized = [
        pair
        for spec in specs
        for pair in sweep.size_cells(
            TASKS.build(request.task), [spec], [largest(study, spec, config)]
        )
    ]
    shared = sweep.prepare(
        request.task,
        study.tune_seeds + study.final_seeds,
        config,
        results,
        data_dir,
        keep_checkpoints,
        plugins,
        executor.threads,
        sized,
        executor.runs_at_once,
    )
    # What defines the study: everything but where it runs and how its runs are logged (WATCH),
    # except the threads of each run, which are in the keys of CPU runs (another --jobs would
    # orphan its trials' checkpoints).
    identity = {k: v for k, v in configfile.without_executor(document).items() if k not in WATCH}
    tuner = Tuner(study, shared, config, executor, {**identity, "threads": executor.threads})
    configfile.keep(results, study.name, document)
    if not tuner.tune():
        return None, study
    return tuner.final(), study


def _differences(before: dict[str, Any], now: dict[str, Any]) -> str:
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return "; ".join(f"{k}: {before.get(k)!r} then, {now.get(k)!r} now" for k in keys[:3])


def _settings(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{flag(k) if k in DEFAULTS else k} {v:g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in sorted(params.items())
    )


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
