"""The cell contract, checked for every registered cell (a new cell is tested on registration)."""

import pytest
import torch
from torch import nn

import rnnbench

HIDDEN = 16  # even, a power of two and >= 16, so every built-in variant accepts it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", rnnbench.list_cells())
def test_shape_finite_and_gradients_reach_every_parameter(name, dtype, device):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(name, input_size=3, hidden_size=HIDDEN).to(
        device=device, dtype=dtype
    )
    x = torch.randn(4, 7, 3, device=device, dtype=dtype)
    y = cell(x)
    assert y.shape == (4, 7, cell.output_size)
    assert y.dtype == dtype and y.device.type == device.type
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    for pname, p in cell.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name, native", [("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_classic_cells_equal_the_native_torch_modules(name, native):
    torch.manual_seed(1)
    cell = rnnbench.build_cell(name, input_size=3, hidden_size=8).double()
    control = native(3, 8, batch_first=True).double()
    control.load_state_dict({k.removeprefix("layer."): v for k, v in cell.state_dict().items()})
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    y, y_control = cell(x), control(x)[0]
    torch.testing.assert_close(y, y_control, rtol=0, atol=1e-12)
    y.sum().backward()
    y_control.sum().backward()
    for (pname, p), q in zip(cell.named_parameters(), control.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12, msg=pname)


@pytest.mark.parametrize("forget_bias", [1.0, 0.5])
def test_lstm_forget_gate_bias_starts_at_the_option(forget_bias):
    cell = rnnbench.build_cell(f"lstm:forget_bias={forget_bias}", input_size=2, hidden_size=5)
    gates = cell.layer.bias_ih_l0 + cell.layer.bias_hh_l0  # (4H,) in torch's order i, f, g, o
    assert torch.equal(gates[5:10], torch.full((5,), forget_bias))
    assert not torch.equal(gates[:5], torch.full((5,), forget_bias))  # other gates untouched
