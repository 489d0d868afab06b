"""Recurrent cells as pure functions.

A cell is a small immutable (hashable) object, usable as a static ``jit`` argument, with

- ``init(key, input_size) -> params``: a plain dict of arrays with documented names and shapes;
- ``initial_carry(batch_shape=(), dtype=None) -> carry``;
- ``step(params, carry, x, internals=False) -> (carry, y)`` or ``(carry, y, internals)``.

``x`` is ``[..., I]`` with any leading batch dimensions. All gate weights of a cell live in one
fused matrix (``W_ih: [I, G*H]``, ``W_hh: [H, G*H]``) so a step is two matmuls; the gate order
is PyTorch's (LSTM ``i, f, g, o``; GRU ``r, z, n``), which makes weight conversion a copy.

Initializers (``input_init`` for ``W_ih``, ``recurrent_init`` for ``W_hh``):

- ``"uniform"`` (default): PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``, also used for every bias;
- ``"xavier"``: Glorot uniform, per gate block;
- ``"orthogonal"``: an orthogonal matrix per gate block (Saxe et al. 2014).

Precision, as Flax: ``param_dtype`` (default float32) is the dtype of the params ``init``
makes; ``dtype`` (default None: promote inputs and params) the dtype every step computes in.
``LSTM(256, dtype="bfloat16")`` computes in bfloat16 on float32 params; gradients come back
in float32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
Params = dict[str, Array]

INITIALIZERS = ("uniform", "xavier", "orthogonal")
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda v: v,
}


class LSTMState(NamedTuple):
    """LSTM carry: ``h`` is ``[..., P]`` (P = proj_size or hidden_size), ``c`` is ``[..., H]``."""

    h: Array
    c: Array


def _gate_weights(kind: str, key: Array, rows: int, hidden: int, gates: int, dtype) -> Array:
    """``[rows, gates * hidden]`` weights, initialised block by block."""
    keys = jax.random.split(key, gates)
    if kind == "uniform":
        bound = 1.0 / math.sqrt(hidden)
        return jax.random.uniform(key, (rows, gates * hidden), dtype, -bound, bound)
    init = {
        "xavier": jax.nn.initializers.glorot_uniform(),
        "orthogonal": jax.nn.initializers.orthogonal(),
    }[kind]
    return jnp.concatenate([init(k, (rows, hidden), dtype) for k in keys], axis=1)


def _uniform(key: Array, shape: tuple[int, ...], hidden: int, dtype) -> Array:
    bound = 1.0 / math.sqrt(hidden)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def _check_dtype(name: str, value: str | None) -> None:
    if value is None and name == "dtype":
        return
    try:
        jnp.dtype(value)
    except TypeError:
        raise ValueError(
            f"{name} must name a dtype (e.g. 'float32', 'bfloat16'), got {value!r}"
        ) from None


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class _Cell:
    """Shared validation and parameter checking. Subclasses define ``shapes`` and ``step``."""

    hidden_size: int
    input_init: str = "uniform"
    recurrent_init: str = "uniform"
    dtype: str | None = None
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        if isinstance(self.hidden_size, bool) or not isinstance(self.hidden_size, int):
            raise TypeError(f"hidden_size must be an int, got {self.hidden_size!r}")
        if self.hidden_size <= 0:
            raise ValueError(f"hidden_size must be positive, got {self.hidden_size}")
        _check_choice("input_init", self.input_init, INITIALIZERS)
        _check_choice("recurrent_init", self.recurrent_init, INITIALIZERS)
        _check_dtype("dtype", self.dtype)
        _check_dtype("param_dtype", self.param_dtype)

    def compute_dtype(self, params: Params, x: Array) -> Any:
        """The dtype a step computes in: ``dtype`` if set (mixed precision: bfloat16 compute
        on float32 params), else the promotion of the inputs' and the params' dtypes."""
        if self.dtype is not None:
            return jnp.dtype(self.dtype)
        return jnp.result_type(x.dtype, *(v.dtype for v in jax.tree.leaves(params)))

    @property
    def output_size(self) -> int:
        """Y, the size of ``y`` and of ``h``."""
        return self.hidden_size

    def shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        """The shape of every param for inputs ``[..., input_size]``."""
        raise NotImplementedError

    def check_params(self, params: Any, input_size: int | None = None) -> None:
        """Raise ``ValueError`` if ``params`` do not belong to this cell (and input size)."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        if input_size is None:
            input_size = params.get("W_ih", jnp.zeros((0,))).shape[0]
        want = self.shapes(input_size)
        if set(params) != set(want):
            raise ValueError(
                f"params do not match {self}: expected keys {sorted(want)}, got {sorted(params)}"
            )
        for name, shape in want.items():
            if tuple(params[name].shape) != shape:
                raise ValueError(
                    f"params[{name!r}] has shape {tuple(params[name].shape)}, "
                    f"expected {shape} for {self} with input size {input_size}"
                )

    def _check_x(self, params: Params, x: Array) -> None:
        if x.ndim < 1:
            raise ValueError(f"x must have a feature axis, got shape {x.shape}")
        self.check_params(params, x.shape[-1])


@dataclasses.dataclass(frozen=True)
class RNN(_Cell):
    r"""Elman RNN (Elman 1990), the "vanilla" recurrent network.

    .. math::
        h' = φ(x W_{ih} + h W_{hh} + b),\quad y = h'

    with φ = tanh, or relu (Le et al. 2015 use relu with an identity-initialized ``W_hh``).

    Attributes:
      hidden_size: H, the number of units.
      nonlinearity: φ, ``"tanh"`` (default) or ``"relu"``.
      input_init, recurrent_init: initializers of ``W_ih`` and ``W_hh`` (module docstring).

    Params: ``W_ih [I, H]``, ``W_hh [H, H]``, ``b [H]``. Carry: ``h [..., H]``.

    >>> cell = RNN(8, nonlinearity="relu")
    >>> params = cell.init(jax.random.key(0), 3)
    >>> h, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))  # y: [2, 8]
    """

    nonlinearity: str = "tanh"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("nonlinearity", self.nonlinearity, ("tanh", "relu"))

    def shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return {"W_ih": (input_size, H), "W_hh": (H, H), "b": (H,)}

    def init(self, key: Array, input_size: int, dtype: Any = None) -> Params:
        """Params for inputs ``[..., input_size]``: a dict of arrays, shapes in the class
        docstring (:meth:`shapes`), in ``dtype`` (default the cell\'s ``param_dtype``)."""
        dtype = jnp.dtype(dtype or self.param_dtype)
        k1, k2, k3 = jax.random.split(key, 3)
        H = self.hidden_size
        return {
            "W_ih": _gate_weights(self.input_init, k1, input_size, H, 1, dtype),
            "W_hh": _gate_weights(self.recurrent_init, k2, H, H, 1, dtype),
            "b": _uniform(k3, (H,), H, dtype),
        }

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> Array:
        """The zero carry for a batch ``batch_shape`` (e.g. ``(B,)``): shapes in the class
        docstring; in ``dtype`` (default the cell\'s ``dtype``, else float32)."""
        dtype = jnp.dtype(dtype or self.dtype or "float32")
        return jnp.zeros((*batch_shape, self.hidden_size), dtype)

    def step(self, params: Params, h: Array, x: Array, internals: bool = False):
        """One time step: ``x [..., I]`` and the carry -> ``(carry, y [..., Y])``; with
        ``internals``, also a dict of the step's gates and states, each ``[..., H]``. No checks
        beyond the params' shapes: :func:`recurrax.unroll` validates once for all steps."""
        self._check_x(params, x)
        h = ACTIVATIONS[self.nonlinearity](x @ params["W_ih"] + h @ params["W_hh"] + params["b"])
        return (h, h, {"h": h}) if internals else (h, h)


@dataclasses.dataclass(frozen=True)
class GRU(_Cell):
    r"""Gated recurrent unit (Cho et al. 2014) in the PyTorch/cuDNN convention.

    .. math::
        r = σ(x W_ir + h W_hr + b_r),\quad z = σ(x W_iz + h W_hz + b_z)
        n = \tanh(x W_in + b_n + r ⊙ (h W_hn + b_hn)),\quad h' = (1 - z) ⊙ n + z ⊙ h

    The reset gate multiplies ``h W_hn + b_hn`` (not ``h`` itself, as in the paper); this is
    what ``torch.nn.GRU`` and Flax ``GRUCell`` compute.

    Attributes:
      hidden_size: H, the number of units.
      input_init, recurrent_init: initializers of ``W_ih`` and ``W_hh`` (module docstring).

    Params: ``W_ih [I, 3H]``, ``W_hh [H, 3H]`` (gate order r, z, n), ``b [3H]`` (input-side and
    r, z biases), ``b_hn [H]``. Carry: ``h [..., H]``.

    >>> cell = GRU(16)
    >>> params = cell.init(jax.random.key(0), 4)
    >>> h, y = cell.step(params, cell.initial_carry((8,)), jnp.ones((8, 4)))  # y: [8, 16]
    """

    def shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return {"W_ih": (input_size, 3 * H), "W_hh": (H, 3 * H), "b": (3 * H,), "b_hn": (H,)}

    def init(self, key: Array, input_size: int, dtype: Any = None) -> Params:
        """Params for inputs ``[..., input_size]``: a dict of arrays, shapes in the class
        docstring (:meth:`shapes`), in ``dtype`` (default the cell\'s ``param_dtype``)."""
        dtype = jnp.dtype(dtype or self.param_dtype)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        H = self.hidden_size
        return {
            "W_ih": _gate_weights(self.input_init, k1, input_size, H, 3, dtype),
            "W_hh": _gate_weights(self.recurrent_init, k2, H, H, 3, dtype),
            "b": _uniform(k3, (3 * H,), H, dtype),
            "b_hn": _uniform(k4, (H,), H, dtype),
        }

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> Array:
        """The zero carry for a batch ``batch_shape`` (e.g. ``(B,)``): shapes in the class
        docstring; in ``dtype`` (default the cell\'s ``dtype``, else float32)."""
        dtype = jnp.dtype(dtype or self.dtype or "float32")
        return jnp.zeros((*batch_shape, self.hidden_size), dtype)

    def step(self, params: Params, h: Array, x: Array, internals: bool = False):
        """One time step: ``x [..., I]`` and the carry -> ``(carry, y [..., Y])``; with
        ``internals``, also a dict of the step's gates and states, each ``[..., H]``. No checks
        beyond the params' shapes: :func:`recurrax.unroll` validates once for all steps."""
        self._check_x(params, x)
        xr, xz, xn = jnp.split(x @ params["W_ih"] + params["b"], 3, axis=-1)
        hr, hz, hn = jnp.split(h @ params["W_hh"], 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * (hn + params["b_hn"]))
        h = (1 - z) * n + z * h
        return (h, h, {"r": r, "z": z, "n": n, "h": h}) if internals else (h, h)


@dataclasses.dataclass(frozen=True)
class LSTM(_Cell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997) and its classic variants.

    .. math::
        i = σ(x W_ii + h W_hi + b_i + p_i ⊙ c),\quad f = σ(x W_if + h W_hf + b_f + p_f ⊙ c)
        g = \tanh(x W_ig + h W_hg + b_g),\quad c' = f ⊙ c + i ⊙ g
        o = σ(x W_io + h W_ho + b_o + p_o ⊙ c'),\quad h' = o ⊙ ψ(c')\ [W_hr]

    Attributes:
      hidden_size: H, the number of memory cells.
      forget_gate: with ``False`` this is the original 1997 LSTM, ``c' = c + i ⊙ g`` (the
        constant error carousel); the f block is then absent from every weight.
      forget_bias: added to ``b_f`` at init. Default 1.0, as recommended by Gers, Schmidhuber &
        Cummins (2000) and Jozefowicz et al. (2015): the cell starts out remembering, so
        gradients flow over long spans from the first step. ``torch.nn.LSTM`` and Flax use 0.
      peephole: diagonal weights ``p_i, p_f`` from ``c`` and ``p_o`` from ``c'`` into the gates
        (Gers & Schmidhuber 2000; used for formal languages in Gers & Schmidhuber 2001).
      output_activation: ψ, ``"tanh"`` (default) or ``"identity"`` (no output squashing, as in
        Gers & Schmidhuber 2001).
      proj_size: P > 0 adds a projection ``h' = (o ⊙ ψ(c')) W_hr`` (Sak et al. 2014), like
        ``torch.nn.LSTM(proj_size=P)``; ``h`` is then ``[..., P]``.

    Params: ``W_ih [I, G*H]``, ``W_hh [P or H, G*H]``, ``b [G*H]`` with G = 4 gates ``i, f, g, o``
    (G = 3, ``i, g, o``, without forget gate); ``p_i, p_f, p_o [H]`` with peepholes (no ``p_f``
    without forget gate); ``W_hr [H, P]`` with projection. Carry: ``LSTMState(h, c)``.

    >>> cell = LSTM(16, peephole=True)
    >>> params = cell.init(jax.random.key(0), 4)
    >>> carry, y = cell.step(params, cell.initial_carry((8,)), jnp.ones((8, 4)))
    """

    forget_gate: bool = True
    forget_bias: float = 1.0
    peephole: bool = False
    output_activation: str = "tanh"
    proj_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("output_activation", self.output_activation, ("tanh", "identity"))
        if not isinstance(self.proj_size, int) or not 0 <= self.proj_size:
            raise ValueError(f"proj_size must be a non-negative int, got {self.proj_size!r}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size ({self.proj_size}) must be smaller than hidden_size "
                f"({self.hidden_size}), as in torch.nn.LSTM"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        return ("i", "f", "g", "o") if self.forget_gate else ("i", "g", "o")

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H, G, P = self.hidden_size, len(self.gates), self.output_size
        shapes = {"W_ih": (input_size, G * H), "W_hh": (P, G * H), "b": (G * H,)}
        if self.peephole:
            shapes |= {f"p_{g}": (H,) for g in self.gates if g != "g"}
        if self.proj_size:
            shapes["W_hr"] = (H, P)
        return shapes

    def init(self, key: Array, input_size: int, dtype: Any = None) -> Params:
        """Params for inputs ``[..., input_size]``: a dict of arrays, shapes in the class
        docstring (:meth:`shapes`), in ``dtype`` (default the cell\'s ``param_dtype``)."""
        dtype = jnp.dtype(dtype or self.param_dtype)
        H, G, P = self.hidden_size, len(self.gates), self.output_size
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        b = _uniform(k3, (G * H,), H, dtype)
        if self.forget_gate:
            b = b.at[H : 2 * H].add(self.forget_bias)
        params = {
            "W_ih": _gate_weights(self.input_init, k1, input_size, H, G, dtype),
            "W_hh": _gate_weights(self.recurrent_init, k2, P, H, G, dtype),
            "b": b,
        }
        if self.peephole:
            peeps = [g for g in self.gates if g != "g"]
            for g, k in zip(peeps, jax.random.split(k4, len(peeps))):
                params[f"p_{g}"] = _uniform(k, (H,), H, dtype)
        if self.proj_size:
            params["W_hr"] = _uniform(k5, (H, P), H, dtype)
        return params

    def chrono(self, params: Params, key: Array, t_max: float) -> Params:
        """Chrono initialization (Tallec & Ollivier 2018) of initialized ``params``:
        ``b_f ~ log U(1, t_max - 1)`` and ``b_i = -b_f``, so the cells' forget time constants
        spread over 1..t_max steps instead of all sitting near 1/(1 - σ(b_f))."""
        if not self.forget_gate:
            raise ValueError("chrono initialization sets the forget-gate bias; this LSTM has none")
        if t_max <= 2:
            raise ValueError(f"chrono initialization needs t_max > 2, got {t_max}")
        self.check_params(params)
        H = self.hidden_size
        b_f = jnp.log(jax.random.uniform(key, (H,), params["b"].dtype, 1.0, t_max - 1.0))
        return {**params, "b": params["b"].at[:H].set(-b_f).at[H : 2 * H].set(b_f)}

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype: Any = None) -> LSTMState:
        """The zero carry for a batch ``batch_shape`` (e.g. ``(B,)``): shapes in the class
        docstring; in ``dtype`` (default the cell\'s ``dtype``, else float32)."""
        dtype = jnp.dtype(dtype or self.dtype or "float32")
        return LSTMState(
            h=jnp.zeros((*batch_shape, self.output_size), dtype),
            c=jnp.zeros((*batch_shape, self.hidden_size), dtype),
        )

    def step(self, params: Params, carry: LSTMState, x: Array, internals: bool = False):
        """One time step: ``x [..., I]`` and the carry -> ``(carry, y [..., Y])``; with
        ``internals``, also a dict of the step's gates and states, each ``[..., H]``. No checks
        beyond the params' shapes: :func:`recurrax.unroll` validates once for all steps."""
        self._check_x(params, x)
        h, c = carry
        z = dict(
            zip(
                self.gates,
                jnp.split(
                    x @ params["W_ih"] + h @ params["W_hh"] + params["b"], len(self.gates), axis=-1
                ),
            )
        )
        peep = (lambda g, cell: params[f"p_{g}"] * cell) if self.peephole else (lambda g, cell: 0)
        i = jax.nn.sigmoid(z["i"] + peep("i", c))
        f = jax.nn.sigmoid(z["f"] + peep("f", c)) if self.forget_gate else 1.0
        g = jnp.tanh(z["g"])
        c = f * c + i * g
        o = jax.nn.sigmoid(z["o"] + peep("o", c))
        h = o * ACTIVATIONS[self.output_activation](c)
        if self.proj_size:
            h = h @ params["W_hr"]
        if not internals:
            return LSTMState(h, c), h
        gates = {"i": i, "f": f, "g": g, "o": o} if self.forget_gate else {"i": i, "g": g, "o": o}
        return LSTMState(h, c), h, gates | {"c": c, "h": h}


Cell = RNN | GRU | LSTM

CELL_NAMES = ("lstm", "lstm-peephole", "lstm-noforget", "gru", "rnn-tanh", "rnn-relu")


def to_dict(cell: Cell) -> dict[str, Any]:
    """A JSON-able description of ``cell``: ``{"type": "LSTM", "hidden_size": 4, ...}``."""
    return {"type": type(cell).__name__, **dataclasses.asdict(cell)}


def from_dict(description: dict[str, Any]) -> Cell:
    """The cell described by :func:`to_dict`; ``ValueError`` for an unknown description."""
    kinds = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}
    fields = dict(description)
    kind = kinds.get(fields.pop("type", None))
    if kind is None:
        raise ValueError(f"not a cell description: {description!r}")
    try:
        return kind(**fields)
    except TypeError as err:
        raise ValueError(f"not a {kind.__name__} description: {err}") from None


def from_name(name: str, hidden_size: int, forget_bias: float = 1.0) -> Cell:
    """A cell from a command-line name: one of :data:`CELL_NAMES`."""
    cells = {
        "lstm": lambda: LSTM(hidden_size, forget_bias=forget_bias),
        "lstm-peephole": lambda: LSTM(hidden_size, forget_bias=forget_bias, peephole=True),
        "lstm-noforget": lambda: LSTM(hidden_size, forget_gate=False),
        "gru": lambda: GRU(hidden_size),
        "rnn-tanh": lambda: RNN(hidden_size),
        "rnn-relu": lambda: RNN(hidden_size, nonlinearity="relu"),
    }
    if name not in cells:
        raise ValueError(f"unknown cell {name!r}; choose from {list(CELL_NAMES)}")
    return cells[name]()
