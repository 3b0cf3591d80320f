"""Padding: a batch of sequences of different lengths, padded at the end, gives every cell (and
every EURNN implementation) the same loss, metrics and gradients as the same sequences run one at
a time without padding, to 1e-10 in float64; whatever the padding holds, and whatever the
evaluation batch size."""

import pytest
import torch

import rnnbench
from rnnbench.runner import SequenceClassifier, evaluate
from rnnbench.task import IGNORE, Split, Task

LENGTHS = [5, 2, 7, 1, 4]
INPUTS, CLASSES, HIDDEN = 3, 4, 16  # (16: legal for every cell: the FFT style, capacity 16)

CELL_SPECS = rnnbench.list_cells() + [
    pytest.param(f"eurnn:impl={impl}", marks=[pytest.mark.fused] if impl == "fused" else [])
    for impl in ("reference", "dense", "fused")
]


class LastStep(Task):
    """A class read at each sequence's last valid step."""

    input_size, num_classes, readout = INPUTS, CLASSES, "last"


class EveryStep(Task):
    """A class at every valid step, some of which do not count (IGNORE)."""

    input_size, num_classes, readout = INPUTS, CLASSES, "every"


def padded_batch(readout: str) -> Split:
    """Sequences of LENGTHS padded to the longest with large random values (not zeros: what the
    padding holds must not matter), and their targets (garbage in padded steps too)."""
    g = torch.Generator().manual_seed(1)
    longest = max(LENGTHS)
    x = 3 * torch.randn(len(LENGTHS), longest, INPUTS, generator=g, dtype=torch.float64)
    if readout == "last":
        y = torch.randint(CLASSES, (len(LENGTHS),), generator=g)
    else:
        y = torch.randint(CLASSES, (len(LENGTHS), longest), generator=g)
        y[0, 1] = IGNORE  # a step whose output is free
    return Split(x, y, torch.tensor(LENGTHS))


def model_for(spec, readout: str) -> SequenceClassifier:
    torch.manual_seed(0)
    cell = rnnbench.build_cell(spec, INPUTS, HIDDEN)
    return SequenceClassifier(cell, CLASSES, readout).double()


def gradients(model) -> list[torch.Tensor]:
    grads = [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()
    ]
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("readout", ["last", "every"])
@pytest.mark.parametrize("spec", CELL_SPECS)
def test_a_padded_batch_equals_its_sequences_one_at_a_time(spec, readout):
    task = (LastStep if readout == "last" else EveryStep)()
    model = model_for(spec, readout)
    batch = padded_batch(readout)

    logits, y = model(batch)
    loss = task.loss(logits, y)
    loss.backward()
    batch_grads, batch_metrics = gradients(model), task.metrics(logits.detach(), y)

    # One at a time, unpadded: the batch's mean loss is the sum of each sequence's summed loss
    # over the number of targets that count in the whole batch.
    counted = (
        len(LENGTHS)
        if readout == "last"
        else int(
            (batch.y[:, : max(LENGTHS)] != IGNORE)[
                torch.arange(max(LENGTHS)) < batch.lengths[:, None]
            ].sum()
        )
    )
    total_loss = torch.zeros((), dtype=torch.float64)
    sums = {"loss": [0.0, 0.0], "acc": [0.0, 0.0]}
    for i, length in enumerate(LENGTHS):
        one = Split(
            batch.x[i : i + 1, :length],
            batch.y[i : i + 1] if readout == "last" else batch.y[i : i + 1, :length],
        )
        logits_i, y_i = model(one)
        summed = torch.nn.functional.cross_entropy(
            logits_i, y_i, ignore_index=IGNORE, reduction="sum"
        )
        (summed / counted).backward()
        total_loss += summed.detach()
        for name, (value, count) in task.metrics(logits_i.detach(), y_i).items():
            sums[name][0] += value
            sums[name][1] += count
    one_grads = gradients(model)

    assert abs(loss.item() - total_loss.item() / counted) < 1e-10
    for name, (value, count) in batch_metrics.items():
        assert count == sums[name][1]
        assert abs(value - sums[name][0]) < 1e-9, name
    for a, b in zip(batch_grads, one_grads, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-10), (a - b).abs().max()
    assert any(g.abs().sum() > 0 for g in batch_grads)  # (a test that cannot pass vacuously)


def test_the_padding_never_reaches_the_cell_beyond_the_longest_sequence_of_a_batch():
    """Split.take trims a batch to its longest sequence: steps that are padding in every
    sequence are not computed."""
    batch = padded_batch("every")
    part = batch.take(torch.tensor([1, 3]))  # lengths 2 and 1
    assert part.x.shape[1] == 2 and part.y.shape[1] == 2
    assert torch.equal(part.lengths, torch.tensor([2, 1]))


@pytest.mark.parametrize("readout", ["last", "every"])
def test_evaluation_does_not_depend_on_the_batch_size(readout):
    """Metrics are sums over counts: a split's mean is exact whatever --eval-batch-size is, even
    with sequences of different lengths (a mean of batch means would weight them wrongly)."""
    task = (LastStep if readout == "last" else EveryStep)()
    model = model_for("lstm", readout)
    split = padded_batch(readout)
    results = [
        evaluate(model, task, split, size, torch.device("cpu")) for size in (1, 2, 3, len(LENGTHS))
    ]
    for other in results[1:]:
        for name in results[0]:
            assert abs(other[name] - results[0][name]) < 1e-12


def test_a_split_refuses_lengths_that_do_not_fit():
    x, y = torch.zeros(2, 4, 1), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="lengths must be in"):
        Split(x, y, torch.tensor([5, 1]))
    with pytest.raises(ValueError, match="one per sequence"):
        Split(x, y, torch.tensor([1]))
    with pytest.raises(ValueError, match="2 inputs but 3 targets"):
        Split(x, torch.zeros(3))


@pytest.mark.parametrize("spec", CELL_SPECS)
def test_every_cell_is_causal(spec):
    """The cell contract padding relies on: the output at step t depends on steps up to t only."""
    torch.manual_seed(0)
    cell = rnnbench.build_cell(spec, INPUTS, HIDDEN).double()
    x = torch.randn(2, 9, INPUTS, dtype=torch.float64)
    changed = x.clone()
    changed[:, 5:] = 7 * torch.randn(2, 4, INPUTS, dtype=torch.float64)
    y, y_changed = cell(x), cell(changed)
    assert torch.allclose(y[:, :5], y_changed[:, :5], rtol=0, atol=1e-12)
    assert not torch.allclose(y[:, 5:], y_changed[:, 5:])
