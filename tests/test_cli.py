"""`rnnbench ls` and the plugin hook, through click's runner and as a real process."""

import subprocess
import sys
import textwrap

from conftest import invoke

import rnnbench


def listed(output, section):
    """Names listed in one section ("cells:", "tasks:", "presets:") of `rnnbench ls`."""
    lines = output.split(f"{section}:\n", 1)[1].splitlines()
    names = []
    for line in lines:
        if not line.startswith("  "):
            break
        if line[2] != " ":
            names.append(line.split()[0])
    return names


def test_ls_lists_every_cell_with_options_and_defaults_then_tasks_and_presets():
    result = invoke("ls")
    assert result.exit_code == 0, result.output
    assert listed(result.output, "cells") == rnnbench.list_cells()
    assert listed(result.output, "tasks") == [
        "adding",
        "copying",
        "induction-heads",
        "listops",
        "mqar",
        "pfmnist",
        "pmnist",
        "selective-copying",
        "sfmnist",
        "smnist",
    ]
    assert "options: delay: int = 100; n_train: int = 10000" in result.output
    assert listed(result.output, "presets") == ["default", "torch-eunn", "quick"]
    assert "torch-eunn  sampling=replacement" in result.output
    assert "with presets: quick: data=sample; torch-eunn: protocol=pooled" in result.output
    assert (
        "capacity: int = 2; output: real|abs|complex = real; "
        "impl: auto|reference|dense|fused|triton = auto" in result.output
    )
    assert "forget_bias: float = 1.0" in result.output


def test_ls_filters_with_a_glob():
    result = invoke("ls", "eurnn-c*")
    assert result.exit_code == 0
    assert listed(result.output, "cells") == ["eurnn-c16", "eurnn-c4", "eurnn-c8"]


def test_ls_with_no_match_fails_with_the_known_names():
    result = invoke("ls", "lstn*")
    assert result.exit_code == 2
    assert "no cell matches 'lstn*'; known: cornn, eurnn, " in result.output


def test_plugin_module_registers_its_cells(tmp_path, monkeypatch, scratch_cells):
    (tmp_path / "my_cells_plugin.py").write_text(
        textwrap.dedent('''
        import torch
        from rnnbench import register_cell

        @register_cell("my-rnn")
        def my_rnn(input_size, hidden_size, relu: bool = False):
            """My own RNN."""
            return torch.nn.RNN(input_size, hidden_size, batch_first=True)
    ''')
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("--plugin", "my_cells_plugin", "ls", "my-*")
    assert result.exit_code == 0, result.output
    assert (
        "cells:\n  my-rnn  My own RNN.\n          options: relu: bool = false\ntasks:"
        in result.output
    )


def test_plugin_that_cannot_be_imported_is_a_usage_error():
    result = invoke("--plugin", "no_such_module_here", "ls")
    assert result.exit_code == 2
    assert "cannot import plugin module 'no_such_module_here'" in result.output


def test_runs_as_a_module_and_prints_the_version():
    out = subprocess.run(
        [sys.executable, "-m", "rnnbench", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and rnnbench.__version__ in out.stdout


def test_ls_params_prints_the_size_each_cell_gets():
    result = invoke("ls", "--params", "20000", "--task", "pmnist")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert lines["lstm"] == ["67", "19440"] and lines["eurnn"] == ["1332", "19990"]
    assert set(lines) == set(rnnbench.list_cells())
    tight = invoke("ls", "eurnn-c16", "--params", "100")
    assert tight.exit_code == 0 and "more than --params 100" in tight.output
