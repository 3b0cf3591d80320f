"""The classic baselines on torch's fused modules: `rnn` (tanh), `lstm`, `gru`.

Each wraps one batch-first layer of `nn.RNN` / `nn.LSTM` / `nn.GRU`, so rnnbench measures
exactly what a researcher gets from torch, and returns every step's hidden state.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnbench.registry import register_cell

ELMAN = """@article{elman1990finding,
  title={Finding Structure in Time},
  author={Elman, Jeffrey L.},
  journal={Cognitive Science}, volume={14}, number={2}, pages={179--211}, year={1990}}"""
HOCHREITER = """@article{hochreiter1997long,
  title={Long Short-Term Memory},
  author={Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen},
  journal={Neural Computation}, volume={9}, number={8}, pages={1735--1780}, year={1997}}"""
CHO = """@inproceedings{cho2014learning,
  title={Learning Phrase Representations using {RNN} Encoder-Decoder for Statistical Machine \
Translation},
  author={Cho, Kyunghyun and van Merri{\\"e}nboer, Bart and Gulcehre, Caglar and Bahdanau, Dzmitry \
and
          Bougares, Fethi and Schwenk, Holger and Bengio, Yoshua},
  booktitle={Proceedings of EMNLP}, pages={1724--1734}, year={2014}, note={arXiv:1406.1078}}"""

# Floats kept per example, step and unit (train, eval): the memory check's (rnnbench.cell). Measured
# as the peak resident set on CPU (B=50-200, T=120-400, N=128-512): what forward saves for backward
# and what backward adds, over several steps, the allocator's keep included, then an evaluation
# batch without autograd: rnn 7.7-10 / 3.0, lstm 17.6 / 2.0, gru 14.4 / 5.0; rounded up.
RNN_MEMORY, LSTM_MEMORY, GRU_MEMORY = (10, 4), (20, 3), (18, 6)


class TorchRecurrent(nn.Module):
    """`(B, T, input_size) -> (B, T, hidden_size)` through one native torch recurrent layer."""

    def __init__(self, layer: nn.RNNBase):
        super().__init__()
        self.layer = layer
        self.output_size = layer.hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.layer(x)  # (B, T, H); the initial state is zero
        return y


@register_cell("rnn", citation=ELMAN, memory=RNN_MEMORY)
def rnn(input_size: int, hidden_size: int) -> TorchRecurrent:
    """Vanilla tanh RNN (nn.RNN)."""
    return TorchRecurrent(nn.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True))


@register_cell("lstm", citation=HOCHREITER, memory=LSTM_MEMORY)
def lstm(input_size: int, hidden_size: int, forget_bias: float = 1.0) -> TorchRecurrent:
    """LSTM (nn.LSTM) with the forget-gate bias initialised to `forget_bias`.

    torch sums two bias vectors (input-hidden and hidden-hidden); the forget gate's slice of
    the first is set to `forget_bias` and of the second to 0, so the gate starts with total
    bias `forget_bias` (Jozefowicz et al. 2015 recommend 1). The other biases keep torch's
    default initialisation.
    """
    layer = nn.LSTM(input_size, hidden_size, batch_first=True)
    with torch.no_grad():  # gate order in torch: input, forget, cell, output
        layer.bias_ih_l0[hidden_size : 2 * hidden_size].fill_(forget_bias)
        layer.bias_hh_l0[hidden_size : 2 * hidden_size].zero_()
    return TorchRecurrent(layer)


@register_cell("gru", citation=CHO, memory=GRU_MEMORY)
def gru(input_size: int, hidden_size: int) -> TorchRecurrent:
    """GRU (nn.GRU)."""
    return TorchRecurrent(nn.GRU(input_size, hidden_size, batch_first=True))
