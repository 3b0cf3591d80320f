"""Checkpoints: the file format, its checksum, and validation before anything is applied.

A checkpoint is a magic line, the SHA-256 of the payload, then the payload (torch.save of a
dict). It is written through a temporary file unique to its writer and renamed over the previous
one, so a crash leaves the old checkpoint or the new, never a mix, and two writers never share a
temporary file. It is read with weights_only=True, so a file crafted to run code is refused.

`validate` checks the whole state against the run that would resume from it (its run key, every
field, every tensor's shape and dtype, the optimizer's groups) before the runner applies any of
it: a checkpoint from another version, another run, or a damaged one is refused whole, and the
run starts from scratch in a state identical to a run that never had a checkpoint.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from rnnbench.store.claims import write_atomically

VERSION = 2
MAGIC = b"rnnbench checkpoint\n"
FIELDS = {
    "version",
    "run_key",
    "progress",
    "model",
    "optimizer",
    "batches",
    "best_state",
    "torch_rng",
    "python_rng",
    "cuda_rng",
}


class CheckpointError(ValueError):
    """The checkpoint cannot be used for this run; the message says why."""


def save(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (all of FIELDS) to `path`, atomically."""
    if set(state) != FIELDS:
        raise ValueError(f"a checkpoint holds exactly {sorted(FIELDS)}; got {sorted(state)}")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    write_atomically(path, MAGIC + hashlib.sha256(payload).digest() + payload)


def read(path: Path) -> dict[str, Any]:
    """The state in a checkpoint file, after checking its checksum (CheckpointError if bad)."""
    data = path.read_bytes()
    head = len(MAGIC)
    if not data.startswith(MAGIC):
        raise CheckpointError("not an rnnbench checkpoint (no magic line)")
    digest, payload = data[head : head + 32], data[head + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError("checksum mismatch: the file is truncated or corrupt")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (
        Exception
    ) as error:  # a payload that is not what torch.save writes, or that is not plain data
        raise CheckpointError(f"unreadable payload ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"the payload is a {type(state).__name__}, not a dict")
    return state


def _same_tensors(what: str, saved: Any, expected: dict[str, torch.Tensor]) -> None:
    if not isinstance(saved, dict) or set(saved) != set(expected):
        extra = sorted(set(saved) - set(expected)) if isinstance(saved, dict) else []
        missing = (
            sorted(set(expected) - set(saved)) if isinstance(saved, dict) else sorted(expected)
        )
        raise CheckpointError(f"{what}: entries differ (unexpected {extra}, missing {missing})")
    for name, tensor in expected.items():
        value = saved[name]
        if (
            not isinstance(value, torch.Tensor)
            or value.shape != tensor.shape
            or value.dtype != tensor.dtype
        ):
            got = (
                f"{tuple(value.shape)} {value.dtype}"
                if isinstance(value, torch.Tensor)
                else type(value).__name__
            )
            raise CheckpointError(
                f"{what}.{name}: {got}, expected {tuple(tensor.shape)} {tensor.dtype}"
            )


def validate(
    state: dict[str, Any],
    run_key: str,
    progress_fields: set[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    n_train: int,
) -> None:
    """Raise CheckpointError unless `state` fits this run exactly. Nothing is modified."""
    if set(state) != FIELDS:
        raise CheckpointError(
            f"fields differ: unexpected {sorted(set(state) - FIELDS)}, "
            f"missing {sorted(FIELDS - set(state))}"
        )
    if state["version"] != VERSION:
        raise CheckpointError(f"format version {state['version']!r}, expected {VERSION}")
    if state["run_key"] != run_key:
        raise CheckpointError(f"it belongs to run {state['run_key']!r}, not {run_key!r}")
    progress = state["progress"]
    if not isinstance(progress, dict) or set(progress) != progress_fields:
        got = set(progress) if isinstance(progress, dict) else set()
        raise CheckpointError(
            f"progress fields differ: unexpected {sorted(got - progress_fields)}, "
            f"missing {sorted(progress_fields - got)}"
        )
    expected = model.state_dict()
    _same_tensors("model", state["model"], expected)
    if state["best_state"] is not None:
        _same_tensors("best_state", state["best_state"], expected)
    saved = state["optimizer"]
    current = optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(current):
        raise CheckpointError("optimizer: not an optimizer state of this kind")
    groups = [list(g["params"]) for g in current["param_groups"]]
    if [list(g.get("params", [])) for g in saved["param_groups"]] != groups:
        raise CheckpointError("optimizer: its parameter groups are not this model's")
    if set(saved["param_groups"][0]) != set(current["param_groups"][0]):
        raise CheckpointError("optimizer: its hyper-parameters are not this optimizer's")
    parameters = dict(enumerate(p for g in optimizer.param_groups for p in g["params"]))
    for index, entries in saved["state"].items():
        if index not in parameters or not isinstance(entries, dict):
            raise CheckpointError(f"optimizer: state for unknown parameter {index!r}")
        for name, value in entries.items():
            if (
                isinstance(value, torch.Tensor)
                and value.dim() > 0
                and value.shape != parameters[index].shape
            ):
                raise CheckpointError(
                    f"optimizer: {name} of parameter {index} has shape {tuple(value.shape)}, "
                    f"expected {tuple(parameters[index].shape)}"
                )
    batches = state["batches"]
    if not isinstance(batches, dict) or set(batches) != {"generator", "order", "position"}:
        raise CheckpointError("batches: not a batch-order state")
    order, position = batches["order"], batches["position"]
    if not (
        isinstance(order, torch.Tensor)
        and order.dtype == torch.int64
        and order.dim() == 1
        and (
            order.numel() == 0
            or (order.numel() == n_train and int(order.min()) >= 0 and int(order.max()) < n_train)
        )
    ):
        raise CheckpointError(
            f"batches: the order is not a permutation of the {n_train} training examples"
        )
    if not isinstance(position, int) or not 0 <= position <= order.numel():
        raise CheckpointError(f"batches: position {position!r} is outside the order")
    for name in ("torch_rng",):
        if not (isinstance(state[name], torch.Tensor) and state[name].dtype == torch.uint8):
            raise CheckpointError(f"{name}: not a generator state")
    if (
        not isinstance(batches["generator"], torch.Tensor)
        or batches["generator"].dtype != torch.uint8
    ):
        raise CheckpointError("batches: not a generator state")
