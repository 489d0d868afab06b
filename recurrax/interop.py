"""Weight conversion to and from ``torch.nn.RNN/GRU/LSTM`` and the Flax (NNX and linen) cells
``LSTMCell``, ``OptimizedLSTMCell`` and ``GRUCell``. torch is imported lazily (it is a
test/benchmark extra).

Differences that the conversion takes care of:

- PyTorch stores ``weight_ih [G*H, I]`` (we store the transpose) and two biases; recurrax keeps
  one bias ``b = b_ih + b_hh``, except the GRU's ``b_hn``, which sits inside the reset gate.
- Flax linen splits each gate into its own ``Dense`` (``ii, if, ig, io, hi, ...``); NNX does too
  in ``LSTMCell`` (``if_`` for ``if``) and fuses them in ``OptimizedLSTMCell`` and ``GRUCell``
  (``dense_i``, ``dense_h``). The Flax LSTM carry is ``(c, h)``; recurrax fuses the gates and
  names its carry ``LSTMState(h, c)``.
- ``torch.nn.LSTM(dropout=p)`` drops out between layers: :func:`model_from_torch` keeps ``p``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from recurrax.cells import GRU, LSTM, RNN, Cell, LSTMState, Params
from recurrax.models import Model


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


def model_from_torch(module, readout=None) -> tuple[Model, Params]:
    """``(model, params)``: a :class:`recurrax.Model` over batch-first ``[B, T, F]`` inputs
    that computes what ``module`` (``torch.nn.RNN/GRU/LSTM``, any ``batch_first``) computes,
    followed by ``readout`` (a ``torch.nn.Linear``) if given, else by the identity.

    The model carries the module's settings: ``num_layers``, ``bidirectional`` and ``dropout``,
    which recurrax applies where torch does, between layers and not after the last. So
    ``model.apply(params, x)`` equals ``module.eval()`` (within float error), and with a
    ``key`` it drops out like ``module.train()`` (other random numbers).
    """
    cell, layers = from_torch(module)
    Y = cell.output_size * (2 if module.bidirectional else 1)
    if readout is None:
        W, b = jnp.eye(Y), jnp.zeros((Y,))
    else:
        W = jnp.asarray(readout.weight.detach().cpu().numpy().T)
        b = jnp.zeros((W.shape[1],)) if readout.bias is None else readout.bias.detach().numpy()
    model = Model(
        (cell,) * module.num_layers,
        output_size=W.shape[1],
        input_size=module.input_size,
        bidirectional=module.bidirectional,
        dropout=float(module.dropout),
    )
    return model, {"layers": layers, "readout": {"W": W, "b": jnp.asarray(b)}}


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


def _flax_pure(flax: Any) -> dict:
    """Params of a Flax cell as a nested dict: from an NNX cell, its ``nnx.State`` or a dict."""
    from flax import nnx

    if isinstance(flax, nnx.Module):
        flax = nnx.state(flax, nnx.Param)
    if isinstance(flax, nnx.State):
        flax = nnx.to_pure_dict(flax)
    if not isinstance(flax, dict):
        raise TypeError(f"expected a Flax cell or its params, got {type(flax).__name__}")
    return flax


def from_flax(flax: Any) -> tuple[Cell, Params]:
    """``(cell, params)`` computing what a Flax LSTM or GRU cell computes.

    ``flax`` is a Flax NNX ``LSTMCell``, ``OptimizedLSTMCell`` or ``GRUCell`` (or its
    ``nnx.State`` / pure dict), or the params ``variables["params"]`` of a linen one. The
    conversion is differentiable, so it also maps Flax gradients to recurrax names. The LSTM
    carry is Flax's ``(c, h)``; see :func:`lstm_state_from_flax`.

    Layouts (H hidden, I input): linen ``LSTMCell``/``OptimizedLSTMCell`` and NNX ``LSTMCell``
    have a Dense per gate, ``ii, if, ig, io`` (NNX: ``if_``) ``[I, H]`` without bias and
    ``hi, hf, hg, ho`` ``[H, H]`` with bias; NNX ``OptimizedLSTMCell`` fuses them into
    ``dense_i [I, 4H]`` and ``dense_h [H, 4H]`` + bias. Linen ``GRUCell``: ``ir, iz, in`` with
    bias, ``hr, hz`` without, ``hn`` with (recurrax ``b_hn``); NNX ``GRUCell``: ``dense_i
    [I, 3H]`` + bias and ``dense_h [H, 3H]`` without bias, so ``b_hn`` is zero.
    """
    p = _flax_pure(flax)
    if "ii" in p:
        f = "if_" if "if_" in p else "if"  # NNX renames the Python keyword
        hs = [p[f"h{g}"] for g in "ifgo"]
        return LSTM(hs[0]["kernel"].shape[1], forget_bias=0.0), {
            "W_ih": jnp.concatenate([p[k]["kernel"] for k in ("ii", f, "ig", "io")], 1),
            "W_hh": jnp.concatenate([h["kernel"] for h in hs], 1),
            "b": jnp.concatenate([h["bias"] for h in hs]),
        }
    if "ir" in p:
        gates = "rzn"
        return GRU(p["hr"]["kernel"].shape[1]), {
            "W_ih": jnp.concatenate([p[f"i{g}"]["kernel"] for g in gates], 1),
            "W_hh": jnp.concatenate([p[f"h{g}"]["kernel"] for g in gates], 1),
            "b": jnp.concatenate([p[f"i{g}"]["bias"] for g in gates]),
            "b_hn": p["hn"]["bias"],
        }
    if "dense_i" in p:
        W_ih, W_hh = p["dense_i"]["kernel"], p["dense_h"]["kernel"]
        H = W_hh.shape[0]
        if W_hh.shape[1] == 4 * H:
            return LSTM(H, forget_bias=0.0), {"W_ih": W_ih, "W_hh": W_hh, "b": p["dense_h"]["bias"]}
        return GRU(H), {
            "W_ih": W_ih,
            "W_hh": W_hh,
            "b": p["dense_i"]["bias"],
            "b_hn": jnp.zeros((H,), W_hh.dtype),
        }
    raise ValueError(f"not Flax LSTMCell/OptimizedLSTMCell/GRUCell params: keys {sorted(p)}")


def to_flax(cell: Cell, params: Params, flax_cell: Any) -> Any:
    """Put recurrax ``params`` of ``cell`` into the layout of ``flax_cell``; the inverse of
    :func:`from_flax`.

    ``flax_cell`` is a Flax NNX ``LSTMCell``, ``OptimizedLSTMCell`` or ``GRUCell`` (its params
    are replaced in place, as :func:`to_torch` does, and it is returned), or a linen one, e.g.
    ``flax.linen.LSTMCell(H)`` (the ``variables["params"]`` dict is returned; the conversion is
    differentiable). ``cell`` must be a plain LSTM (forget gate, no peephole or projection,
    tanh output) or a GRU; NNX ``GRUCell`` has no ``b_hn``, so it must be zero.
    """
    import flax.linen as fnn
    from flax import nnx

    cell.check_params(params)
    kinds = {
        fnn.LSTMCell: LSTM,
        fnn.OptimizedLSTMCell: LSTM,
        fnn.GRUCell: GRU,
        nnx.LSTMCell: LSTM,
        nnx.OptimizedLSTMCell: LSTM,
        nnx.GRUCell: GRU,
    }
    kind = kinds.get(type(flax_cell))
    if kind is None:
        raise TypeError(f"expected a Flax LSTMCell/OptimizedLSTMCell/GRUCell, got {flax_cell!r}")
    if type(cell) is not kind or (
        kind is LSTM
        and (
            not cell.forget_gate
            or cell.peephole
            or cell.proj_size
            or cell.output_activation != "tanh"
        )
    ):
        raise ValueError(f"{type(flax_cell).__name__} cannot compute {cell}")
    sizes = (cell.hidden_size, params["W_ih"].shape[0])
    want = (
        getattr(flax_cell, "features", getattr(flax_cell, "hidden_features", None)),
        getattr(flax_cell, "in_features", sizes[1]),  # linen cells infer it
    )
    if want != sizes:
        raise ValueError(f"{flax_cell!r} has (features, inputs) {want}; the params have {sizes}")
    gates = cell.gates if kind is LSTM else ("r", "z", "n")
    W_ih = dict(zip(gates, jnp.split(params["W_ih"], len(gates), 1)))
    W_hh = dict(zip(gates, jnp.split(params["W_hh"], len(gates), 1)))
    b = dict(zip(gates, jnp.split(params["b"], len(gates))))
    if isinstance(flax_cell, fnn.Module):
        if kind is LSTM:
            return {f"i{g}": {"kernel": W_ih[g]} for g in gates} | {
                f"h{g}": {"kernel": W_hh[g], "bias": b[g]} for g in gates
            }
        return (
            {f"i{g}": {"kernel": W_ih[g], "bias": b[g]} for g in gates}
            | {f"h{g}": {"kernel": W_hh[g]} for g in "rz"}
            | {"hn": {"kernel": W_hh["n"], "bias": params["b_hn"]}}
        )
    if kind is LSTM and isinstance(flax_cell, nnx.LSTMCell):
        new = {("if_" if g == "f" else f"i{g}"): {"kernel": W_ih[g]} for g in gates} | {
            f"h{g}": {"kernel": W_hh[g], "bias": b[g]} for g in gates
        }
    elif kind is LSTM:
        new = {
            "dense_i": {"kernel": params["W_ih"]},
            "dense_h": {"kernel": params["W_hh"], "bias": params["b"]},
        }
    else:
        b_hn = params["b_hn"]
        if not isinstance(b_hn, jax.core.Tracer) and np.any(np.asarray(b_hn) != 0):
            raise ValueError("nnx.GRUCell has no b_hn (hidden bias of the n gate); it must be 0")
        new = {
            "dense_i": {"kernel": params["W_ih"], "bias": params["b"]},
            "dense_h": {"kernel": params["W_hh"]},
        }
    state = nnx.state(flax_cell, nnx.Param)
    nnx.replace_by_pure_dict(state, new)
    nnx.update(flax_cell, state)
    return flax_cell


def lstm_state_from_flax(carry: tuple) -> LSTMState:
    """Flax's LSTM carry ``(c, h)`` as ``LSTMState(h, c)``."""
    c, h = carry
    return LSTMState(h, c)


def lstm_state_to_flax(state: LSTMState) -> tuple:
    """``LSTMState(h, c)`` as Flax's LSTM carry ``(c, h)``."""
    return (state.c, state.h)
