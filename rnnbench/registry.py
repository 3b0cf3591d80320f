"""Name -> factory registries, and the `NAME[:KEY=VALUE]...` specs that select from them.

A factory is a plain function `build(input_size, hidden_size, **options)`; its keyword
defaults *are* the options: their types drive the conversion of spec values and a
`Literal[...]` annotation lists the allowed choices. For example::

    @register_cell("eurnn-c4")
    def eurnn_c4(input_size, hidden_size, capacity: int = 4): ...

    build_cell("eurnn-c4:capacity=6", input_size=1, hidden_size=128)

The built-in cells are imported the first time a registry is used, so `import rnnbench`
stays cheap and a user's own registrations can come before or after ours.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import math
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
OPTION_TYPES = (bool, int, float, str)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
Factory = Callable[..., Any]


class RegistryError(ValueError):
    """A bad name, spec or registration. The message names the bad value and the choices."""


@dataclass(frozen=True)
class Option:
    """One keyword option of a factory: its default, type and (optional) allowed choices."""

    name: str
    default: Any
    type: type
    choices: tuple | None = None

    def convert(self, text: str, owner: str) -> Any:
        """Turn the text of a spec value into this option's type, or raise RegistryError."""
        try:
            if self.type is bool:
                lowered = text.lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(text)
                value: Any = lowered in _TRUE
            else:
                value = self.type(text)
        except ValueError:
            raise RegistryError(
                f"{owner}: option {self.name}={text!r} is not a valid {self.type_name}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):  # float() reads nan, inf, 1e999
            raise RegistryError(f"{owner}: option {self.name}={text!r} is not a finite number")
        if self.choices is not None and value not in self.choices:
            raise RegistryError(
                f"{owner}: option {self.name}={text!r} is not one of "
                f"{', '.join(map(str, self.choices))}"
            )
        return value

    @property
    def type_name(self) -> str:
        if self.choices is not None:
            return "|".join(map(str, self.choices))
        return self.type.__name__

    def describe(self) -> str:
        """`capacity: int = 2`, the form `rnnbench ls` and error messages use."""
        return f"{self.name}: {self.type_name} = {format_value(self.default)}"


def format_value(value: Any) -> str:
    """The canonical text of an option value (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Entry:
    """A registered factory and what `rnnbench ls` shows about it."""

    name: str
    factory: Callable[..., Any]
    options: Mapping[str, Option]
    where: str  # "file:line (module.function)" of the registration, for duplicate errors
    summary: str  # first line of the factory's docstring
    version: int = 1  # bumped when what the factory computes changes: it goes into every run key
    citation: str = (
        ""  # BibTeX of the paper the entry implements (`rnnbench cite`, the report's references)
    )
    # Cells only (rnnbench.cell reads them): floats kept per example, step and unit, (train, eval)
    # or a function of the options; and (parameters, output size) counted from the options, without
    # building.
    memory: Any = None
    size: Callable[..., tuple[int, int]] | None = None


@dataclass(frozen=True, eq=False)
class Spec:
    """A parsed spec: a registered name and the value of every one of its options.

    `str(spec)` is the canonical form used in result rows: the name, then only the options
    that differ from their defaults, sorted by key (`eurnn:capacity=6`). Two specs are equal
    when their canonical forms are.
    """

    name: str
    options: Mapping[str, Any]  # every option, defaults filled in (the "resolved" options)
    defaults: Mapping[str, Any] = field(repr=False)

    def __str__(self) -> str:
        changed = sorted(k for k, v in self.options.items() if v != self.defaults[k])
        return self.name + "".join(f":{k}={format_value(self.options[k])}" for k in changed)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def _options_of(
    factory: Callable[..., Any], owner: str, leading: tuple[str, ...]
) -> dict[str, Option]:
    """Read the options of `factory` from its signature: every parameter after the `leading`
    ones."""
    params = list(inspect.signature(factory).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < len(leading) or any(p.kind not in positional for p in params[: len(leading)]):
        raise RegistryError(f"{owner}: a factory takes ({', '.join(leading + ('**options',))})")
    target = factory.func if isinstance(factory, functools.partial) else factory
    if isinstance(target, type):  # a task class: its options are its constructor's
        target = target.__init__
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations only cost us the choices
        hints = {}
    options = {}
    for p in params[len(leading) :]:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise RegistryError(f"{owner}: *args/**kwargs would hide options; name each one")
        if p.default is inspect.Parameter.empty or type(p.default) not in OPTION_TYPES:
            raise RegistryError(
                f"{owner}: option {p.name!r} needs a default of type bool, int, float or str"
            )
        hint = hints.get(p.name)
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        options[p.name] = Option(p.name, p.default, type(p.default), choices)
    return options


def _summary(factory: Callable[..., Any]) -> str:
    """The first paragraph of the factory's docstring, on one line; a partial speaks for itself
    only if given one."""
    if isinstance(factory, functools.partial) and "__doc__" not in vars(factory):
        factory = factory.func
    from rnnbench.task import doc_summary  # (the task contract imports torch: loaded on first use)

    return doc_summary(factory)


class Registry:
    """Names -> factories for one kind of thing (cells, tasks).

    `builtins` is the module whose import registers the project's own entries; it is
    imported on first use. `leading` names the positional arguments every factory takes
    before its options.
    """

    def __init__(
        self,
        kind: str,
        builtins: str | None = None,
        leading: tuple[str, ...] = ("input_size", "hidden_size"),
    ):
        self.kind = kind
        self.leading = leading
        self._builtins = builtins
        self._state = "unloaded"  # -> "loading" -> "loaded"
        self._entries: dict[str, Entry] = {}

    def _load_builtins(self) -> None:
        if self._state != "unloaded" or self._builtins is None:
            return
        self._state = "loading"
        try:
            importlib.import_module(self._builtins)
        except BaseException:
            self._state = "unloaded"
            raise
        self._state = "loaded"

    def register(
        self,
        name: str,
        stacklevel: int = 1,
        version: int = 1,
        citation: str = "",
        memory: Any = None,
        size: Callable[..., tuple[int, int]] | None = None,
    ) -> Callable[[Factory], Factory]:
        """Decorator registering a factory under `name`, at `version`, citing `citation` (BibTeX),
        with a cell's `memory` and `size` declarations (rnnbench.cell); a name can be registered
        once.

        The place recorded for error messages is the caller's, `stacklevel` frames up.
        """
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RegistryError(
                f"{self.kind} {name!r}: version must be a positive integer; got {version!r}"
            )
        if not isinstance(citation, str) or (
            citation.strip() and not citation.lstrip().startswith("@")
        ):
            raise RegistryError(
                f"{self.kind} {name!r}: citation must be a BibTeX entry (@article{{...}}) or ''; "
                f"got {citation!r:.60}"
            )
        caller = sys._getframe(stacklevel)
        place = f"{caller.f_code.co_filename}:{caller.f_lineno}"

        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._load_builtins()  # so that a clash with a built-in name is caught here
            target = factory.func if isinstance(factory, functools.partial) else factory
            where = f"{place} ({target.__module__}.{target.__qualname__})"
            if not NAME_PATTERN.match(name):
                raise RegistryError(
                    f"{self.kind} name {name!r} at {where}: "
                    "use lowercase letters, digits and hyphens"
                )
            if name in self._entries:
                raise RegistryError(
                    f"{self.kind} {name!r} is registered twice: first at "
                    f"{self._entries[name].where}, again at {where}"
                )
            options = _options_of(factory, f"{self.kind} {name!r}", self.leading)
            self._entries[name] = Entry(
                name,
                factory,
                MappingProxyType(options),
                where,
                _summary(factory),
                version,
                citation.strip(),
                memory,
                size,
            )
            return factory

        return decorate

    def get(self, name: str) -> Entry:
        """The entry registered as `name`; an unknown name lists the known ones."""
        self._load_builtins()
        if name in self._entries:
            return self._entries[name]
        known = sorted(self._entries)
        close = difflib.get_close_matches(name.lower(), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}")

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style glob (`eurnn*`)."""
        self._load_builtins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def parse(self, text: str | Spec) -> Spec:
        """Parse `NAME[:KEY=VALUE]...` into a Spec, converting and checking every value."""
        if isinstance(text, Spec):
            return text
        name, *parts = text.strip().split(":")
        if not name:
            raise RegistryError(f"empty {self.kind} name in spec {text!r}")
        entry = self.get(name)
        owner = f"{self.kind} spec {text!r}"
        valid = "; ".join(o.describe() for o in entry.options.values()) or "none"
        given: dict[str, Any] = {}
        for part in parts:
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise RegistryError(
                    f"{owner}: {part!r} is not KEY=VALUE; options of {name}: {valid}"
                )
            if key not in entry.options:
                raise RegistryError(f"{owner}: unknown option {key!r}; options of {name}: {valid}")
            if key in given:
                raise RegistryError(f"{owner}: option {key!r} is given twice")
            given[key] = entry.options[key].convert(value, owner)
        defaults = {k: o.default for k, o in entry.options.items()}
        return Spec(name, MappingProxyType({**defaults, **given}), MappingProxyType(defaults))

    def build(self, spec: str | Spec, *args: Any) -> Any:
        """Call the factory of `spec` with `args` and the spec's options."""
        spec = self.parse(spec)
        return self.get(spec.name).factory(*args, **spec.options)


CELLS = Registry("cell", builtins="rnnbench.cells")
TASKS = Registry("task", builtins="rnnbench.tasks", leading=())


def check_declarations(name: str, memory: Any, size: Any) -> None:
    """Refuse (RegistryError) a registration whose `memory` or `size` is not of a form the cell
    contract (rnnbench/cell.py) describes."""
    if memory is not None and not callable(memory) and not is_floats(memory):
        raise RegistryError(
            f"cell {name!r}: memory must be (train floats, eval floats), two numbers >= 0, or a "
            f"function (options, hidden_size, device) -> that pair; got {memory!r}"
        )
    if size is not None and not callable(size):
        raise RegistryError(
            f"cell {name!r}: size must be a function (input_size, hidden_size, options) -> "
            f"(parameters, output_size), or None; got {size!r}"
        )


def is_floats(value: Any) -> bool:
    """Whether `value` is a (train, eval) pair of finite numbers >= 0."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in value
        )
    )


def register_cell(
    name: str,
    version: int = 1,
    citation: str = "",
    memory: Any = None,
    size: Callable[..., tuple[int, int]] | None = None,
) -> Callable[[Factory], Factory]:
    """Register a cell factory `build(input_size, hidden_size, **options) -> nn.Module` (the cell
    contract, rnnbench/cell.py, says what the module and each argument here mean). Bump
    `version` when what the cell computes changes: the version is part of every run key, so rows
    of the old code are never taken for rows of the new. `citation` is the BibTeX of the paper the
    cell implements: `rnnbench cite` prints it and the report lists it with the tasks' sources.
    `memory`: floats the cell keeps per example, step and unit, (train, eval) or
    `memory(options, hidden_size, device) -> (train, eval)`, for the memory check; `size`:
    `size(input_size, hidden_size, options) -> (parameters, output_size)`, for a cell that cannot
    be counted on torch's meta device.

    >>> @register_cell(
    ...     "my-rnn",
    ...     version=2,
    ...     citation="@article{me2026, author={Me}, year={2026}}",
    ...     memory=(12, 4),
    ... )
    ... def my_rnn(input_size, hidden_size, layers: int = 1): ...
    """
    check_declarations(name, memory, size)
    return CELLS.register(
        name, stacklevel=2, version=version, citation=citation, memory=memory, size=size
    )


def list_cells(pattern: str = "*") -> list[str]:
    """Registered cell names matching a glob: `list_cells("eurnn*")`."""
    return CELLS.names(pattern)


def parse_cell_spec(text: str | Spec) -> Spec:
    """`parse_cell_spec("eurnn:capacity=6").options["capacity"] == 6`."""
    return CELLS.parse(text)


def build_cell(spec: str | Spec, input_size: int, hidden_size: int) -> Any:
    """The cell module for a spec: `build_cell("lstm", input_size=1, hidden_size=128)`."""
    return CELLS.build(spec, input_size, hidden_size)


def register_task(name: str) -> Callable[[type], type]:
    """Register a task class (a subclass of rnnbench.task.Task, the contract) under `name`; its
    `name` attribute is set to it.

    >>> @register_task("parity")
    ... class Parity(Task): ...
    """
    from rnnbench.task import Task

    register = TASKS.register(name, stacklevel=2)

    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise RegistryError(
                f"task {name!r}: {getattr(cls, '__qualname__', cls)!r} must be a subclass of "
                "rnnbench.task.Task (the task contract)"
            )
        if "name" in vars(cls) and cls.name != name:
            raise RegistryError(f"task {name!r}: the class says its name is {cls.name!r}")
        cls.name = name
        register(cls)
        options = TASKS.get(name).options
        for preset, values in cls.presets.items():
            unknown = sorted(set(values) - set(options))
            if unknown:
                del TASKS._entries[name]  # (a registration that fails leaves nothing behind)
                raise RegistryError(
                    f"task {name!r}: its preset {preset!r} sets {', '.join(unknown)}, which "
                    f"is not an option; options: {', '.join(options) or 'none'}"
                )
        return cls

    return decorate


def build_task(spec: str | Spec) -> Any:
    """The task instance for a name (or spec): `build_task("pmnist")`."""
    return TASKS.build(spec)
