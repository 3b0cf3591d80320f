"""Bad input to `rnnbench run`, one case per row: the exit code, a message that names the value
and what would be valid, no traceback, and nothing written (no results folder, no data folder)."""

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench.data import mnist as mnist_data

KNOWN_CELLS = "known: " + ", ".join(rnnbench.list_cells())
CASES = [
    # (arguments, exit code, message)
    (["--cells", "transformer"], 2, f"unknown cell 'transformer'; {KNOWN_CELLS}"),
    (["--cells", "lstn"], 2, f"unknown cell 'lstn' (did you mean 'lstm'?); {KNOWN_CELLS}"),
    (
        ["--cells", "rnn", "--task", "imagenet"],
        2,
        "unknown task 'imagenet'; known: adding, copying, induction-heads, listops",
    ),
    (
        ["--cells", "rnn", "--task", "adding:lenght=5"],
        2,
        "unknown option 'lenght'; options of adding: length: int = 100",
    ),
    (
        ["--cells", "rnn", "--preset", "fast"],
        2,
        "unknown preset 'fast'; known: default, torch-eunn, quick",
    ),
    (
        ["--cells", "eurnn:capacity"],
        2,
        "cell spec 'eurnn:capacity': 'capacity' is not KEY=VALUE; options of eurnn: "
        "capacity: int = 2",
    ),
    (["--cells", "eurnn:capacity=x"], 2, "capacity='x' is not a valid int"),
    (["--cells", "eurnn:nope=1"], 2, "unknown option 'nope'; options of eurnn: capacity: int = 2"),
    (
        ["--cells", "eurnn:capacity=0", "--hidden", "8"],
        2,
        "capacity must be in [1, hidden_size=8] for style='tunable'; got 0",
    ),
    (
        ["--cells", "eurnn:capacity=-3", "--hidden", "8"],
        2,
        "capacity must be in [1, hidden_size=8]",
    ),
    (
        ["--cells", "eurnn:capacity=9", "--hidden", "8"],
        2,
        "capacity must be in [1, hidden_size=8] for style='tunable'; got 9",
    ),
    (
        ["--cells", "eurnn-c16", "--hidden", "8"],
        2,
        "capacity must be in [1, hidden_size=8] for style='tunable'; got 16",
    ),
    (
        ["--cells", "eurnn", "--hidden", "7"],
        2,
        "EURNN needs an even hidden size >= 2 (units are mixed in pairs); got 7",
    ),
    (
        ["--cells", "eurnn-fft", "--hidden", "12"],
        2,
        "EURNN style='fft' needs a hidden size that is a power of two; got 12",
    ),
    (["--cells", "eurnn:impl=gpu"], 2, "impl='gpu' is not one of auto, reference, dense, fused"),
    (["--cells", "rnn", "--steps", "0"], 2, "--steps must be a positive integer; got 0"),
    (["--cells", "rnn", "--steps", "-5"], 2, "--steps must be a positive integer; got -5"),
    (["--cells", "rnn", "--batch-size", "0"], 2, "--batch-size must be a positive integer; got 0"),
    (
        ["--cells", "rnn", "--batch-size", "-1"],
        2,
        "--batch-size must be a positive integer; got -1",
    ),
    # (small enough to fit in memory: the memory check comes first, before the data is loaded)
    (
        ["--cells", "rnn", "--batch-size", "5000", "--hidden", "8"],
        2,
        "--batch-size 5000 is larger than the training set (4000 examples)",
    ),
    (["--cells", "rnn", "--lr", "0"], 2, "--lr must be positive; got 0.0"),
    (["--cells", "rnn", "--lr", "-1"], 2, "--lr must be positive; got -1.0"),
    (["--cells", "rnn", "--hidden", "0"], 2, "--hidden must be a positive integer; got 0"),
    # Values that pass every comparison, or fail it with the wrong reason: named by their flag.
    (["--cells", "rnn", "--lr", "inf"], 2, "--lr must be a finite number; got inf"),
    (["--cells", "rnn", "--lr", "nan"], 2, "--lr must be a finite number; got nan"),
    (["--cells", "rnn", "--clip", "inf"], 2, "--clip must be a finite number; got inf"),
    (["--cells", "rnn", "--clip", "nan"], 2, "--clip must be a finite number; got nan"),
    (["--cells", "rnn", "--target", "nan"], 2, "--target must be a finite number; got nan"),
    (["--cells", "rnn", "--target", "-inf"], 2, "--target must be a finite number; got -inf"),
    # numpy's generators take seeds in [0, 2**32): refused before a run fails on them.
    (
        ["--cells", "rnn", "--seeds", "-1"],
        2,
        "--seeds -1: a seed must be an integer in [0, 2**32 - 1 = 4294967295",
    ),
    (
        ["--cells", "rnn", "--seeds", "0,4294967296"],
        2,
        "--seeds 4294967296: a seed must be an integer in [0, ",
    ),
    (
        ["--cells", "rnn", "--task", "pmnist:perm_seed=4294967296"],
        2,
        "perm_seed 4294967296: a seed must be an integer",
    ),
    (
        ["--cells", "lstm:forget_bias=nan"],
        2,
        "cell spec 'lstm:forget_bias=nan': option forget_bias='nan' is not a finite number",
    ),
    (["--cells", "lstm:forget_bias=inf"], 2, "option forget_bias='inf' is not a finite number"),
    (
        ["--cells", "lstm:forget_bias=-1e999"],
        2,
        "option forget_bias='-1e999' is not a finite number",
    ),
    # --params chooses the hidden size: a --hidden beside it, even a single one, is refused.
    (
        ["--cells", "rnn", "--params", "20000", "--hidden", "64"],
        2,
        "(--params) or a hidden size (--hidden), not both",
    ),
    # Sizes are checked against memory before anything is allocated or generated.
    (["--cells", "lstm", "--hidden", "100000"], 2, "--hidden 100000: lstm needs about"),
    (
        ["--cells", "eurnn-full", "--hidden", "65536"],
        2,
        "--hidden 65536 with --eval-batch-size 1000: eurnn-full",
    ),
    (
        ["--cells", "lstm", "--params", "1000000000000"],
        2,
        "lstm: more than 65536 units still fit in 1000000000000 parameters",
    ),
    (
        ["--cells", "lstm", "--params", "10000000000"],
        2,
        "--params 10000000000 (hidden size 49997 for lstm) with",
    ),
    (
        ["--cells", "lstm", "--task", "copying:n_train=1000000000"],
        2,
        "--task copying:n_train=1000000000: lstm needs about",
    ),
    (
        ["--cells", "rnn", "--task", "adding:length=100000000"],
        2,
        "or the sizes in --task adding:length=100000000",
    ),
    (["--cells", "rnn", "--hidden", "8,x"], 2, "--hidden '8,x': 'x' is not a whole number"),
    (
        ["--cells", "rnn", "--seeds", "1,x"],
        2,
        "--seeds '1,x': 'x' is not a seed or a range of seeds (0-4)",
    ),
    (
        ["--cells", "rnn", "--seeds", "1.5"],
        2,
        "--seeds '1.5': '1.5' is not a seed or a range of seeds (0-4)",
    ),
    (
        ["--cells", "rnn", "--seeds", ","],
        2,
        "--seeds ',': '' is not a seed or a range of seeds (0-4)",
    ),
    (["--cells", ""], 2, f"no cell given in --cells ''; {KNOWN_CELLS}"),
    (["--cells", ","], 2, "no cell given in --cells ','"),
    (["--cells", "gpt*"], 2, f"no cell matches 'gpt*'; {KNOWN_CELLS}"),
    (
        ["--cells", "rnn", "--optimizer", "sgd"],
        2,
        "--optimizer must be one of rmsprop, adam, adamw; got 'sgd'",
    ),
    (
        ["--cells", "rnn", "--data-dir", "{tmp}/no such folder"],
        2,
        "Directory '{tmp}/no such folder' does not exist",
    ),
    (["--cells", "rnn", "--data-dir", "{tmp}/a-file"], 2, "Directory '{tmp}/a-file' is a file"),
    (
        ["--cells", "rnn", "--task", "pmnist", "--data-dir", "{tmp}/wrong-format"],
        2,
        "{tmp}/wrong-format/train-images-idx3-ubyte.gz: SHA-256 of the content is ",
    ),
]
CASES += [  # the data is the task's: its options, checked like a cell's
    (
        ["--cells", "rnn", "--task", "pmnist:data=tiny"],
        2,
        "task spec 'pmnist:data=tiny': option data='tiny' is not one of full, sample",
    ),
    (
        ["--cells", "rnn", "--task", "pmnist:perm_seed=-1"],
        2,
        "perm_seed -1: a seed must be an integer in [0, 2**32 - 1]",
    ),
    (
        ["--cells", "rnn", "--task", "copying:data=sample"],
        2,
        "unknown option 'data'; options of copying: delay",
    ),
    (["--cells", "rnn", "--task", "pmnist", "--data", "sample"], 2, "No such option '--data'"),
]
if not torch.cuda.is_available():
    CASES.append(
        (
            ["--cells", "rnn", "--device", "cuda"],
            2,
            "device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu or auto",
        )
    )


@pytest.fixture
def folder(tmp_path):
    """A scratch folder with a file and a data folder of MNIST's file names holding other bytes."""
    (tmp_path / "a-file").write_text("not a folder")
    wrong = tmp_path / "wrong-format"
    wrong.mkdir()
    for data_file in mnist_data.MNIST_FILES.values():
        (wrong / data_file.name).with_suffix(".gz").write_bytes(
            gzip.compress(b"<html>a captive portal</html>")
        )
    return tmp_path


def run(folder, args):
    args = [a.replace("{tmp}", str(folder)) for a in args]
    base = {"--task": "pmnist:data=sample", "--device": "cpu"}
    extra = [item for key, value in base.items() if key not in args for item in (key, value)]
    before = sorted(p.name for p in folder.rglob("*"))
    out = invoke("run", *args, *extra, "--results", str(folder / "results"))
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written, anywhere
    assert out.exception is None or isinstance(out.exception, SystemExit), (
        out.exception
    )  # no traceback
    assert "Traceback" not in out.output
    return out


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_with_a_message_that_names_the_value_and_writes_nothing(
    folder, args, code, message
):
    out = run(folder, args)
    assert out.exit_code == code, out.output
    assert " ".join(message.replace("{tmp}", str(folder)).split()) in " ".join(out.output.split())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder, whatever its mode")
def test_an_unreadable_data_folder_is_refused(folder):
    locked = folder / "locked"
    locked.mkdir(mode=0)
    try:
        out = run(folder, ["--cells", "rnn", "--data-dir", str(locked)])
    finally:
        locked.chmod(0o755)
    assert out.exit_code == 2 and f"Directory '{locked}' is not readable" in out.output


def test_a_run_that_does_not_fit_in_memory_is_refused_with_the_estimate(folder, monkeypatch):
    from rnnbench import resources

    monkeypatch.setattr(
        resources, "available_bytes", lambda device: {"host": 10**8, "device": 10**8}
    )
    out = run(folder, ["--cells", "lstm", "--preset", "quick"])
    assert out.exit_code == 2, out.output
    message = " ".join(out.output.split())
    assert "--hidden 64 with --eval-batch-size 500: lstm needs about" in message
    assert "this machine has 100 MB available; lower --hidden or --eval-batch-size" in message


def test_huge_task_data_is_refused_by_the_estimate_not_generated(folder, monkeypatch):
    from rnnbench.tasks.memory import AddingProblem, CopyingMemory

    def generate(self, *args):
        raise AssertionError("generating data that cannot fit was attempted")

    monkeypatch.setattr(CopyingMemory, "generate", generate)
    monkeypatch.setattr(AddingProblem, "generate", generate)
    for task in (
        "copying:n_train=1000000000",
        "copying:delay=100000000",
        "adding:length=100000000",
        "adding:n_test=1000000000",
    ):
        out = run(folder, ["--cells", "rnn", "--task", task])
        assert (
            out.exit_code == 2 and f"--task {task}" in out.output and "needs about" in out.output
        ), out.output


# --- the README's plugin example, with the installed console script ----------------------


def test_the_readme_plugin_example_works_with_the_console_script(tmp_path):
    """`rnnbench --plugin my_cells ls` with my_cells.py in the current folder, as the README says;
    a file there named like an installed package does not shadow it."""
    script = Path(sys.executable).with_name("rnnbench")
    assert script.exists() or shutil.which("rnnbench"), (
        "the rnnbench console script is not installed"
    )
    (tmp_path / "my_cells.py").write_text(
        textwrap.dedent('''
        import torch
        from rnnbench import register_cell

        @register_cell("my-gru")
        def my_gru(input_size, hidden_size, layers: int = 2):
            """Two-layer GRU."""
            return torch.nn.GRU(input_size, hidden_size, layers, batch_first=True)
    ''')
    )
    (tmp_path / "platformdirs.py").write_text(
        "raise ImportError('the current folder shadowed an installed package')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RNNBENCH_PLUGINS")}
    for command, extra_env in (
        (["--plugin", "my_cells", "ls"], {}),
        (["ls"], {"RNNBENCH_PLUGINS": "my_cells"}),
    ):
        out = subprocess.run(
            [str(script if script.exists() else shutil.which("rnnbench")), *command],
            cwd=tmp_path,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert any(
            line.split()[:2] == ["my-gru", "Two-layer"] for line in out.stdout.splitlines()
        ), out.stdout
        assert "options: layers: int = 2" in out.stdout
        assert (
            "pmnist" in out.stdout
        )  # the built-in tasks load (rnnbench.data imports platformdirs)
        assert "Traceback" not in out.stderr


# --- missing data, offline ------------------------------------------------------------------


@pytest.fixture
def empty_mirror(server):
    """A mirror on 127.0.0.1 that has none of the files (every request: 404)."""
    return server[1] + "/mnist"


def test_missing_data_offline_is_one_message_that_lists_every_file_and_where_to_put_it(
    tmp_path, empty_mirror
):
    """No network: a mirror that refuses connections (a closed port) and one that has nothing. One
    error, every missing file named (gzipped or not) with the folder, no warnings,
    nothing written."""
    data, results = tmp_path / "empty", tmp_path / "results"
    data.mkdir()
    closed = "http://127.0.0.1:9/mnist"  # the discard port: nothing listens there
    program = (
        "import sys\n"
        "from rnnbench.data import mnist\n"
        f"mnist.MNIST_MIRRORS = ({closed!r}, {empty_mirror!r})\n"
        "from rnnbench.cli import main\n"
        "main(sys.argv[1:], prog_name='rnnbench')\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            program,
            "run",
            "--cells",
            "lstm",
            "--task",
            "pmnist",
            "--device",
            "cpu",
            "--data-dir",
            str(data),
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    error = out.stderr
    assert (
        "Traceback" not in error
        and "warning" not in error.lower()
        and "trying the next mirror" not in error
    )
    assert error.startswith(
        f"Error: mnist: 4 files are missing from {data}, and no mirror gave a good copy:"
    )
    assert error.count("Error:") == 1
    assert f"{closed}/train-images-idx3-ubyte.gz: <urlopen error" in error  # what each mirror did
    assert f"{empty_mirror}/train-images-idx3-ubyte.gz: HTTP Error 404" in error
    assert f"Put these files into {data} yourself, as published (gzipped) or decompressed:" in error
    for file in mnist_data.MNIST_FILES.values():
        assert f"  {file.name}.gz" in error and f"or  {file.name}\n" in error
    assert "pass --data-dir a folder that holds them; then run again." in error
    assert list(data.iterdir()) == [] and not results.exists()


def test_non_finite_task_options_are_refused(folder, monkeypatch):
    """The built-in tasks take integers only; a task with a float option refuses nan and inf too."""
    from rnnbench.registry import TASKS, register_task

    TASKS.names()  # the built-ins are in before the copy is taken
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))

    @register_task("noisy-copying")
    class NoisyCopying(rnnbench.Task):
        """Copying with noise."""

        def __init__(self, noise: float = 0.1):
            self.noise = noise

    for value in ("nan", "inf", "-inf"):
        out = run(folder, ["--cells", "rnn", "--task", f"noisy-copying:noise={value}"])
        assert out.exit_code == 2, out.output
        assert (
            f"task spec 'noisy-copying:noise={value}': "
            f"option noise='{value}' is not a finite number" in out.output
        )
