"""Sweeps and studies as TOML files: `rnnbench run --config FILE` and `rnnbench tune --config FILE`.

A file says what the command line can say, one key per option, named like the option without its
dashes (`--batch-size` -> `batch_size`, `--task` -> `task`); lists are TOML arrays
(`lr = [1e-4, 1e-3]`), seeds may also be a range string (`seeds = "0-4"`), and `tune`'s search
space is a table (`[space]`, with per-cell tables `[space.eurnn]`). Options given on the command
line override the file. A file names its command (`command = "run"` or `"tune"`); the files shipped
with rnnbench (rnnbench/studies/) are used by name: `--config torch-eunn`.

Every sweep and study writes its resolved config (every value, the preset's included) next to its
rows, `RESULTS/sweeps/NAME.toml` (`keep`; NAME is `run-` and the start of the sweep's key, or the
study's name), so that `--config` on that file plans the same runs again.
"""

from __future__ import annotations

import difflib
import logging
import re
import sys
from pathlib import Path
from typing import Any

import click

from rnnbench.store import layout

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("studies")
# An executor option's key in a config file (option_key: its first long flag), where it is not its
# parameter name (executors.EXECUTOR_OPTIONS).
EXECUTOR_KEYS = {"time_min": "time", "sbatch_options": "sbatch"}


class ConfigError(click.UsageError):
    """A config file that cannot be used: the message names the file, the line and the key."""


def shipped() -> list[str]:
    """The names of the studies that come with rnnbench: `--config NAME`."""
    return sorted(path.stem for path in SHIPPED.glob("*.toml"))


def locate(text: str) -> Path:
    """The file `--config TEXT` means: a path to a file, or the name of a shipped study."""
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.suffix != ".toml" and "/" not in text and (SHIPPED / f"{text}.toml").is_file():
        return SHIPPED / f"{text}.toml"
    if path.exists():
        raise ConfigError(f"--config {text}: not a file")
    raise ConfigError(
        f"--config {text}: no such file, nor a study shipped with rnnbench "
        f"(shipped: {', '.join(shipped()) or 'none'})"
    )


def option_key(param: click.Parameter) -> str:
    """The key of an option in a config file: its first long flag without dashes
    (`--batch-size` -> `batch_size`)."""
    long = [opt for opt in param.opts if opt.startswith("--")]
    return (long[0] if long else param.name or "").lstrip("-").replace("-", "_")


def line_of(text: str, path: tuple[str, ...]) -> int:
    """The line (from 1) where the key `path` (`("space", "lr")`) is set in TOML `text`, or where
    its table starts; 1 if not found. (tomllib, like every TOML reader we know of, reports no
    positions for the values it reads, only for syntax errors: so we look for the key ourselves.)"""
    table: tuple[str, ...] = ()
    best = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            if table == path[: len(table)] and not best:
                best = number if table == path else 0
            continue
        key = re.match(r"^([A-Za-z0-9_\-.\"']+)\s*=", stripped)
        if key:
            full = table + tuple(part.strip().strip("\"'") for part in key.group(1).split("."))
            if full[: len(path)] == path:
                return number
    return best or 1


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _text(value: Any) -> str:
    """A TOML scalar as the command line would write it: `1e-4` as is, a boolean as `true`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _as_option(value: Any, param: click.Parameter, listed: bool) -> Any:
    """A file value as the command line gives it to click: a list joined with commas where the
    option takes a list, a list of texts for a repeatable option. ValueError: a wrong type."""
    if isinstance(param, click.Option) and param.is_flag:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if param.multiple:
        if isinstance(value, dict):  # `sbatch = {constraint = "a100"}` and `[space]` tables
            items = []
            for name, item in value.items():
                if isinstance(item, dict):  # a cell's own space: [space.eurnn]
                    items += [f"{name}.{sub}={_joined(inner)}" for sub, inner in item.items()]
                else:
                    items.append(f"{name}={_joined(item)}")
            return items
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in values):
            raise ValueError(f"expected text or a list of texts, got {value!r}")
        return values
    if isinstance(value, list):
        if not listed:
            raise ValueError(f"expected one value, got the list {value!r}")
        return _joined(value)
    if isinstance(value, dict):
        raise ValueError(f"expected a value, got a table {value!r}")
    return _text(value)


def _joined(value: Any) -> str:
    """A list (or a scalar) as one comma-separated text; ValueError for nested tables or lists."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(_scalar(item) for item in values):
        raise ValueError(f"expected a value or a list of values, got {value!r}")
    return ",".join(_text(item) for item in values)


def read(
    path: Path, command: click.Command, listed: set[str], check: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The options a config file sets for `command`, as click's default_map (parameter name ->
    value as the command line would give it). `listed`: the keys that take lists. `check`: per
    key, a function that raises ValueError for a bad value (the CLI's own parsing), so that every
    error names the file, line and key. Unknown keys, wrong types and bad values: ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path}: cannot read it ({error})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # (its message carries the line and column)
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    params = {
        option_key(p): p
        for p in command.params
        if isinstance(p, click.Option) and p.name != "config"
    }
    wanted = document.pop("command", command.name)
    if wanted != command.name:
        raise ConfigError(
            f"{path}:{line_of(text, ('command',))}: this file is for `rnnbench {wanted}`, "
            f"not `rnnbench {command.name}`"
        )
    defaults = {}
    for key, value in document.items():
        where = f"{path}:{line_of(text, (key,))}"
        if key not in params:
            raise ConfigError(
                f"{where}: unknown key {key!r}{_suggest(key, list(params))}; "
                f"known: {', '.join(sorted(params))}"
            )
        param = params[key]
        given = []
        # A table (`[space]`, `[space.eurnn]`) is checked item by item, so that an error names its
        # line.
        parts = (
            _table_items(key, value)
            if isinstance(value, dict) and param.multiple
            else [((key,), value)]
        )
        for path_, item in parts:
            where = f"{path}:{line_of(text, path_)}"
            try:
                converted = _as_option(item, param, key in listed)
                if (
                    param.type is not None
                    and not param.is_flag
                    and key not in listed
                    and not param.multiple
                ):
                    param.type.convert(converted, param, None)
                if check and key in check:
                    check[key](converted)
            except click.BadParameter as error:
                raise ConfigError(f"{where}: {'.'.join(path_)}: {error.message}") from None
            except ValueError as error:
                raise ConfigError(f"{where}: {'.'.join(path_)}: {error}") from None
            given = given + converted if len(parts) > 1 or path_ != (key,) else converted
        defaults[param.name] = given
    return defaults


def _table_items(key: str, table: dict) -> list[tuple[tuple[str, ...], dict]]:
    """A table of a repeatable option as one-item tables with their key paths:
    `{"lr": .., "eurnn": {"angles_lr": ..}}` -> [(("space", "lr"), {"lr": ..}),
    (("space", "eurnn", "angles_lr"), {"eurnn": {"angles_lr": ..}})]."""
    items = []
    for name, value in table.items():
        if isinstance(value, dict):
            items += [((key, name, sub), {name: {sub: inner}}) for sub, inner in value.items()]
        else:
            items.append(((key, name), {name: value}))
    return items


def write(path: Path, document: dict[str, Any], header: str) -> None:
    """Write a resolved config (values only, None and empty ones left out) as TOML, after `header`
    as comments, atomically."""
    import tomli_w

    from rnnbench.store.claims import write_atomically

    values = {k: v for k, v in document.items() if v is not None and v != [] and v != {}}
    body = "".join(f"# {line}\n" for line in header.splitlines()) + "\n" + tomli_w.dumps(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, body.encode())


def sweep_path(results: Path, name: str) -> Path:
    """Where the resolved config of the sweep or study `name` is kept (the one place that says so):
    `sweep_path(Path("results"), "st") == Path("results/sweeps/st.toml")`."""
    return layout.sweep_config(results, name)


def config_document(config: Any, grid: dict[str, list]) -> dict[str, Any]:
    """Every RunConfig field (but the seed) with its value, or its list of values in a grid; of
    the hidden size and the parameter budget, the one in use:
    `config_document(RunConfig(), {"lr": [1e-3, 1e-2]})["lr"] == [1e-3, 1e-2]`."""
    from rnnbench.config import DEFAULTS

    budget = config.params_budget or grid.get("params_budget")
    skip = {"seed", "hidden_size" if budget else "params_budget"}
    return {name: grid.get(name, getattr(config, name)) for name in DEFAULTS if name not in skip}


def executor_document(options: dict[str, Any]) -> dict[str, Any]:
    """The executor options given (parameter name -> value), as a config file writes them:
    `executor_document({"executor": "local", "jobs": 2, "wait": False})
    == {"executor": "local", "jobs": 2}`."""
    from rnnbench.executors import (
        EXECUTOR_OPTIONS,
    )  # (here: it imports submitit, which reading a file never needs)

    given = [k for k in EXECUTOR_OPTIONS if options.get(k) not in (None, False, ())]
    document = {EXECUTOR_KEYS.get(k, k): options[k] for k in given}
    if "sbatch" in document:
        document["sbatch"] = list(document["sbatch"])
    return document


def without_executor(document: dict[str, Any]) -> dict[str, Any]:
    """A resolved config less where it runs (its executor options): what defines a study.
    `without_executor({"lr": 0.1, "executor": "local", "jobs": 2}) == {"lr": 0.1}`."""
    from rnnbench.executors import EXECUTOR_OPTIONS

    where = {EXECUTOR_KEYS.get(k, k) for k in EXECUTOR_OPTIONS}
    return {k: v for k, v in document.items() if k not in where}


def run_document(
    specs: list,
    task_spec: Any,
    preset_name: str,
    seeds: list[int],
    config: Any,
    grid: dict[str, list],
    executor_options: dict[str, Any],
) -> dict[str, Any]:
    """The resolved config of `rnnbench run`: its cells, task, preset and seeds, every RunConfig
    value (config_document) and the executor options given (executor_document)."""
    return {
        "command": "run",
        "cells": [str(s) for s in specs],
        "task": str(task_spec),
        "preset": preset_name,
        "seeds": seeds,
        **config_document(config, grid),
        **executor_document(executor_options),
    }


def keep(results: Path, name: str, document: dict[str, Any]) -> Path | None:
    """Write the resolved config of a sweep or study next to its rows (sweep_path), with a header
    saying how to run it again; a file that cannot be written costs a warning, never the sweep."""
    path = sweep_path(results, name)
    header = (
        f"The resolved config of `rnnbench {document['command']}` (written by rnnbench). "
        "From the folder\n"
        f"that holds {results.name}/: rnnbench {document['command']} --config "
        f"{path.relative_to(results.parent)} --results {results.name}\n"
        "plans the same runs again (with the same --plugin modules, if any)."
    )
    try:
        write(path, document, header)
    except OSError as error:
        log.warning(f"could not keep this config in {path}: {error}")
        return None
    log.info(f"config: {path} (rnnbench {document['command']} --config it to run it again)")
    return path
