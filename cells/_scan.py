"""Scans for the diagonal linear recurrence h_t = a_t * h_{t-1} + b_t, h_{-1} = 0, over time.

The cells whose recurrence is element-wise and whose coefficients do not depend on the state
(`lru`, `mingru`, `minlstm`) compute all T states at once with one of these functions instead of a
step loop. Tensors are (B, T, ...) with time on dim 1; a is either shaped as b (time-varying) or has
fewer dimensions and broadcasts over b's trailing ones (time-invariant: LRU's diagonal, (N,)).
Real and complex values, of any sign, are allowed; a_0 never matters (it multiplies h_{-1} = 0).

- `linear_scan(a, b)`, the parallel scan the cells use. (a_t, b_t) pairs compose associatively,
  (a, b) then (a', b') = (a' a, a' b + b'), and the scan is the odd-even (cyclic) reduction form of
  the doubling scan: combine neighbouring steps (2k, 2k+1) into one step of a sequence half as long,
  scan that recursively, then fill in the even steps from their odd predecessors. Work: about 3T
  element-wise multiply-adds, in 2 log2(T) rounds of a few tensor operations each (10 levels at
  T = 784); extra memory: the halved sequences, about one more copy of b, freed on return. Its
  autograd Function keeps only a and the output: the gradient is the same recurrence run backwards
  in time with conj(a), g_b_t = g_h_t + conj(a_{t+1}) g_b_{t+1}, computed by the same scan (so that
  gradients of gradients work too), and g_a_t = g_b_t conj(h_{t-1}). Numerically it forms only
  products and sums of the inputs, never a quotient or a logarithm: a product of many |a_t| < 1
  underflows to 0 exactly when its term is negligible, and the result equals the loop's up to
  rounding (an error growing with log T rounds, not T steps).
- `loop_scan(a, b)`, the plain step loop with plain autograd: the reference, and `impl=loop`.
- `log_scan(log_a, log_b)`, the log-space scan of Heinsen (2023, arXiv 2311.06281) that Feng et al.
  (2024) train minGRU/minLSTM with: log h_t = a*_t + logcumsumexp_t(log b - a*), a* = cumsum(log a).
  It needs a, b > 0 (their logarithms) and costs a cumsum, a logcumsumexp (an exp and a log per
  element) and an exp. Its error grows with the sequence: a*_T = sum of log a_t is large when the
  gates forget (|a*_T| ~ 7 T for a ~ 1e-3), and log h = a* + lcse(...) cancels two numbers of that
  size, so h has a relative error of about eps |a*_T|. Measured at T = 784 with a ~ 1e-3: 5e-4 in
  float32, where `linear_scan` (and the float32 loop) stay at 1.5e-7; with a ~ 1e-9 in float64,
  2e-12 against 2e-16.

Why this scan. The doubling scan of Hillis and Steele is the same algebra with log2(T) rounds over
all T steps: T log2(T) work, and plain autograd keeps every round's tensors (O(T log T) memory).
Measured on one CPU thread (B=50, T=784, H=64, float32, forward and backward of the recurrence
alone): the step loop 36 ms, Hillis-Steele with plain autograd 350 ms, the log-space scan 365 ms,
this odd-even reduction with plain autograd 74 ms and with its own backward (below) 21 ms; complex
with a time-invariant a (LRU): loop 57 ms, this scan 38 ms. A CPU thread runs the loop's 784 small
steps from cache, so the scan's gain there is modest; on a GPU the loop's sequential kernel launches
(a few per step, forward and backward) dominate, and O(log T) rounds are what make these cells fast.
"""

from __future__ import annotations

import torch


def _time_varying(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a holds one coefficient per step (shape of b) or one for all steps (fewer dims);
    a ValueError for shapes that are neither."""
    if b.dim() < 2:
        raise ValueError(
            f"scan: b must be (B, T, ...) with time on dim 1; got shape {tuple(b.shape)}"
        )
    if a.dim() == b.dim():
        if a.shape != b.shape:
            raise ValueError(
                f"scan: a time-varying a must have b's shape {tuple(b.shape)}; got {tuple(a.shape)}"
            )
        return True
    try:
        fits = (
            a.dim() <= b.dim() - 2 and torch.broadcast_shapes(a.shape, b.shape[2:]) == b.shape[2:]
        )
    except RuntimeError:  # (shapes that do not broadcast at all)
        fits = False
    if not fits:
        raise ValueError(
            f"scan: a time-invariant a must broadcast over b's trailing dims {tuple(b.shape[2:])}; "
            f"got {tuple(a.shape)}"
        )
    return False


def _forward(links: torch.Tensor, b: torch.Tensor, out: torch.Tensor, varying: bool) -> None:
    """out_0 = b_0, out_t = links_{t-1} out_{t-1} + b_t, written into `out` (a view is fine).

    links: (B, T-1, ...) when `varying` (links_{t-1} = a_t joins steps t-1 and t), else the
    time-invariant a. The odd-even reduction: out at the odd steps 1, 3, ... obeys a recurrence
    of half the length, out_{2k+1} = (l_{2k} l_{2k-1}) out_{2k-1} + (l_{2k} b_{2k} + b_{2k+1}),
    scanned recursively into out[:, 1::2]; then out_{2k} = l_{2k-1} out_{2k-1} + b_{2k}.
    """
    steps = b.shape[1]
    if steps == 1:
        out.copy_(b)
        return
    n = steps // 2
    if varying:
        half_links = links[:, 2 : 2 * n - 1 : 2] * links[:, 1 : 2 * n - 2 : 2]  # (B, n-1, ...)
        half_b = torch.addcmul(
            b[:, 1 : 2 * n : 2], links[:, 0 : 2 * n - 1 : 2], b[:, 0 : 2 * n : 2]
        )  # (B, n, ...)
    else:
        half_links = links * links
        half_b = torch.addcmul(b[:, 1 : 2 * n : 2], links, b[:, 0 : 2 * n : 2])
    _forward(half_links, half_b, out[:, 1::2], varying)
    out[:, 0].copy_(b[:, 0])
    if steps > 2:
        torch.addcmul(
            b[:, 2::2], links[:, 1::2] if varying else links, out[:, 1:-1:2], out=out[:, 2::2]
        )


def _reverse(links: torch.Tensor, g: torch.Tensor, out: torch.Tensor, varying: bool) -> None:
    """out_{T-1} = g_{T-1}, out_t = links_t out_{t+1} + g_t: `_forward` mirrored in time.

    The pairs are (p + 2j, p + 2j + 1) counted from the end (p = T mod 2); the first step of each
    pair obeys out_{p+2j} = (l_{p+2j} l_{p+2j+1}) out_{p+2j+2} + (l_{p+2j} g_{p+2j+1} + g_{p+2j}).
    """
    steps = g.shape[1]
    if steps == 1:
        out.copy_(g)
        return
    n = steps // 2
    p = steps - 2 * n
    if varying:
        half_links = links[:, p : steps - 3 : 2] * links[:, p + 1 : steps - 2 : 2]  # (B, n-1, ...)
        half_g = torch.addcmul(g[:, p::2], links[:, p::2], g[:, p + 1 :: 2])  # (B, n, ...)
    else:
        half_links = links * links
        half_g = torch.addcmul(g[:, p::2], links, g[:, p + 1 :: 2])
    _reverse(half_links, half_g, out[:, p::2], varying)
    out[:, steps - 1].copy_(g[:, steps - 1])
    if steps > 2:
        torch.addcmul(
            g[:, p + 1 : steps - 1 : 2],
            links[:, p + 1 :: 2] if varying else links,
            out[:, p + 2 :: 2],
            out=out[:, p + 1 : steps - 1 : 2],
        )
    if p:
        torch.addcmul(g[:, 0], links[:, 0] if varying else links, out[:, 1], out=out[:, 0])


class _LinearScan(torch.autograd.Function):
    """h = scan(a, b): forward in time, h_t = a_t h_{t-1} + b_t; or, with `reverse`, backward in
    time, h_t = a_{t+1} h_{t+1} + b_t (h_T = 0). Each is the other's adjoint, so the backward pass
    of one is the other applied to conj(a), and double backward works."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, reverse: bool) -> torch.Tensor:
        varying = a.dim() == b.dim()
        out = torch.empty(b.shape, dtype=b.dtype, device=b.device)
        if b.shape[1] > 0:
            (_reverse if reverse else _forward)(a[:, 1:] if varying else a, b, out, varying)
        ctx.reverse = reverse
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g_out: torch.Tensor):
        a, h = ctx.saved_tensors
        g_b = _LinearScan.apply(a.conj(), g_out, not ctx.reverse)
        g_a = None
        if ctx.needs_input_grad[0]:
            # a_t (t >= 1) joins h_{t-1} and h_t: forward, h_t = a_t h_{t-1} + ...;
            # reverse, h_{t-1} = a_t h_t + ... . d(a x)/da against an upstream g is g conj(x)
            # (torch's convention).
            g, x = (g_b[:, :-1], h[:, 1:]) if ctx.reverse else (g_b[:, 1:], h[:, :-1])
            if a.dim() < h.dim():  # time-invariant: summed over batch and time
                g_a = (g * x.conj()).sum((0, 1)).sum_to_size(a.shape)
            elif torch.is_grad_enabled():  # (create_graph: differentiable operations only)
                g_a = torch.cat([torch.zeros_like(g[:, :1]), g * x.conj()], 1)
            else:  # the same, written in place, without the copy a cat makes
                g_a = torch.empty_like(g_b)
                g_a[:, 0] = 0
                torch.mul(g, x.conj(), out=g_a[:, 1:])
        return g_a, g_b, None


def linear_scan(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """All states of h_t = a_t h_{t-1} + b_t from h_{-1} = 0, by the parallel odd-even scan.

    b: (B, T, ...); a: b's shape, or a time-invariant coefficient broadcasting over b's trailing
    dims (LRU: (N,) against (B, T, N)). Real or complex; the result has the promoted dtype. With
    `reverse`, the recurrence runs backwards in time: h_t = a_{t+1} h_{t+1} + b_t, h_T = 0.

    >>> linear_scan(torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1)).flatten().tolist()
    [1.0, 1.5, 1.75]
    """
    _time_varying(a, b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    return _LinearScan.apply(a.to(dtype), b.to(dtype), reverse)


def loop_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same states as `linear_scan`, one step at a time with plain tensor operations.

    >>> loop_scan(torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1)).flatten().tolist()
    [1.0, 1.5, 1.75]
    """
    varying = _time_varying(a, b)
    steps = b.unbind(
        1
    )  # (unbind, not b[:, t]: its backward is one stack, not T zero-filled copies)
    coefficients = a.unbind(1) if varying else [a] * len(steps)
    h = torch.zeros_like(b[:, 0], dtype=torch.promote_types(a.dtype, b.dtype))
    states = []
    for a_t, b_t in zip(coefficients, steps, strict=True):
        h = a_t * h + b_t
        states.append(h)
    if not states:
        return b.to(h.dtype).clone()
    return torch.stack(states, 1)


def log_scan(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """The states of h_t = a_t h_{t-1} + b_t (h_{-1} = 0) for positive a, b given their logarithms:
    Heinsen's log-space scan, exp(a*_t + logcumsumexp_t(log b - a*)) with a* = cumsum(log a).

    log_a: log_b's shape, or time-invariant (fewer dims). Real and finite (a, b > 0).

    >>> a, b = torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1)
    >>> torch.allclose(log_scan(a.log(), b.log()), linear_scan(a, b))
    True
    """
    if log_a.is_complex() or log_b.is_complex():
        raise ValueError(
            "log_scan: takes the real logarithms of positive a and b; "
            "use linear_scan for complex values"
        )
    if _time_varying(log_a, log_b):
        a_star = torch.cumsum(log_a, 1)  # (B, T, ...): log(a_0 a_1 ... a_t)
    else:
        t = torch.arange(1, log_b.shape[1] + 1, dtype=log_b.dtype, device=log_b.device)
        a_star = log_a * t.view(-1, *[1] * (log_b.dim() - 2))  # (T, ...): (t + 1) log a
    return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, 1))
