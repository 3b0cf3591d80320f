"""Bad input to `rnnbench run`, one case per row: the exit code, a message that names the value
and what would be valid, and nothing written (no results folder, no data folder)."""

import gzip
import os

import pytest
import torch
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.data import mnist as mnist_data

KNOWN_CELLS = "known: eurnn, eurnn-c16, eurnn-c4, eurnn-c8, eurnn-fft, eurnn-full, gru, lstm, rnn"
CASES = [
    # (arguments, exit code, message)
    (["--cells", "transformer"], 2, f"unknown cell 'transformer'; {KNOWN_CELLS}"),
    (["--cells", "lstn"], 2, f"unknown cell 'lstn' (did you mean 'lstm'?); {KNOWN_CELLS}"),
    (["--cells", "rnn", "--task", "imagenet"], 2, "unknown task 'imagenet'; known: adding, copying, pfmnist, pmnist"),
    (["--cells", "rnn", "--task", "adding:lenght=5"], 2, "unknown option 'lenght'; options of adding: length: int = 100"),
    (["--cells", "rnn", "--preset", "fast"], 2, "unknown preset 'fast'; known: default, torch-eunn, quick"),
    (["--cells", "eurnn:capacity"], 2, "cell spec 'eurnn:capacity': 'capacity' is not KEY=VALUE; options of eurnn: "
                                       "capacity: int = 2"),
    (["--cells", "eurnn:capacity=x"], 2, "capacity='x' is not a valid int"),
    (["--cells", "eurnn:nope=1"], 2, "unknown option 'nope'; options of eurnn: capacity: int = 2"),
    (["--cells", "eurnn:capacity=0", "--hidden", "8"], 2, "capacity must be in [1, hidden_size=8] for style='tunable'; "
                                                          "got 0"),
    (["--cells", "eurnn:capacity=-3", "--hidden", "8"], 2, "capacity must be in [1, hidden_size=8]"),
    (["--cells", "eurnn:capacity=9", "--hidden", "8"], 2, "capacity must be in [1, hidden_size=8] for style='tunable'; "
                                                          "got 9"),
    (["--cells", "eurnn-c16", "--hidden", "8"], 2, "capacity must be in [1, hidden_size=8] for style='tunable'; got 16"),
    (["--cells", "eurnn", "--hidden", "7"], 2, "EURNN needs an even hidden size >= 2 (units are mixed in pairs); got 7"),
    (["--cells", "eurnn-fft", "--hidden", "12"], 2, "EURNN style='fft' needs a hidden size that is a power of two; "
                                                    "got 12"),
    (["--cells", "eurnn:impl=gpu"], 2, "impl='gpu' is not one of auto, reference, dense, fused"),
    (["--cells", "rnn", "--steps", "0"], 2, "steps must be a positive integer; got 0"),
    (["--cells", "rnn", "--steps", "-5"], 2, "steps must be a positive integer; got -5"),
    (["--cells", "rnn", "--batch-size", "0"], 2, "batch_size must be a positive integer; got 0"),
    (["--cells", "rnn", "--batch-size", "-1"], 2, "batch_size must be a positive integer; got -1"),
    (["--cells", "rnn", "--batch-size", "5000"], 2, "batch_size 5000 is larger than the training set (4000 examples)"),
    (["--cells", "rnn", "--lr", "0"], 2, "lr must be positive; got 0.0"),
    (["--cells", "rnn", "--lr", "-1"], 2, "lr must be positive; got -1.0"),
    (["--cells", "rnn", "--hidden", "0"], 2, "hidden_size must be a positive integer; got 0"),
    (["--cells", "rnn", "--hidden", "8,x"], 2, "hidden sizes must be integers separated by commas; got '8,x'"),
    (["--cells", "rnn", "--seeds", "1,x"], 2, "seeds must be integers separated by commas; got '1,x'"),
    (["--cells", "rnn", "--seeds", "1.5"], 2, "seeds must be integers separated by commas; got '1.5'"),
    (["--cells", "rnn", "--seeds", ","], 2, "no seeds given"),
    (["--cells", ""], 2, f"no cell given in --cells ''; {KNOWN_CELLS}"),
    (["--cells", ","], 2, "no cell given in --cells ','"),
    (["--cells", "gpt*"], 2, f"no cell matches 'gpt*'; {KNOWN_CELLS}"),
    (["--cells", "rnn", "--optimizer", "sgd"], 2, "'sgd' is not one of 'rmsprop', 'adam'"),
    (["--cells", "rnn", "--data-dir", "{tmp}/no such folder"], 2, "Directory '{tmp}/no such folder' does not exist"),
    (["--cells", "rnn", "--data-dir", "{tmp}/a-file"], 2, "Directory '{tmp}/a-file' is a file"),
    (["--cells", "rnn", "--data", "full", "--data-dir", "{tmp}/wrong-format"], 2,
     "{tmp}/wrong-format/train-images-idx3-ubyte.gz: SHA-256 of the content is "),
]
if not torch.cuda.is_available():
    CASES.append((["--cells", "rnn", "--device", "cuda"], 2,
                  "device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu or auto"))


@pytest.fixture
def folder(tmp_path):
    """A scratch folder with a file and a data folder of MNIST's file names holding other bytes."""
    (tmp_path / "a-file").write_text("not a folder")
    wrong = tmp_path / "wrong-format"
    wrong.mkdir()
    for data_file in mnist_data.MNIST_FILES.values():
        (wrong / data_file.name).with_suffix(".gz").write_bytes(gzip.compress(b"<html>a captive portal</html>"))
    return tmp_path


def run(folder, args):
    args = [a.replace("{tmp}", str(folder)) for a in args]
    base = {"--task": "pmnist", "--data": "sample", "--device": "cpu"}
    extra = [item for key, value in base.items() if key not in args for item in (key, value)]
    before = sorted(p.name for p in folder.rglob("*"))
    out = CliRunner().invoke(main, ["run", *args, *extra, "--results", str(folder / "results")])
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written, anywhere
    return out


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_with_a_message_that_names_the_value_and_writes_nothing(folder, args, code, message):
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
