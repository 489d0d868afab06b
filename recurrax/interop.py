"""Weight conversion to and from ``torch.nn.RNN/GRU/LSTM`` and Flax ``LSTMCell``,
``OptimizedLSTMCell`` and ``GRUCell``. torch is imported lazily (it is a test/benchmark extra).

Differences that the conversion takes care of:

- PyTorch stores ``weight_ih [G*H, I]`` (we store the transpose) and two biases; recurrax keeps
  one bias ``b = b_ih + b_hh``, except the GRU's ``b_hn``, which sits inside the reset gate.
- Flax splits each gate into its own ``Dense`` (``ii, if, ig, io, hi, ...``) and its LSTM carry
  is ``(c, h)``; recurrax fuses the gates and names its carry ``LSTMState(h, c)``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from recurrax.cells import GRU, LSTM, RNN, Cell, LSTMState, Params


def _torch_kind(module) -> type:
    import torch

    for torch_cls, cls in ((torch.nn.LSTM, LSTM), (torch.nn.GRU, GRU), (torch.nn.RNN, RNN)):
        if isinstance(module, torch_cls):
            return cls
    raise TypeError(f"expected torch.nn.RNN, GRU or LSTM, got {type(module).__name__}")


def cell_from_torch(module) -> Cell:
    """The recurrax cell that computes what one layer of ``module`` computes."""
    cls = _torch_kind(module)
    if cls is LSTM:
        return LSTM(module.hidden_size, forget_bias=0.0, proj_size=module.proj_size)
    if cls is GRU:
        return GRU(module.hidden_size)
    return RNN(module.hidden_size, nonlinearity=module.nonlinearity)


def _suffixes(module) -> list[str]:
    return ["", "_reverse"] if module.bidirectional else [""]


def from_torch(module) -> tuple[Cell, list[Any]]:
    """``(cell, layers)`` for :func:`recurrax.unroll.stack` / ``Model(...)["layers"]``.

    ``layers[k]`` holds layer k's params (``{"fw", "bw"}`` when bidirectional).
    """
    cell = cell_from_torch(module)
    state = {k: np.asarray(v.detach().cpu().numpy()) for k, v in module.state_dict().items()}
    H = module.hidden_size
    layers = []
    for k in range(module.num_layers):
        dirs = []
        for sfx in _suffixes(module):
            get = lambda name: state.get(f"{name}_l{k}{sfx}")  # noqa: E731
            G = get("weight_ih").shape[0]
            b_ih = get("bias_ih") if module.bias else np.zeros(G, np.float32)
            b_hh = get("bias_hh") if module.bias else np.zeros(G, np.float32)
            p = {"W_ih": get("weight_ih").T, "W_hh": get("weight_hh").T}
            if isinstance(cell, GRU):
                p["b"] = b_ih + np.concatenate([b_hh[: 2 * H], np.zeros(H, np.float32)])
                p["b_hn"] = b_hh[2 * H :]
            else:
                p["b"] = b_ih + b_hh
            if getattr(module, "proj_size", 0):
                p["W_hr"] = get("weight_hr").T
            dirs.append({n: jnp.asarray(v) for n, v in p.items()})
        layers.append({"fw": dirs[0], "bw": dirs[1]} if module.bidirectional else dirs[0])
    return cell, layers


def to_torch(layers: list[Any], module) -> None:
    """Load recurrax ``layers`` (as from :func:`from_torch`) into ``module`` in place."""
    import torch

    cell = cell_from_torch(module)
    H = module.hidden_size
    new = {}
    for k, layer in enumerate(layers):
        for sfx, p in zip(
            _suffixes(module), [layer["fw"], layer["bw"]] if module.bidirectional else [layer]
        ):
            cell.check_params(dict(p))
            t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
            new[f"weight_ih_l{k}{sfx}"] = t(p["W_ih"]).T
            new[f"weight_hh_l{k}{sfx}"] = t(p["W_hh"]).T
            if isinstance(cell, GRU):
                new[f"bias_ih_l{k}{sfx}"] = t(p["b"])
                new[f"bias_hh_l{k}{sfx}"] = torch.cat([torch.zeros(2 * H), t(p["b_hn"])])
            else:
                new[f"bias_ih_l{k}{sfx}"] = t(p["b"])
                new[f"bias_hh_l{k}{sfx}"] = torch.zeros_like(t(p["b"]))
            if "W_hr" in p:
                new[f"weight_hr_l{k}{sfx}"] = t(p["W_hr"]).T
    module.load_state_dict({k: v.contiguous() for k, v in new.items()})


def carry_from_torch(cell: Cell, h_n, c_n=None, bidirectional: bool = False) -> list[Any]:
    """PyTorch's ``h_n [L*D, B, P]`` (and ``c_n``) as per-layer recurrax carries."""
    h = jnp.asarray(h_n.detach().numpy())
    c = None if c_n is None else jnp.asarray(c_n.detach().numpy())
    one = (lambda i: LSTMState(h[i], c[i])) if isinstance(cell, LSTM) else (lambda i: h[i])
    if bidirectional:
        return [(one(2 * k), one(2 * k + 1)) for k in range(h.shape[0] // 2)]
    return [one(k) for k in range(h.shape[0])]


def from_flax(params: dict) -> tuple[Cell, Params]:
    """``(cell, params)`` from the params of a Flax ``LSTMCell``/``OptimizedLSTMCell``
    (names ``ii..io, hi..ho``) or ``GRUCell`` (``ir, iz, in, hr, hz, hn``)."""
    if "ii" in params:
        gates = "ifgo"
        H = params["hi"]["kernel"].shape[1]
        return LSTM(H, forget_bias=0.0), {
            "W_ih": jnp.concatenate([params[f"i{g}"]["kernel"] for g in gates], 1),
            "W_hh": jnp.concatenate([params[f"h{g}"]["kernel"] for g in gates], 1),
            "b": jnp.concatenate([params[f"h{g}"]["bias"] for g in gates]),
        }
    if "ir" in params:
        gates = "rzn"
        H = params["hr"]["kernel"].shape[1]
        return GRU(H), {
            "W_ih": jnp.concatenate([params[f"i{g}"]["kernel"] for g in gates], 1),
            "W_hh": jnp.concatenate([params[f"h{g}"]["kernel"] for g in gates], 1),
            "b": jnp.concatenate([params[f"i{g}"]["bias"] for g in gates]),
            "b_hn": params["hn"]["bias"],
        }
    raise ValueError(f"not Flax LSTMCell/OptimizedLSTMCell/GRUCell params: keys {sorted(params)}")


def lstm_state_from_flax(carry: tuple) -> LSTMState:
    """Flax's LSTM carry ``(c, h)`` as ``LSTMState(h, c)``."""
    c, h = carry
    return LSTMState(h, c)


def lstm_state_to_flax(state: LSTMState) -> tuple:
    """``LSTMState(h, c)`` as Flax's LSTM carry ``(c, h)``."""
    return (state.c, state.h)
