"""The compiled whole-epoch kernel: the delta rule of ``capas.backprop`` for a plain MLP, in numba.

One call trains one epoch: every step's forward pass, output error, backward pass, optimizer
update and max-norm, over the samples of ``order`` taken ``batch`` at a time, without
returning to Python. Small networks are bound by per-step dispatch, not arithmetic (a
784-30-10 step at batch 10 is ~10 us of maths); here a step costs just its arithmetic.

One compiled function serves every network: the activation, loss and optimizer are integer
codes (``ACTIVATIONS``, ``LOSSES``, ``OPTIMIZERS``), the layers live in one flat parameter
vector ``theta`` with offsets, so the only specialisations are the two dtypes (float32,
float64), compiled once and cached on disk (``cache=True``).

Layout (``L`` layers, widths ``M_0..M_L``): layer ``l``'s weight ``W^l (M_l, M_(l-1))`` is
stored row-major as torch stores it, at ``theta[woff[l]:]``, then its bias ``b^l (M_l,)`` at
``theta[boff[l]:]``. Every inner loop runs along a row of ``W`` (``M_(l-1)`` long, 784 for
MNIST): the forward pass is one dot product per unit and sample, the error sent back and the
gradient are row updates; the loops over the batch sit inside the loop over units, so each
row of ``W`` is read from cache once per step for all the batch (cache blocking), and LLVM
vectorises the rows (``fastmath`` reassociation for the dot products). A unit whose delta
is 0 (a dead ReLU) skips its row. Equations (course file 001, one row per sample,
``delta = -dq/dphi``)::

    phi^l = s^(l-1) W^l^T + b^l,  s^l = g(phi^l)
    delta^L = g'(phi^L) e^L  (e^L = -dq/ds^L),  delta^l = g'(phi^l) (delta^(l+1) W^(l+1))
    dE/dW^l = -(1/B) delta^l^T s^(l-1),  dE/db^l = -(1/B) sum_n delta^l_n

The optimizers are ``torch.optim``'s single-tensor algorithms (SGD with momentum, dampening
and Nesterov; Adam; RMSprop with momentum and centering), including their state, so that an
epoch here leaves the same weights and optimizer state as ``BackpropStepper`` (tested to 1e-5
in float32, 1e-10 in float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: activation codes (hidden and output layers; softmax only at the output)
ACTIVATIONS = {"linear": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softmax": 5}
#: output rules of ``capas.backprop.outputs``
LOSSES = {"mse": 0, "mse_half_sum": 1, "cross_entropy": 2}
#: update rules
OPTIMIZERS = {"sgd": 0, "adam": 1, "rmsprop": 2}

# indices into the hyper-parameter vector ``hp`` (float64)
LR, MOMENTUM, DAMPENING, BETA1, BETA2, EPS, ALPHA, WEIGHT_DECAY, L2, L1, MAX_NORM, SLOPE = range(12)
# indices into the integer option vector ``ip``
OPT, LOSS, NESTEROV, CENTERED, REG_BIAS, HAS_BUFFER, MEASURE_EVERY = range(7)
HP_SIZE, IP_SIZE = 12, 7


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def train_epoch(
    x,  # (N, M_0) inputs, dtype float32 or float64
    t,  # (N, M_L) coded targets, same dtype
    labels,  # (N,) int64 class labels, or (0,) for regression
    order,  # (N,) int64 the epoch's sample order
    batch,  # int samples per step
    widths,  # (L+1,) int64
    acts,  # (L,) int64 activation codes
    hasb,  # (L,) int64 1 when the layer has a bias
    woff,  # (L,) int64 offsets of W^l in theta
    boff,  # (L,) int64 offsets of b^l in theta
    theta,  # (P,) parameters (updated in place)
    s1,  # (P,) optimizer state: momentum buffer | exp_avg | square_avg
    s2,  # (P,) optimizer state: - | exp_avg_sq | momentum buffer
    s3,  # (P,) optimizer state: - | - | grad_avg (centered RMSprop)
    step_count,  # (1,) float64 optimizer steps so far (Adam, RMSprop), updated
    hp,  # (HP_SIZE,) float64 hyper-parameters
    ip,  # (IP_SIZE,) int64 options; ip[HAS_BUFFER] is updated
    losses,  # (S,) float64 out: each step's mean data loss
    norm_sums,  # (L,) float64 in/out: sums of ||dE/dW^l|| over measured steps
):
    """Train one epoch in place; returns (samples predicted right, steps measured)."""
    dt = theta.dtype.type
    zero, one = dt(0.0), dt(1.0)
    n = order.shape[0]
    n_layers = acts.shape[0]
    last = n_layers - 1
    k = widths[n_layers]
    maxw = 0
    for layer in range(n_layers + 1):
        maxw = max(maxw, widths[layer])
    opt, loss_code = ip[OPT], ip[LOSS]
    lr, momentum, weight_decay = dt(hp[LR]), dt(hp[MOMENTUM]), dt(hp[WEIGHT_DECAY])
    max_norm, slope = hp[MAX_NORM], dt(hp[SLOPE])
    measure_every = ip[MEASURE_EVERY]
    # plain SGD: the update is fused into the backward pass (no gradient buffer), as the torch engine
    fusable = opt == 0 and momentum == zero and weight_decay == zero and hp[L2] == 0.0 and hp[L1] == 0.0
    ss = np.empty((n_layers + 1, batch, maxw), dtype=theta.dtype)  # s^l, s^0 = the batch's inputs
    zs = np.empty((n_layers, batch, maxw), dtype=theta.dtype)  # phi^l
    ds = np.empty((n_layers, batch, maxw), dtype=theta.dtype)  # delta^l
    es = np.empty((n_layers, batch, maxw), dtype=theta.dtype)  # e^l
    grad = np.zeros(theta.shape[0], dtype=theta.dtype)
    rows = np.empty(batch, dtype=np.int64)
    correct = 0
    measured = 0
    for step in range(losses.shape[0]):
        start = step * batch
        nb = min(batch, n - start)
        for r in range(nb):
            rows[r] = order[start + r]
            sample = x[rows[r]]
            for i in range(widths[0]):
                ss[0, r, i] = sample[i]
        measuring = measure_every > 0 and step % measure_every == 0
        fused = fusable and not measuring
        for layer in range(n_layers):
            _forward(
                theta,
                woff[layer],
                boff[layer],
                hasb[layer],
                widths[layer],
                widths[layer + 1],
                acts[layer],
                slope,
                ss[layer],
                zs[layer],
                ss[layer + 1],
                nb,
            )
        losses[step], hits = _output_error(
            t, labels, rows, nb, k, loss_code, zs[last], ss[n_layers], es[last], ds[last]
        )
        correct += hits
        inv = one / dt(nb)
        for layer in range(last, -1, -1):
            nin, nout = widths[layer], widths[layer + 1]
            if not (layer == last and loss_code == 2):  # else the loss wrote delta^L
                _local_delta(acts[layer], slope, zs[layer], ss[layer + 1], es[layer], ds[layer], nb, nout)
            if layer > 0:  # e^(l-1) = delta^l W^l, before W^l changes
                _error_below(theta, woff[layer], nin, nout, ds[layer], es[layer - 1], nb)
            if fused:  # W -= rho dE/dW: W + (rho/B) delta^T s, sample by sample
                _gradient(theta, woff[layer], boff[layer], hasb[layer], nin, nout, ss[layer], ds[layer], nb, lr * inv)
            else:  # dE/dW = -(1/B) delta^T s
                _gradient(grad, woff[layer], boff[layer], hasb[layer], nin, nout, ss[layer], ds[layer], nb, -inv, True)
                if measuring:
                    total = 0.0
                    g = grad[woff[layer] : woff[layer] + nin * nout]
                    for j in range(nin * nout):
                        total += np.float64(g[j]) * np.float64(g[j])
                    norm_sums[layer] += np.sqrt(total)
        if measuring:
            measured += 1
        if not fused:
            _update(theta, grad, s1, s2, s3, step_count, hp, ip, woff, boff, widths, hasb)
        if max_norm > 0.0:
            for layer in range(n_layers):
                _renorm(theta, woff[layer], widths[layer], widths[layer + 1], max_norm)
    return correct, measured


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _forward(theta, w0, b0, has_bias, nin, nout, code, slope, inp, z, s, nb):
    """phi[r, o] = s_in[r, :] . W[o, :] + b[o], s = g(phi), for ``nb`` rows: one long dot
    product per unit and sample (vectorised), each row of W read once per step."""
    dt = theta.dtype.type
    zero, one = dt(0.0), dt(1.0)
    for o in range(nout):
        w = theta[w0 + o * nin : w0 + (o + 1) * nin]  # a view: computed indices would not vectorise
        bias = theta[b0 + o] if has_bias else zero
        r = 0
        while r + 4 <= nb:  # four samples share each load of w (register blocking)
            a0, a1, a2, a3 = inp[r], inp[r + 1], inp[r + 2], inp[r + 3]
            c0, c1, c2, c3 = zero, zero, zero, zero
            for i in range(nin):
                c0 += a0[i] * w[i]
                c1 += a1[i] * w[i]
                c2 += a2[i] * w[i]
                c3 += a3[i] * w[i]
            z[r, o], z[r + 1, o], z[r + 2, o], z[r + 3, o] = c0 + bias, c1 + bias, c2 + bias, c3 + bias
            r += 4
        while r < nb:
            a0 = inp[r]
            c0 = zero
            for i in range(nin):
                c0 += a0[i] * w[i]
            z[r, o] = c0 + bias
            r += 1
    for r in range(nb):
        if code == 0:
            for o in range(nout):
                s[r, o] = z[r, o]
        elif code == 1:
            for o in range(nout):
                s[r, o] = one / (one + np.exp(-z[r, o]))
        elif code == 2:
            for o in range(nout):
                s[r, o] = np.tanh(z[r, o])
        elif code == 3:
            for o in range(nout):
                s[r, o] = z[r, o] if z[r, o] > zero else zero
        elif code == 4:
            for o in range(nout):
                s[r, o] = z[r, o] if z[r, o] > zero else slope * z[r, o]
        else:  # softmax
            top = z[r, 0]
            for o in range(1, nout):
                top = max(top, z[r, o])
            total = zero
            for o in range(nout):
                s[r, o] = np.exp(z[r, o] - top)
                total += s[r, o]
            for o in range(nout):
                s[r, o] = s[r, o] / total


@njit(cache=True, nogil=True, error_model="numpy")
def _output_error(t, labels, rows, nb, k, loss_code, z, s, e, d):
    """e^L (squared errors) or delta^L (softmax + cross-entropy) into ``e``/``d``; returns
    the batch's mean loss (float64) and how many rows' argmax was their label."""
    dt = s.dtype.type
    scale = dt(2.0) / dt(k) if loss_code == 0 else dt(1.0)
    total = 0.0
    hits = 0
    for r in range(nb):
        row = rows[r]
        if loss_code == 2:  # q = -sum t log softmax(phi), delta^L = t - s
            top = z[r, 0]
            for o in range(1, k):
                top = max(top, z[r, o])
            norm = 0.0
            for o in range(k):
                norm += np.exp(np.float64(z[r, o] - top))
            log_norm = np.log(norm)
            for o in range(k):
                d[r, o] = t[row, o] - s[r, o]
                total -= t[row, o] * (np.float64(z[r, o] - top) - log_norm)
        else:  # e^L = t - s, times 2/K for the mean
            for o in range(k):
                diff = t[row, o] - s[r, o]
                total += np.float64(diff) * np.float64(diff)
                e[r, o] = diff * scale
        if labels.shape[0] > 0:
            out = z if loss_code == 2 else s  # what the torch engine's last_output is
            best = 0
            for o in range(1, k):
                if out[r, o] > out[r, best]:
                    best = o
            hits += best == labels[row]
    if loss_code == 0:
        return total / (nb * k), hits
    if loss_code == 1:
        return 0.5 * total / nb, hits
    return total / nb, hits


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _local_delta(code, slope, z, s, e, d, nb, nout):
    """delta = g'(phi) e (softmax under a squared error: J e, J = diag(s) - s s^T)."""
    dt = s.dtype.type
    zero, one = dt(0.0), dt(1.0)
    for r in range(nb):
        if code == 0:
            for o in range(nout):
                d[r, o] = e[r, o]
        elif code == 1:
            for o in range(nout):
                d[r, o] = e[r, o] * (one - s[r, o]) * s[r, o]
        elif code == 2:
            for o in range(nout):
                d[r, o] = e[r, o] * (one - s[r, o] * s[r, o])
        elif code == 3:
            for o in range(nout):
                d[r, o] = e[r, o] if z[r, o] > zero else zero
        elif code == 4:
            for o in range(nout):
                d[r, o] = e[r, o] if z[r, o] > zero else e[r, o] * slope
        else:
            dot = zero
            for o in range(nout):
                dot += s[r, o] * e[r, o]
            for o in range(nout):
                d[r, o] = s[r, o] * (e[r, o] - dot)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _error_below(theta, w0, nin, nout, d, below, nb):
    """e^(l-1)[r, :] = sum_o delta^l[r, o] W[o, :] (a unit whose delta is 0 is skipped)."""
    zero = theta.dtype.type(0.0)
    for r in range(nb):
        for i in range(nin):
            below[r, i] = zero
    for o in range(nout):
        w = theta[w0 + o * nin : w0 + (o + 1) * nin]
        for r in range(nb):
            v = d[r, o]
            if v != zero:
                for i in range(nin):
                    below[r, i] += v * w[i]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _gradient(out, w0, b0, has_bias, nin, nout, inp, d, nb, scale, overwrite=False):
    """out[W] (+)= scale sum_r delta[r, o] s_in[r, :], out[b] (+)= scale sum_r delta[r, o]:
    the gradient (``overwrite``: the sums, then scaled once as addmm's alpha) or the fused
    SGD step on theta itself (``scale`` = rho/B, sample by sample)."""
    dt = out.dtype.type
    zero = dt(0.0)
    factor = dt(1.0) if overwrite else scale
    for o in range(nout):
        g = out[w0 + o * nin : w0 + (o + 1) * nin]
        if overwrite:
            for i in range(nin):
                g[i] = zero
        r = 0
        while r + 4 <= nb:  # one load and store of g for four samples
            v0, v1, v2, v3 = d[r, o] * factor, d[r + 1, o] * factor, d[r + 2, o] * factor, d[r + 3, o] * factor
            if v0 != zero or v1 != zero or v2 != zero or v3 != zero:  # else a dead ReLU's row
                a0, a1, a2, a3 = inp[r], inp[r + 1], inp[r + 2], inp[r + 3]
                for i in range(nin):
                    g[i] += v0 * a0[i] + v1 * a1[i] + v2 * a2[i] + v3 * a3[i]
            r += 4
        while r < nb:
            v = d[r, o] * factor
            if v != zero:
                a0 = inp[r]
                for i in range(nin):
                    g[i] += v * a0[i]
            r += 1
        if overwrite:
            for i in range(nin):
                g[i] = g[i] * scale
        if has_bias:
            total = zero
            for r in range(nb):
                total += d[r, o]
            out[b0 + o] = total * scale if overwrite else out[b0 + o] + factor * total


@njit(cache=True, nogil=True, error_model="numpy")
def _renorm(theta, w0, nin, nout, max_norm):
    """torch.renorm(W, 2, 0, max_norm): each unit's incoming weights (a row of W) to norm
    <= max_norm, scaled by max_norm / (norm + 1e-7)."""
    dt = theta.dtype.type
    for o in range(nout):
        w = theta[w0 + o * nin : w0 + (o + 1) * nin]
        total = dt(0.0)
        for i in range(nin):
            total += w[i] * w[i]
        norm = np.sqrt(np.float64(total))
        if norm > max_norm:
            factor = dt(max_norm / (norm + 1e-7))
            for i in range(nin):
                w[i] *= factor


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _update(theta, grad, s1, s2, s3, step_count, hp, ip, woff, boff, widths, hasb):
    """Penalty gradients, then one step of ``torch.optim``'s SGD / Adam / RMSprop over theta."""
    dt = theta.dtype.type
    zero, one = dt(0.0), dt(1.0)
    lr, momentum, weight_decay, eps = dt(hp[LR]), dt(hp[MOMENTUM]), dt(hp[WEIGHT_DECAY]), dt(hp[EPS])
    l2, l1 = dt(hp[L2]), dt(hp[L1])
    if l2 != zero or l1 != zero:  # grad += l2 theta + l1 sign(theta): weights (and biases if asked)
        for layer in range(woff.shape[0]):
            _penalise(theta, grad, woff[layer], widths[layer] * widths[layer + 1], l2, l1)
            if ip[REG_BIAS] and hasb[layer]:
                _penalise(theta, grad, boff[layer], widths[layer + 1], l2, l1)
    opt = ip[OPT]
    if opt == 0:  # SGD: v = nu v + (1 - dampening) g (v(1) = g), Nesterov d = g + nu v
        first, nesterov, damped = ip[HAS_BUFFER] == 0, ip[NESTEROV] != 0, one - dt(hp[DAMPENING])
        for j in range(theta.shape[0]):
            g = grad[j]
            if weight_decay != zero:
                g += weight_decay * theta[j]
            if momentum != zero:
                s1[j] = g if first else momentum * s1[j] + damped * g
                g = g + momentum * s1[j] if nesterov else s1[j]
            theta[j] -= lr * g
        if momentum != zero:
            ip[HAS_BUFFER] = 1
    elif opt == 1:  # Adam (step size and bias corrections in float64, as torch's Python scalars)
        step_count[0] += 1.0
        step_size = dt(hp[LR] / (1.0 - hp[BETA1] ** step_count[0]))
        bias2_sqrt = dt(np.sqrt(1.0 - hp[BETA2] ** step_count[0]))
        beta2 = dt(hp[BETA2])
        weight, rest = dt(1.0 - hp[BETA1]), dt(1.0 - hp[BETA2])
        for j in range(theta.shape[0]):
            g = grad[j]
            if weight_decay != zero:
                g += weight_decay * theta[j]
            s1[j] += weight * (g - s1[j])  # lerp(m, g, 1 - beta1)
            s2[j] = beta2 * s2[j] + rest * g * g
            theta[j] -= step_size * (s1[j] / (np.sqrt(s2[j]) / bias2_sqrt + eps))
    else:  # RMSprop
        step_count[0] += 1.0
        alpha, rest, centered = dt(hp[ALPHA]), dt(1.0 - hp[ALPHA]), ip[CENTERED] != 0
        for j in range(theta.shape[0]):
            g = grad[j]
            if weight_decay != zero:
                g += weight_decay * theta[j]
            s1[j] = alpha * s1[j] + rest * g * g
            if centered:
                s3[j] += rest * (g - s3[j])
                avg = np.sqrt(s1[j] - s3[j] * s3[j]) + eps
            else:
                avg = np.sqrt(s1[j]) + eps
            if momentum > zero:
                s2[j] = momentum * s2[j] + g / avg
                theta[j] -= lr * s2[j]
            else:
                theta[j] -= lr * (g / avg)


@njit(cache=True, nogil=True, error_model="numpy")
def _penalise(theta, grad, start, count, l2, l1):
    """grad += l2 theta + l1 sign(theta) on ``theta[start:start + count]``."""
    zero = theta.dtype.type(0.0)
    w, g = theta[start : start + count], grad[start : start + count]
    for j in range(count):
        if l2 != zero:
            g[j] += l2 * w[j]
        if l1 != zero:
            g[j] += l1 * np.sign(w[j])
