"""The Triton kernels of impl="triton" (see _eurnn_triton.py, which imports this module only when
they are used: Triton is an optional dependency, and TRITON_INTERPRET is read when they are
defined).
"""

import triton
import triton.language as tl


@triton.jit
def modrelu_scale(zr, zi, beta, shift, NOTEBOOK: tl.constexpr):
    if NOTEBOOK:
        inv_r = 1.0 / (tl.sqrt(zr * zr + zi * zi) + shift)
    else:
        inv_r = 1.0 / tl.sqrt(zr * zr + zi * zi + shift)
    return tl.maximum(1.0 + beta * inv_r, 0.0), inv_r


@triton.jit
def layer_mixers(table, cos_t, sin_t, cos_p, sin_p, layer, L, BLOCK_H: tl.constexpr):
    """Layer `layer`'s mixer slots from the (3, L, BLOCK_H) table (_eurnn_triton.tables): units a
    and b (1, BLOCK_H), mixer index m (BLOCK_H,; 0 in empty slots), ok (BLOCK_H,: not empty), and
    cos theta, sin theta, cos phi, sin phi (1, BLOCK_H)."""
    k = tl.arange(0, BLOCK_H)
    pa = tl.load(table + layer * BLOCK_H + k)[None, :]
    pb = tl.load(table + (L + layer) * BLOCK_H + k)[None, :]
    mixer = tl.load(table + (2 * L + layer) * BLOCK_H + k)
    ok = mixer >= 0
    m = tl.where(ok, mixer, 0)
    c = tl.load(cos_t + m)[None, :]
    s = tl.load(sin_t + m)[None, :]
    cp = tl.load(cos_p + m)[None, :]
    sp = tl.load(sin_p + m)[None, :]
    return pa, pb, m, ok, c, s, cp, sp


@triton.jit
def mix_forward(sre, sim, table, cos_t, sin_t, cos_p, sin_p, L, BLOCK_H: tl.constexpr):
    """The L mixer layers applied in place to the program's scratch state (sre, sim: pointers
    to its rows, (BLOCK_B, 1))."""
    for layer in range(L):
        tl.debug_barrier()
        pa, pb, m, ok, c, s, cp, sp = layer_mixers(
            table, cos_t, sin_t, cos_p, sin_p, layer, L, BLOCK_H
        )
        ok = ok[None, :]
        ar = tl.load(sre + pa)
        ai = tl.load(sim + pa)
        br = tl.load(sre + pb)
        bi = tl.load(sim + pb)
        ur = c * ar - s * br
        ui = c * ai - s * bi
        tl.debug_barrier()
        tl.store(sre + pa, cp * ur - sp * ui, mask=ok)
        tl.store(sim + pa, sp * ur + cp * ui, mask=ok)
        tl.store(sre + pb, s * ar + c * br, mask=ok)
        tl.store(sim + pb, s * ai + c * bi, mask=ok)
    tl.debug_barrier()


@triton.jit
def forward_kernel(
    xp,
    h0,
    hs,
    scratch,
    cos_t,
    sin_t,
    cos_p,
    sin_p,
    cos_o,
    sin_o,
    beta,
    table,
    B,
    T,
    N,
    L,
    shift_ptr,
    NOTEBOOK: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_OMEGA: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # (offsets past 2^31: eurnn-full's accumulator rows)
    shift = tl.load(shift_ptr)  # the modReLU's eps term, in the run's dtype
    local = tl.arange(0, BLOCK_B)
    rows = pid * BLOCK_B + local
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    ok = (rows < B)[:, None] & col_ok[None, :]
    sre = scratch + pid * 2 * BLOCK_B * BLOCK_N + local[:, None] * BLOCK_N
    sim = sre + BLOCK_B * BLOCK_N
    rows64 = rows.to(tl.int64)[:, None]
    if HAS_H0:
        re = tl.load(h0 + rows64 * 2 * N + cols[None, :], mask=ok, other=0.0)
        im = tl.load(h0 + rows64 * 2 * N + N + cols[None, :], mask=ok, other=0.0)
    else:
        re = tl.zeros((BLOCK_B, BLOCK_N), dtype=hs.dtype.element_ty)
        im = tl.zeros((BLOCK_B, BLOCK_N), dtype=hs.dtype.element_ty)
    bt = tl.load(beta + cols, mask=col_ok, other=0.0)[None, :]
    if HAS_OMEGA:
        co = tl.load(cos_o + cols, mask=col_ok, other=1.0)[None, :]
        so = tl.load(sin_o + cols, mask=col_ok, other=0.0)[None, :]
    for t in range(T):
        if HAS_OMEGA:
            re, im = co * re - so * im, so * re + co * im
        tl.debug_barrier()
        tl.store(sre + cols[None, :], re)
        tl.store(sim + cols[None, :], im)
        mix_forward(sre, sim, table, cos_t, sin_t, cos_p, sin_p, L, BLOCK_H)
        zr = tl.load(sre + cols[None, :]) + tl.load(
            xp + (rows64 * T + t) * N + cols[None, :], mask=ok, other=0.0
        )
        zi = tl.load(sim + cols[None, :])
        s, inv_r = modrelu_scale(zr, zi, bt, shift, NOTEBOOK)
        re = tl.where(ok, zr * s, 0.0)
        im = tl.where(ok, zi * s, 0.0)
        out = hs + (rows64 * T + t) * 2 * N + cols[None, :]
        tl.store(out, re, mask=ok)
        tl.store(out + N, im, mask=ok)


@triton.jit
def backward_kernel(
    xp,
    h0,
    hs,
    g_out,
    g_xp,
    g_h0,
    acc,
    scratch,
    cos_t,
    sin_t,
    cos_p,
    sin_p,
    cos_o,
    sin_o,
    beta,
    table,
    B,
    T,
    N,
    L,
    M,
    shift_ptr,
    NOTEBOOK: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_OMEGA: tl.constexpr,
    REAL_ONLY: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    """acc: (programs, 2M + 2N): the program's sums of dL/dtheta, dL/dphi, dL/domega, dL/dbeta.
    scratch: (programs, 4, BLOCK_B, BLOCK_N): state (re, im) and gradient (re, im)."""
    pid = tl.program_id(0).to(tl.int64)  # (offsets past 2^31: eurnn-full's accumulator rows)
    shift = tl.load(shift_ptr)  # the modReLU's eps term, in the run's dtype
    local = tl.arange(0, BLOCK_B)
    rows = pid * BLOCK_B + local
    rows64 = rows.to(tl.int64)[:, None]
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    ok = (rows < B)[:, None] & col_ok[None, :]
    plane = BLOCK_B * BLOCK_N
    sre = scratch + pid * 4 * plane + local[:, None] * BLOCK_N
    sim = sre + plane
    sgr = sim + plane
    sgi = sgr + plane
    accp = acc + pid * (2 * M + 2 * N)
    width = N if REAL_ONLY else 2 * N
    bt = tl.load(beta + cols, mask=col_ok, other=0.0)[None, :]
    if HAS_OMEGA:
        co = tl.load(cos_o + cols, mask=col_ok, other=1.0)[None, :]
        so = tl.load(sin_o + cols, mask=col_ok, other=0.0)[None, :]
    gr = tl.zeros((BLOCK_B, BLOCK_N), dtype=hs.dtype.element_ty)  # dL/dh_t carried from t + 1
    gi = tl.zeros((BLOCK_B, BLOCK_N), dtype=hs.dtype.element_ty)
    g_beta = tl.zeros((BLOCK_N,), dtype=hs.dtype.element_ty)
    g_omega = tl.zeros((BLOCK_N,), dtype=hs.dtype.element_ty)
    for step in range(T):
        t = T - 1 - step
        go = g_out + (rows64 * T + t) * width + cols[None, :]
        gr += tl.load(go, mask=ok, other=0.0)
        if not REAL_ONLY:
            gi += tl.load(go + N, mask=ok, other=0.0)
        # h_{t-1}: the stored state, or at t = 0 the initial one (h0, or 0)
        prev = hs + (rows64 * T + t - 1) * 2 * N + cols[None, :]
        step = cols[None, :] * 0 + t  # t as a tensor: a mask must be one (Triton's interpreter)
        re = tl.load(prev, mask=ok & (step > 0), other=0.0)
        im = tl.load(prev + N, mask=ok & (step > 0), other=0.0)
        if HAS_H0:
            re += tl.load(h0 + rows64 * 2 * N + cols[None, :], mask=ok & (step == 0), other=0.0)
            im += tl.load(h0 + rows64 * 2 * N + N + cols[None, :], mask=ok & (step == 0), other=0.0)
        if HAS_OMEGA:
            re, im = co * re - so * im, so * re + co * im
        tl.debug_barrier()
        tl.store(sre + cols[None, :], re)
        tl.store(sim + cols[None, :], im)
        mix_forward(sre, sim, table, cos_t, sin_t, cos_p, sin_p, L, BLOCK_H)  # U h_{t-1}
        zr = tl.load(sre + cols[None, :]) + tl.load(
            xp + (rows64 * T + t) * N + cols[None, :], mask=ok, other=0.0
        )
        zi = tl.load(sim + cols[None, :])
        # Back through modReLU h = s z (see csrc/eurnn_fused.cpp, modrelu_backward):
        # dh/dz . g = s g - beta q^2 k (g . z) z,  dh/dbeta . g = q (g . z), q = 1[s > 0] / r.
        s, inv_r = modrelu_scale(zr, zi, bt, shift, NOTEBOOK)
        q = tl.where(s > 0, inv_r, 0.0)
        if NOTEBOOK:
            a = tl.sqrt(zr * zr + zi * zi)
            kk = tl.where(a > 0, 1.0 / tl.where(a > 0, a, 1.0), 0.0)
        else:
            kk = inv_r
        dot = gr * zr + gi * zi
        coef = -bt * q * q * kk * dot
        gr = tl.where(ok, s * gr + coef * zr, 0.0)
        gi = tl.where(ok, s * gi + coef * zi, 0.0)
        g_beta += tl.sum(tl.where(ok, q * dot, 0.0), 0)
        tl.store(g_xp + (rows64 * T + t) * N + cols[None, :], gr, mask=ok)
        tl.store(sgr + cols[None, :], gr)
        tl.store(sgi + cols[None, :], gi)
        for back in range(L):
            layer = L - 1 - back
            tl.debug_barrier()
            pa, pb, m, mok, c, sn, cp, sp = layer_mixers(
                table, cos_t, sin_t, cos_p, sin_p, layer, L, BLOCK_H
            )
            pr = tl.load(sre + pa)  # a', b': the layer's outputs
            pi = tl.load(sim + pa)
            qr = tl.load(sre + pb)
            qi = tl.load(sim + pb)
            gpr = tl.load(sgr + pa)  # dL/da', dL/db'
            gpi = tl.load(sgi + pa)
            gqr = tl.load(sgr + pb)
            gqi = tl.load(sgi + pb)
            # Forward: u = c a - s b, a' = e^{i phi} u, b' = s a + c b.
            g_phi = tl.sum(gpi * pr - gpr * pi, 0)
            ur = cp * pr + sp * pi  # u = e^{-i phi} a'
            ui = cp * pi - sp * pr
            gur = cp * gpr + sp * gpi  # dL/du
            gui = cp * gpi - sp * gpr
            g_theta = tl.sum(
                gqr * ur + gqi * ui - gur * qr - gui * qi, 0
            )  # du/dtheta = -b', db'/dtheta = u
            tl.store(accp + m, tl.load(accp + m, mask=mok, other=0.0) + g_theta, mask=mok)
            tl.store(accp + M + m, tl.load(accp + M + m, mask=mok, other=0.0) + g_phi, mask=mok)
            mok = mok[None, :]
            tl.debug_barrier()
            tl.store(sre + pa, c * ur + sn * qr, mask=mok)
            tl.store(sim + pa, c * ui + sn * qi, mask=mok)
            tl.store(sre + pb, c * qr - sn * ur, mask=mok)
            tl.store(sim + pb, c * qi - sn * ui, mask=mok)
            tl.store(sgr + pa, c * gur + sn * gqr, mask=mok)
            tl.store(sgi + pa, c * gui + sn * gqi, mask=mok)
            tl.store(sgr + pb, c * gqr - sn * gur, mask=mok)
            tl.store(sgi + pb, c * gqi - sn * gui, mask=mok)
        tl.debug_barrier()
        gr = tl.load(sgr + cols[None, :])
        gi = tl.load(sgi + cols[None, :])
        if HAS_OMEGA:  # the diagonal phase acted first: y = e^{i omega} h_{t-1}
            yr = tl.load(sre + cols[None, :])
            yi = tl.load(sim + cols[None, :])
            g_omega += tl.sum(tl.where(ok, gi * yr - gr * yi, 0.0), 0)
            gr, gi = co * gr + so * gi, co * gi - so * gr
        gr = tl.where(ok, gr, 0.0)
        gi = tl.where(ok, gi, 0.0)
    if HAS_H0:
        tl.store(g_h0 + rows64 * 2 * N + cols[None, :], gr, mask=ok)
        tl.store(g_h0 + rows64 * 2 * N + N + cols[None, :], gi, mask=ok)
    tl.store(accp + 2 * M + cols, g_omega, mask=col_ok)
    tl.store(accp + 2 * M + N + cols, g_beta, mask=col_ok)
