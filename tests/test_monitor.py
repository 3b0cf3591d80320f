"""Live views of a run (rnnbench.monitor): richer curves, progress lines off a terminal, and
TensorBoard event files that hold exactly the curves file's scalars."""

import contextlib
import io
import logging
import math
import sys

import pandas as pd
import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench import logs, monitor
from rnnbench.config import RunConfig
from rnnbench.runner import train

CPU = torch.device("cpu")
TINY = RunConfig(
    hidden_size=8,
    batch_size=10,
    steps=12,
    eval_every=6,
    eval_batch_size=7,
    lr=1e-2,
    device="cpu",
    log_every=5,
)


class _Recorded:
    """A task whose training losses are recorded (the first call is the runner's warm-up pass)."""

    def __init__(self, name="pmnist"):
        self.task, self.losses = rnnbench.build_task(name), []

    def __getattr__(self, name):
        return getattr(self.task, name)

    def loss(self, logits, y):
        value = self.task.loss(logits, y)
        self.losses.append(value.item())
        return value


@contextlib.contextmanager
def _logged():
    """The lines logged inside the block, as the CLI prints them (rnnbench.logs.Formatter)."""
    logger, stream, lines = logging.getLogger("rnnbench"), io.StringIO(), []
    handler, level = logging.StreamHandler(stream), logger.level
    handler.setFormatter(logs.Formatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines += stream.getvalue().splitlines()


def _train(tiny_mnist, spec="lstm", config=TINY, **kw):
    """Train on the tiny digits: the losses of each step, the result, the lines logged."""
    task = _Recorded()
    splits = task.load(config, tiny_mnist)
    with _logged() as lines:
        result = train(task, rnnbench.parse_cell_spec(spec), config, splits, CPU, **kw)
    return task.losses[1:], result, lines


def test_train_points_are_the_mean_loss_of_each_window_of_log_every_steps(tiny_mnist):
    losses, result, _ = _train(tiny_mnist)
    points = [p for p in result["curves"] if p["split"] == "train"]
    assert [p["step"] for p in points] == [
        5,
        10,
        12,
    ]  # every 5 steps, and the last (partial) window
    for point, window in zip(points, (losses[0:5], losses[5:10], losses[10:12]), strict=True):
        assert point["loss"] == pytest.approx(sum(window) / len(window), rel=1e-12)
        assert point["grad_norm"] > 0
    assert result["final_train_loss"] == losses[-1]
    assert [p["step"] for p in result["curves"] if p["split"] == "valid"] == [6, 12]
    assert result["log_time_s"] >= 0


def test_the_gradient_norm_is_measured_before_clipping_and_alike_with_or_without_it(tiny_mnist):
    # clip 0 (the monitor computes the norm) and a clip that never bites (clip_grad_norm_ returns
    # it): the same run, the same norms; a clip that always bites changes the training, not the
    # norm logged, which stays the one before clipping
    _, free, _ = _train(tiny_mnist, config=TINY.replace(clip=0.0))
    _, loose, _ = _train(tiny_mnist, config=TINY.replace(clip=1e9))
    norms = lambda r: [p["grad_norm"] for p in r["curves"] if p["split"] == "train"]  # noqa: E731
    assert norms(free) == pytest.approx(norms(loose), rel=1e-5)
    _, tight, _ = _train(tiny_mnist, config=TINY.replace(clip=1e-4))
    assert min(norms(tight)) > 1e-2  # (clipped norms would be 1e-4)


@pytest.mark.parametrize("spec", ["eurnn", "exprnn", "scornn", "lstm"])
def test_unitary_and_orthogonal_cells_log_how_far_their_matrix_is_from_unitary(tiny_mnist, spec):
    _, result, lines = _train(tiny_mnist, spec)
    valid = [p for p in result["curves"] if p["split"] == "valid"]
    if spec == "lstm":
        assert {p["unitarity_error"] for p in valid} == {""}
        assert not any("UᴴU" in line for line in lines)
        return
    assert all(0 <= p["unitarity_error"] < 1e-4 for p in valid)  # float32 rounding, not drift
    assert sum("‖UᴴU − I‖" in line for line in lines) == len(valid)


def test_the_unitarity_error_measures_drift():
    cell = rnnbench.build_cell("eurnn", 1, 8)
    assert monitor.unitarity_error(cell) < 1e-5
    drifted = type(
        "Drifted", (torch.nn.Module,), {"recurrent_matrix": lambda self: 1.1 * torch.eye(8)}
    )()
    assert monitor.unitarity_error(drifted) == pytest.approx(math.sqrt(8) * 0.21, rel=1e-6)
    assert monitor.unitarity_error(rnnbench.build_cell("lstm", 1, 8)) is None


def test_progress_lines_off_a_terminal_name_the_run_and_how_far_it_is(tiny_mnist, monkeypatch):
    monkeypatch.setattr(monitor, "PROGRESS_SECONDS", 0.0)  # a line at every logged step
    _, _, lines = _train(tiny_mnist, config=TINY.replace(seed=3))
    progress = [line for line in lines if not line.startswith("resuming")]
    assert len(progress) == 3 + 2  # three training points, two evaluations
    for line, step in zip(progress, (5, 6, 10, 12, 12), strict=True):
        assert line.startswith(
            f"pmnist lstm N=8 seed 3: step {step}/12 ({100 * step / 12:.0f} %), "
        )
        assert " elapsed, about " in line and " left; " in line
    assert "train loss" in progress[0] and "grad norm" in progress[0] and "valid" in progress[1]


def test_progress_lines_are_rate_limited_but_evaluations_always_show(tiny_mnist):
    _, _, lines = _train(tiny_mnist)  # (PROGRESS_SECONDS: a minute, longer than this run)
    assert (
        sum("train loss" in line for line in lines) == 1
        and sum("; valid " in line for line in lines) == 2
    )


@pytest.mark.parametrize(
    "seconds, text",
    [(0.4, "0 s"), (59.4, "59 s"), (125, "2 min 05 s"), (7300, "2 h 01 min"), (math.nan, "?")],
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert monitor.duration(seconds) == text


def test_how_a_run_is_logged_is_not_part_of_what_it_is():
    plain = RunConfig()
    assert plain.replace(log_every=7, tensorboard=True).identity() == plain.identity() == {}
    with pytest.raises(ValueError, match="--log-every"):
        plain.replace(log_every=0).validate()


def _events(folder):
    """{tag: [(step, value)]} of every scalar in a run's TensorBoard folder, read by TensorBoard's
    own reader, and its hyper-parameters."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder))
    events.Reload()
    scalars = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    hparams = {
        k: v.string_value or v.number_value or v.bool_value for k, v in start.hparams.items()
    }
    return scalars, hparams


def test_tensorboard_events_hold_the_curves_scalars_and_the_config(tmp_path):
    """`--tensorboard` on the quick preset, 60 steps (EURNN, the bundled MNIST sample): every
    scalar of the curves file is in the run's event files, at its step, and nothing else but the
    final metrics."""
    pytest.importorskip("tensorboard")
    results = tmp_path / "results"
    out = invoke(
        "run",
        "--cells",
        "eurnn",
        "--task",
        "pmnist",
        "--preset",
        "quick",
        "--steps",
        "60",
        "--eval-every",
        "20",
        "--log-every",
        "10",
        "--device",
        "cpu",
        "--tensorboard",
        "--results",
        str(results),
    )
    assert out.exit_code == 0, out.output
    row = pd.read_csv(results / "pmnist.csv").iloc[0]
    curves = pd.read_csv(results / "pmnist-curves.csv")
    assert (
        set(curves.cell_spec) == {"eurnn"}
        and set(curves.hidden_size) == {64}
        and set(curves.seed) == {0}
    )
    assert [p.name for p in (results / "tb").iterdir()] == [row.run_id]
    scalars, hparams = _events(results / "tb" / row.run_id)
    expected = {}
    for split, group, names in (
        ("train", "train", monitor.TRAIN_SCALARS),
        ("valid", "valid", monitor.VALID_SCALARS),
        ("valid", "health", monitor.HEALTH_SCALARS),
    ):
        points = curves[curves.split == split]
        for name in names:
            expected[f"{group}/{name}"] = list(zip(points.step, points[name], strict=True))
    assert len(expected["train/loss"]) == 60 // 10 and len(expected["valid/acc"]) == 3
    finals = {tag: values for tag, values in scalars.items() if tag.startswith("final/")}
    assert set(scalars) - set(finals) == set(expected)
    for tag, points in expected.items():
        assert [step for step, _ in scalars[tag]] == [step for step, _ in points], tag
        assert [value for _, value in scalars[tag]] == pytest.approx(
            [v for _, v in points], rel=1e-6
        ), tag
    for name in ("test_acc", "best_valid_acc", "step_time_ms", "params"):
        assert finals[f"final/{name}"][0][1] == pytest.approx(row[name], rel=1e-6), name
    assert (
        hparams["cell_spec"] == "eurnn"
        and hparams["lr"] == pytest.approx(3e-3)
        and hparams["hidden_size"] == 64
    )


def test_a_resumed_run_shows_each_step_once_in_tensorboard(tmp_path):
    """A run resumed from its checkpoint at step 10 logs steps after 10 again: TensorBoard purges
    what the first attempt logged after it."""
    pytest.importorskip("tensorboard")
    first = monitor.Monitor("x", 30, tensorboard=tmp_path / "run", terminal=False)
    for step in (5, 10, 15):
        first.train_point({"step": step, "loss": float(step), "grad_norm": 1.0})
    first.close()  # (killed after step 15, its checkpoint from step 10)
    second = monitor.Monitor("x", 30, start_step=10, tensorboard=tmp_path / "run", terminal=False)
    for step in (15, 20):
        second.train_point({"step": step, "loss": -float(step), "grad_norm": 1.0})
    second.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (5, 5.0),
        (10, 10.0),
        (15, -15.0),
        (20, -20.0),
    ]


def test_tensorboard_in_a_config_file_and_refused_without_the_package(tmp_path, monkeypatch):
    config = tmp_path / "sweep.toml"
    config.write_text('command = "run"\ncells = ["rnn"]\ntask = "pmnist"\ntensorboard = true\n')
    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", None
    )  # (import fails: not installed)
    out = invoke(
        "run", "--config", str(config), "--preset", "quick", "--results", str(tmp_path / "r")
    )
    assert out.exit_code == 2 and "pip install 'rnnbench[tensorboard]'" in out.output
    assert not (tmp_path / "r" / "pmnist.csv").exists()


@pytest.mark.parametrize("name", rnnbench.list_cells())
def test_a_cell_that_shows_its_recurrent_matrix_starts_unitary(name):
    """The contract of `recurrent_matrix()`: only cells whose matrix is unitary or orthogonal by
    construction define it (the health figure would be meaningless otherwise)."""
    torch.manual_seed(0)
    error = monitor.unitarity_error(rnnbench.build_cell(name, 3, 16))
    assert error is None or error < 1e-4


class _NaNAt(_Recorded):
    """A task whose training loss becomes NaN at call `n` (the first is the warm-up pass)."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def loss(self, logits, y):
        value = super().loss(logits, y)
        return value * math.nan if len(self.losses) == self.n else value


def test_a_diverged_run_keeps_the_mean_loss_of_its_last_finite_steps(tiny_mnist):
    task = _NaNAt(9)  # steps 1-7 finite, NaN at step 8
    splits = task.load(TINY, tiny_mnist)
    result = train(task, rnnbench.parse_cell_spec("rnn"), TINY, splits, CPU)
    assert result["status"] == "diverged" and result["steps_done"] == 7
    last = [p for p in result["curves"] if p["split"] == "train"][-1]
    assert last["step"] == 7 and last["loss"] == pytest.approx(sum(task.losses[6:8]) / 2, rel=1e-12)
    assert last["grad_norm"] == ""  # (not measured between two logged steps)


def test_a_tensorboard_folder_that_cannot_be_written_costs_a_warning_not_the_run(
    tiny_mnist, tmp_path
):
    pytest.importorskip("tensorboard")
    blocked = tmp_path / "tb"
    blocked.write_text("a file where the folder should be")
    _, result, lines = _train(tiny_mnist, tensorboard=blocked)
    assert result["status"] == "ok" and result["test_acc"] >= 0
    assert (
        sum(
            line.startswith("warning: pmnist lstm N=8 seed 0: TensorBoard stops here")
            for line in lines
        )
        == 1
    )
    # the command refuses it before anything trains
    out = invoke(
        "run",
        "--cells",
        "rnn",
        "--task",
        "pmnist",
        "--preset",
        "quick",
        "--device",
        "cpu",
        "--tensorboard",
        "--results",
        str(tmp_path),
    )
    assert out.exit_code == 1 and "tb" in out.output and not (tmp_path / "pmnist.csv").exists()


def test_tensorboard_keeps_the_evaluation_a_resumed_run_checkpointed_at(
    tiny_mnist, tmp_path, monkeypatch
):
    """Killed right after its checkpoint at step 8, the run resumes from it: TensorBoard must hold
    step 8's validation point, logged before the checkpoint, once."""
    pytest.importorskip("tensorboard")
    from rnnbench import runner

    config = TINY.replace(eval_every=4)
    saved = runner.save_checkpoint

    def killed_after_the_second(path, state):
        saved(path, state)
        if state["progress"]["step"] == 8:
            raise KeyboardInterrupt("preempted")

    monkeypatch.setattr(runner, "save_checkpoint", killed_after_the_second)
    with pytest.raises(KeyboardInterrupt):
        _train(
            tiny_mnist, config=config, checkpoint=tmp_path / "run.pt", tensorboard=tmp_path / "tb"
        )
    monkeypatch.setattr(runner, "save_checkpoint", saved)
    _, result, lines = _train(
        tiny_mnist, config=config, checkpoint=tmp_path / "run.pt", tensorboard=tmp_path / "tb"
    )
    assert any("pmnist lstm N=8 seed 0: resuming from step 8" in line for line in lines)
    (folder,) = (tmp_path / "tb").iterdir()
    assert folder.name == result["run_id"]
    scalars, _ = _events(folder)
    for split, tag in (("valid", "valid/acc"), ("train", "train/loss")):
        points = [
            (p["step"], p["acc" if split == "valid" else "loss"])
            for p in result["curves"]
            if p["split"] == split
        ]
        assert (
            [step for step, _ in scalars[tag]]
            == [step for step, _ in points]
            == ([4, 8, 12] if split == "valid" else [5, 10, 12])
        )
        assert [value for _, value in scalars[tag]] == pytest.approx(
            [value for _, value in points], rel=1e-6
        )
