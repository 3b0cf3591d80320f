"""The `rnnbench` command: a thin click layer over the library."""

from __future__ import annotations

import importlib

import click

from rnnbench.registry import CELLS, RegistryError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE", envvar="RNNBENCH_PLUGINS",
              help="Import MODULE first, so that the cells it registers can be used "
                   "(repeatable; $RNNBENCH_PLUGINS holds a space-separated list).")
@click.version_option(package_name="rnnbench")
def main(plugins: tuple[str, ...]) -> None:
    """Benchmark recurrent cells on long-sequence tasks."""
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise click.UsageError(f"cannot import plugin module {module!r}: {error}") from None
        except RegistryError as error:
            raise click.UsageError(f"plugin module {module!r}: {error}") from None


@main.command("ls")
@click.argument("pattern", default="*")
def ls(pattern: str) -> None:
    """List the registered cells matching PATTERN (a glob, e.g. 'eurnn*'), with their
    options as `name: type = default`."""
    names = CELLS.names(pattern)
    if not names:
        raise click.UsageError(f"no cell matches {pattern!r}; known: {', '.join(CELLS.names())}")
    width = max(map(len, names))
    for name in names:
        entry = CELLS.get(name)
        click.echo(f"{name:{width}}  {entry.summary}")
        options = "; ".join(o.describe() for o in entry.options.values()) or "(no options)"
        click.echo(f"{'':{width}}  options: {options}")
