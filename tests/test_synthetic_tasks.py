"""The synthetic tasks of recent recurrent-model papers (listops, mqar, selective-copying,
induction-heads): hand-written solvers score 1.0, memoryless answers score the stated chance,
the layouts are the sources', data is fixed by the seed, every option is checked."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnnbench
from rnnbench.config import RunConfig
from rnnbench.registry import TASKS
from rnnbench.task import IGNORE, check_task, valid_steps

CONFIG = RunConfig(seed=3, device="cpu")
NAMES = ["listops", "mqar", "selective-copying", "induction-heads"]


def build(name, n_test=300, n=20, **options):
    """A small task: n training and validation sequences, n_test test ones, the quick sizes of the
    sequences unless `options` say otherwise."""
    quick = TASKS.get(name).factory.presets["quick"]
    spec = {**quick, **options, "n_train": n, "n_valid": n, "n_test": n_test}
    return rnnbench.build_task(name + "".join(f":{k}={v}" for k, v in spec.items()))


def accuracy(task, split, answers):
    """The task's own score of `answers` (class indices, (B,) or (B, T)) on `split`, read as the
    runner reads it: logits (B, T, C) -> the valid steps -> task.metrics."""
    steps = split.x.shape[1]
    if answers.dim() == 1:
        answers = answers[:, None].expand(-1, steps)
    logits = F.one_hot(answers, task.num_classes).float()
    outputs, y = valid_steps(logits, split.y, split.lengths, task.readout)
    correct, count = task.metrics(outputs, y)["acc"]
    return correct / count, count


def tolerance(p, count):
    """Four standard errors of an accuracy p measured on `count` independent targets."""
    return 4 * math.sqrt(p * (1 - p) / count)


# ---------------------------------------------------------------------------------------------
# Hand-written solvers: plain Python reading the one-hot inputs, step by step (causally).


def tokens_of(split):
    """Token indices (B, T) from the one-hot inputs; -1 where a step is all zeros (padding)."""
    return torch.where(split.x.sum(-1) > 0, split.x.argmax(-1), torch.tensor(-1))


def solve_listops(split):
    ops = {10: min, 11: max, 12: lambda a: int(np.median(a)), 13: lambda a: sum(a) % 10}
    answers = []
    for row in tokens_of(split).tolist():
        stack = [[]]  # one list of arguments per open bracket (and the top level)
        for token in row:
            if token == -1:
                break
            if token < 10:
                stack[-1].append(token)
            elif token in ops:
                stack.append([token])
            else:  # "]"
                op, *args = stack.pop()
                stack[-1].append(ops[op](args))
        (value,) = stack[0]
        answers.append(value)
    return torch.tensor(answers)


def solve_mqar(split, vocab_size):
    answers = torch.zeros(split.y.shape, dtype=torch.int64)
    for i, row in enumerate(tokens_of(split).tolist()):
        bound, previous = {}, 0
        for t, token in enumerate(row):
            if (
                token >= vocab_size // 2
                and 1 <= previous < vocab_size // 2
                and previous not in bound
            ):
                bound[previous] = token  # a value right after a new key: the pair
            elif token in bound:
                answers[i, t] = bound[token]  # a key seen before: a query
            previous = token
    return answers


def solve_selective_copying(split, vocab_size):
    answers = torch.zeros(split.y.shape, dtype=torch.int64)
    for i, row in enumerate(tokens_of(split).tolist()):
        kept, markers = [], 0
        for t, token in enumerate(row):
            if token == vocab_size - 1:
                answers[i, t] = kept[markers]
                markers += 1
            elif token != 0:
                kept.append(token)
    return answers


def solve_induction_heads(split, vocab_size):
    answers = []
    for row in tokens_of(split).tolist():
        after_trigger = [row[t + 1] for t in range(len(row) - 1) if row[t] == vocab_size - 1]
        answers.append(after_trigger[0])
    return torch.tensor(answers)


def solve(task, split):
    if task.name == "listops":
        return solve_listops(split)
    solver = {
        "mqar": solve_mqar,
        "selective-copying": solve_selective_copying,
        "induction-heads": solve_induction_heads,
    }[task.name]
    return solver(split, task.vocab_size)


@pytest.mark.parametrize("name", NAMES)
def test_a_hand_written_solver_scores_exactly_one(name):
    task = build(name)
    test = task.load(CONFIG).test
    score, count = accuracy(task, test, solve(task, test))
    assert score == 1.0 and count >= len(test)


def test_the_listops_solver_also_solves_the_default_distribution():
    task = rnnbench.build_task("listops:n_train=2:n_valid=2:n_test=30")
    test = task.load(CONFIG).test
    assert accuracy(task, test, solve(task, test))[0] == 1.0
    assert (test.lengths > 500).all() and (test.lengths < 2000).all()


# ---------------------------------------------------------------------------------------------
# Memoryless answers: a constant (listops, selective-copying, induction-heads: every step that
# counts looks the same), or any function of the current key (mqar).


@pytest.mark.parametrize("name", NAMES)
def test_a_memoryless_answer_scores_the_stated_chance(name):
    task = build(name, n_test=2000)
    test = task.load(CONFIG).test
    if name == "mqar":
        current = tokens_of(test)
        answers = task.vocab_size // 2 + current % task.n_values  # a value chosen by the key alone
    else:
        counted = test.y[test.y != IGNORE]
        answers = torch.full(
            test.y.shape[:1], int(counted.mode().values)
        )  # the most frequent answer
    score, count = accuracy(task, test, answers)
    assert task.chance is not None
    assert score == pytest.approx(task.chance, abs=tolerance(task.chance, count))


def test_listops_chance_holds_on_the_default_distribution():
    task = rnnbench.build_task("listops:n_train=2:n_valid=2:n_test=600")
    test = task.load(CONFIG).test
    always_zero = torch.zeros(len(test), dtype=torch.int64)  # the most frequent value, measured
    score, count = accuracy(task, test, always_zero)
    assert task.chance == pytest.approx(0.1699)
    assert score == pytest.approx(task.chance, abs=tolerance(task.chance, count))
    assert (
        build("listops", max_depth=9).chance is None
    )  # (not measured: no line is better than a wrong one)


def test_mqar_chance_cannot_be_beaten_without_memory():
    """Knowing the key does not help: the value bound to it is uniform whatever the key."""
    task = build("mqar", n_test=2000)
    test = task.load(CONFIG).test
    counted = test.y != IGNORE
    keys, values = tokens_of(test)[counted], test.y[counted]
    table = torch.zeros(task.vocab_size, task.vocab_size)
    table.index_put_((keys, values), torch.ones(len(keys)), accumulate=True)
    best = table.max(1).values.sum() / len(
        keys
    )  # the best answer per key, fitted on the test set itself
    assert best < task.chance + 0.05


# ---------------------------------------------------------------------------------------------
# Layouts.


def test_listops_lengths_lie_between_the_bounds_and_padding_is_zero():
    task = build("listops", n=200)
    splits = task.load(CONFIG)
    for split in (splits.train, splits.valid, splits.test):
        assert split.lengths.dtype == torch.int64 and split.y.shape == (len(split),)
        assert (split.lengths > task.min_len).all() and (split.lengths < task.max_len).all()
        steps = torch.arange(split.x.shape[1])
        padding = steps >= split.lengths[:, None]
        assert (split.x[padding] == 0).all()  # padding is all zeros: it carries nothing
        assert (split.x[~padding].sum(-1) == 1).all()  # each valid step is one token
        assert split.x.shape[1] == int(split.lengths.max()) <= task.length
        tokens = tokens_of(split)
        last = tokens[torch.arange(len(split)), split.lengths - 1]
        assert (last == 14).all() and (tokens[:, 0] >= 10).all() & (tokens[:, 0] < 14).all()
    everything = [
        tuple(r[r >= 0].tolist())
        for s in (splits.train, splits.valid, splits.test)
        for r in tokens_of(s)
    ]
    assert len(set(everything)) == len(everything)  # no expression twice, as in the benchmark
    (depth,) = [v for k, v in task.example().items() if "depth" in k]
    assert (
        depth.min() == 1 and depth[0] == 1 and depth[-1] == 1
    )  # (one outer bracket, closed at the end)


def test_listops_lengths_follow_the_grammar():
    """The mean length of the kept expressions is the one the grammar implies (computed exactly
    from the length distribution of the benchmark's recursion)."""
    from rnnbench.tasks.listops import _length_distribution

    task = build("listops", n_test=1500)
    lengths = task.load(CONFIG).test.lengths.double()
    p = _length_distribution(task.max_depth, task.max_args, task.max_len)[
        task.min_len + 1 : task.max_len
    ]
    support = np.arange(task.min_len + 1, task.max_len)
    mean = (p * support).sum() / p.sum()
    sd = math.sqrt((p * (support - mean) ** 2).sum() / p.sum())
    assert float(lengths.mean()) == pytest.approx(mean, abs=4 * sd / math.sqrt(len(lengths)))
    assert task.accepted == pytest.approx(p.sum())


def test_mqar_has_the_zoology_layout():
    task = build("mqar", n_test=2000)  # 64 steps, 4 pairs over 32 tokens
    test = task.load(CONFIG).test
    tokens, k = tokens_of(test), task.num_kv_pairs
    keys, values = tokens[:, 0 : 2 * k : 2], tokens[:, 1 : 2 * k : 2]
    assert ((keys >= 1) & (keys < 16)).all() and ((values >= 16) & (values < 32)).all()
    assert (keys.sort(1).values.diff(1) > 0).all() and (
        values.sort(1).values.diff(1) > 0
    ).all()  # distinct
    queries = test.y != IGNORE
    assert (queries.sum(1) == k).all() and not queries[:, : 2 * k].any()
    assert (tokens[:, 2 * k :][~queries[:, 2 * k :]] == 0).all()  # blanks between the queries
    steps = torch.arange(task.length).expand_as(tokens)
    assert (steps[queries] % 2 == 0).all()  # (queries at even offsets after the 2k pair steps)
    # The first key's query is the first of the k draws: gap g with probability ~ (g + 1)^(a - 1).
    first = queries & (tokens == keys[:, :1])
    gap = (steps[first] - 2 * k) // 2
    weights = task.power_a * torch.arange(
        1, (task.length - 2 * k) // 2 + 1, dtype=torch.float64
    ) ** (task.power_a - 1)
    expected = weights / weights.sum()
    for g in (0, 1, 5):
        share = float((gap == g).double().mean())
        assert share == pytest.approx(
            float(expected[g]), abs=tolerance(float(expected[g]), len(gap))
        )


def test_selective_copying_has_the_mamba_layout():
    task = build("selective-copying", n_test=2000)  # 32 steps: 4 tokens among 28, then 4 markers
    test = task.load(CONFIG).test
    tokens, k, v = tokens_of(test), task.n_tokens, task.vocab_size
    region = tokens[:, : task.length - k]
    assert ((region > 0) & (region < v - 1)).sum(1).eq(k).all() and not (region == v - 1).any()
    assert (tokens[:, -k:] == v - 1).all()
    assert (test.y[:, :-k] == IGNORE).all() and torch.equal(
        test.y[:, -k:], region[region > 0].view(-1, k)
    )
    first = (region > 0).float().argmax(1).double()
    assert 3 < float(first.mean()) < 7  # (spread over the region: E = (28 - 4) / 5 = 4.8, not 0)


def test_induction_heads_has_the_h3_layout():
    task = build("induction-heads", n_test=2000)
    test = task.load(CONFIG).test
    tokens, trigger = tokens_of(test), task.vocab_size - 1
    assert (tokens == trigger).sum(1).eq(2).all() and (tokens[:, -1] == trigger).all()
    assert (tokens[:, -2] != trigger).all() and (test.y != trigger).all()
    first = (tokens == trigger).float().argmax(1)
    assert torch.equal(test.y, tokens[torch.arange(len(test)), first + 1])
    assert set(first.tolist()) == set(range(task.length - 2))


# ---------------------------------------------------------------------------------------------
# The contract.


@pytest.mark.parametrize("name", NAMES)
def test_the_task_follows_the_contract(name):
    task = build(name)
    check_task(task)
    splits = task.load(CONFIG.replace(dtype="float64"))
    for split in (splits.train, splits.valid, splits.test):
        assert split.x.dtype == torch.float64 and split.y.dtype == torch.int64
        assert split.x.shape[2] == task.input_size and split.x.shape[1] <= task.length
        assert set(split.x.unique().tolist()) <= {0.0, 1.0}
        targets = split.y[split.y != IGNORE]
        assert ((targets >= 0) & (targets < task.num_classes)).all()
        if task.readout == "every":
            assert split.y.shape == split.x.shape[:2] and split.lengths is None
            assert split.x.shape[1] == task.length
    assert splits.sizes() == {"n_train": 20, "n_valid": 20, "n_test": 300}
    assert set(task.options) == set(TASKS.get(name).options)  # every option, in the data identity
    assert splits.identity == {
        "generator": name,
        **task.options,
    }  # (the seed is the row's, not the data's)
    assert 0 < task.chance < 1 and 0 < task.target_score <= 1
    summary = task.metadata()["summary"]
    assert summary.endswith(".") and summary.count(". ") == 0  # one sentence
    doc = type(task).__doc__
    assert re.search(r"arXiv:\d{4}\.\d{5}", doc) and re.search(r"arXiv:\d{4}\.\d{5}", task.citation)
    assert "Deviation" in doc
    for label, array in task.example().items():
        assert array.ndim in (1, 2) and np.isfinite(array).all() and isinstance(label, str)


@pytest.mark.parametrize("name", NAMES)
def test_data_is_fixed_by_the_seed(name):
    task = build(name, n_test=20)
    first, again, other = task.load(CONFIG), task.load(CONFIG), task.load(CONFIG.replace(seed=4))
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(first, split).x, getattr(again, split).x)
        assert torch.equal(getattr(first, split).y, getattr(again, split).y)
        a, b = getattr(first, split).x, getattr(other, split).x
        assert a.shape != b.shape or not torch.equal(a, b)
    assert (
        first.identity == again.identity == other.identity
    )  # (the seed is in the row, not the identity)
    assert first.train.x.shape != first.test.x.shape or not torch.equal(first.train.x, first.test.x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_data_bytes_is_what_load_holds(name, dtype):
    task = build(name, n=400, n_test=200)
    config = CONFIG.replace(dtype=dtype)
    estimate = task.data_bytes(config)
    splits = task.load(config)
    held = sum(
        t.nbytes
        for s in (splits.train, splits.valid, splits.test)
        for t in (s.x, s.y, s.lengths)
        if t is not None
    )
    assert held <= estimate <= 2 * held


BAD = {
    "listops": [
        "max_depth=1",
        "max_depth=501",
        "max_args=1",
        "min_len=0",
        "max_len=501",
        "max_depth=3",
        "n_train=0",
        "n_valid=0",
        "n_test=-1",
    ],
    "mqar": [
        "vocab_size=3",
        "vocab_size=17",
        "length=63",
        "length=2",
        "num_kv_pairs=0",
        "num_kv_pairs=33",
        "power_a=0.0",
        "power_a=1.5",
        "n_train=0",
        "n_valid=0",
        "n_test=0",
    ],
    "selective-copying": [
        "length=31",
        "n_tokens=0",
        "vocab_size=2",
        "n_train=0",
        "n_valid=0",
        "n_test=0",
    ],
    "induction-heads": ["length=2", "vocab_size=2", "n_train=0", "n_valid=0", "n_test=0"],
}


@pytest.mark.parametrize("name,bad", [(name, bad) for name, bads in BAD.items() for bad in bads])
def test_a_bad_option_is_refused_by_name(name, bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        rnnbench.build_task(f"{name}:{bad}")


def test_every_option_has_a_refused_value():
    for name, bads in BAD.items():
        assert {bad.split("=")[0] for bad in bads} == set(TASKS.get(name).options)


@pytest.mark.parametrize(
    "spec,attribute,value",
    [
        ("listops:min_len=400", "min_len", 400),
        ("mqar:num_kv_pairs=4", "num_kv_pairs", 4),
        ("selective-copying:n_tokens=8", "n_tokens", 8),
        ("induction-heads:vocab_size=20", "input_size", 20),
    ],
)
def test_the_registry_builds_each_task_from_a_spec(spec, attribute, value):
    task = rnnbench.build_task(spec)
    assert getattr(task, attribute) == value and task.name == spec.split(":")[0]


@pytest.mark.parametrize("name", NAMES)
def test_the_quick_preset_names_options_of_the_task(name):
    task = rnnbench.build_task(name)
    quick = task.presets["quick"]
    assert set(quick) <= set(TASKS.get(name).options)
    small = rnnbench.build_task(name + "".join(f":{k}={v}" for k, v in quick.items()))
    assert (
        16 <= small.length <= 128
        and sum(small.options[f"n_{s}"] for s in ("train", "valid", "test")) == 3000
    )
    assert small.chance is not None
