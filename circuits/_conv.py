"""Convolutional layered circuits: the layer string, the geometry, the populations and projections.

A network is described by its input maps and a layer string (the same on the command line and
in Python)::

    input (1, 28, 28), layers "conv:6:5:pad=2,maxpool:2,conv:16:5,maxpool:2,dense:120,dense:84,dense:10"

``conv:OUT:K[:stride=S][:pad=P]`` (``OUT`` maps, ``K × K`` kernel), ``maxpool:K`` / ``avgpool:K``
(``K × K`` windows, stride ``K``), ``dense:N``. The activation follows every conv and dense layer
except the last; pooling follows the activation (it is applied to the rate that the next weight
layer reads); the maps are flattened in C order before the first dense layer.

The naming is the layered circuits' (:mod:`circuits._mlp`): input ``x0`` with the input's maps,
weight layers ``x1..xL`` (conv layers with their output maps and one bias per channel, dense
layers flat), forward projections ``W1..WL`` (``Conv2d`` kernels ``(C_out, C_in, kh, kw)`` or dense
``(n_out, n_in)``, each pooling the rate it reads when a pooling layer precedes it) and error
compartments ``e1..eL``. Feedback ``e_l -> e_{l-1}`` of a spatial layer is the *transposed*
projection with weights in the forward layout (:func:`feedback_projection`): ``Kᵀ ⋆ e_l`` then the
adjoint of the pooling (max: routed by the rate of ``x_{l-1}`` that chose the winners), gated by
``f'(a_{l-1})``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from neurosim.model import Population, Projection, Tied
from neurosim.spatial import Conv2d, Pool, Shape, conv_output_shape, pool_output_shape

__all__ = ["WeightLayer", "ConvNet", "parse_layers", "parse_input", "conv_net", "layered", "meta_of", "net_of",
           "init_weights",
           "forward_populations", "forward_projections", "error_populations", "feedback_projection", "LENET5"]

LENET5 = "conv:6:5:pad=2,maxpool:2,conv:16:5,maxpool:2,dense:120,dense:84,dense:10"
"""LeNet-5 on 1×28×28 inputs (LeCun et al. 1998), as biotorch and Xiao et al. 2018 benchmark it."""


@dataclass(frozen=True)
class WeightLayer:
    """One weight layer ``l`` with the pooling that precedes it.

    Attributes
    ----------
    kind : {"conv", "dense"}
    pool : Pool or None
        Pooling of the rate of layer ``l-1`` before the weights.
    conv : Conv2d or None
    in_shape : (C, H, W) or None
        Maps of layer ``l-1`` (before pooling); None when it is flat.
    in_size : int
        Units of layer ``l-1``.
    weight_shape : tuple
        Kernel ``(C_out, C_in, k, k)`` or dense ``(n_out, n_in_pooled)``.
    out_shape : (C, H, W) or None
        Output maps of a conv layer.
    out_size : int
    """

    kind: str
    pool: Pool | None
    conv: Conv2d | None
    in_shape: Shape | None
    in_size: int
    weight_shape: tuple
    out_shape: Shape | None
    out_size: int

    @property
    def spatial(self) -> bool:
        return self.conv is not None or self.pool is not None

    @property
    def fan_in(self) -> int:
        """Inputs per output unit (kernel volume for conv)."""
        return int(np.prod(self.weight_shape[1:]))

    def describe(self) -> list[dict[str, Any]]:
        """The dump's ``layers`` entries of this layer: its pooling, then the weight layer."""
        out = [] if self.pool is None else [{"kind": f"{self.pool.kind}pool", "size": self.pool.size}]
        if self.kind == "conv":
            out.append({"kind": "conv", "stride": self.conv.stride, "padding": self.conv.padding})
        else:
            out.append({"kind": "dense"})
        return out


@dataclass(frozen=True)
class ConvNet:
    """A parsed network: its input maps, the layer string and its weight layers."""

    input_shape: Shape
    text: str
    layers: tuple[WeightLayer, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units ``d_0 .. d_L`` (what the layered circuits call ``sizes``)."""
        return (int(np.prod(self.input_shape)),) + tuple(layer.out_size for layer in self.layers)

    def shape(self, l: int) -> Shape | None:
        """Maps of layer ``l`` (0: the input), None for a dense layer."""
        return self.input_shape if l == 0 else self.layers[l - 1].out_shape

    def describe_json(self) -> str:
        """The forward-order list the check dump stores as ``layers``."""
        return json.dumps([entry for layer in self.layers for entry in layer.describe()])


def parse_input(value: str | Sequence[int]) -> Shape:
    """``"1,28,28"`` or ``(1, 28, 28)`` -> ``(1, 28, 28)``."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        shape = tuple(int(v) for v in parts)
    except (TypeError, ValueError):
        raise ValueError(f"input={value!r} must be three integers C,H,W, e.g. '1,28,28'") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input={value!r} must be three positive integers C,H,W, e.g. '1,28,28'")
    return shape


def _option(item: str, part: str, key: str) -> int:
    name, _, value = part.partition("=")
    if name != key or not value:
        raise ValueError(f"layer {item!r}: option {part!r} is not {key}=N")
    return int(value)


def parse_layers(text: str, input_shape: str | Sequence[int]) -> ConvNet:
    """Parse a layer string (module docstring) for ``input_shape`` maps and check its geometry.

    Raises
    ------
    ValueError
        Naming the item and what is wrong (unknown kind, kernel larger than the maps, pooling
        after a flat layer, two poolings in a row, a network that does not end in a weight layer).
    """
    shape: Shape | None = parse_input(input_shape)
    size = int(np.prod(shape))
    pending: Pool | None = None
    layers: list[WeightLayer] = []
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise ValueError(f"layers={text!r} is empty; e.g. {LENET5!r}")
    for item in items:
        parts = item.split(":")
        kind = parts[0]
        try:
            if kind in ("maxpool", "avgpool"):
                if len(parts) != 2:
                    raise ValueError("write maxpool:K or avgpool:K")
                if shape is None:
                    raise ValueError("pooling needs feature maps; it cannot follow a dense layer")
                if pending is not None:
                    raise ValueError("two poolings in a row; merge them into one window")
                pending = Pool(kind[:3], int(parts[1]))
                pool_output_shape(shape, pending)
            elif kind == "conv":
                if len(parts) < 3:
                    raise ValueError("write conv:OUT:K[:stride=S][:pad=P]")
                out_c, k = int(parts[1]), int(parts[2])
                stride, pad = 1, 0
                for part in parts[3:]:
                    if part.startswith("stride"):
                        stride = _option(item, part, "stride")
                    else:
                        pad = _option(item, part, "pad")
                if shape is None:
                    raise ValueError("a convolution needs feature maps; it cannot follow a dense layer")
                conv = Conv2d(stride, pad)
                maps = shape if pending is None else pool_output_shape(shape, pending)
                kernel = (out_c, maps[0], k, k)
                out = conv_output_shape(maps, kernel, conv)
                layers.append(WeightLayer("conv", pending, conv, shape, size, kernel, out, int(np.prod(out))))
                shape, size, pending = out, int(np.prod(out)), None
            elif kind == "dense":
                if len(parts) != 2:
                    raise ValueError("write dense:N")
                n = int(parts[1])
                if n < 1:
                    raise ValueError(f"{n} units; a dense layer needs at least one")
                n_in = size if pending is None else int(np.prod(pool_output_shape(shape, pending)))
                layers.append(WeightLayer("dense", pending, None, shape, size, (n, n_in), None, n))
                shape, size, pending = None, n, None
            else:
                raise ValueError("unknown kind; use conv:OUT:K[:stride=S][:pad=P], maxpool:K, avgpool:K or dense:N")
        except ValueError as err:
            raise ValueError(f"layers: item {item!r}: {err}") from None
    if pending is not None:
        raise ValueError(f"layers={text!r} ends with a pooling; the last layer must be conv or dense")
    return ConvNet(parse_input(input_shape), ",".join(items), tuple(layers))


def conv_net(layers: str | None, input_shape: str | Sequence[int] | None,
             sizes: Sequence[int] | None) -> ConvNet | None:
    """The parsed network when ``layers`` is given (``sizes``, if given too, must agree), else None."""
    if layers is None:
        if input_shape is not None:
            raise ValueError("input_shape is only used with layers=...; pass layers too, or drop input_shape")
        return None
    if input_shape is None:
        raise ValueError("layers=... needs input_shape=(C, H, W) (on the command line: --input C,H,W)")
    net = parse_layers(layers, input_shape)
    if sizes is not None and tuple(int(s) for s in sizes) != net.sizes:
        raise ValueError(f"sizes={list(sizes)} disagree with the layer string, which gives {list(net.sizes)}; "
                         f"drop sizes or make them agree")
    return net


def layered(net: ConvNet, activation: str, loss: str, tau_ms, tau_error_ms, dale, rng: np.random.Generator,
            weight_scale: float = 1.0, weight_init: str = "uniform"):
    """The parts every convolutional layered circuit shares.

    Returns
    -------
    spec : circuits._mlp.LayerSpec
        Over the flat sizes of the layers.
    weights : list
        Initial kernels and matrices of ``W1..WL`` (drawn first from ``rng``).
    populations : list of Population
        ``x0..xL`` and ``e1..eL``.
    projections : list of Projection
        ``W1..WL``.
    """
    from . import _mlp

    if dale is not None:
        raise ValueError("dale=... is not available for convolutional layers yet; drop dale or use dense layers")
    spec = _mlp.layer_spec(net.sizes, activation, loss, tau_ms, tau_error_ms)
    weights, biases = init_weights(net, rng, weight_scale, weight_init)
    pops = forward_populations(net, activation, spec.tau_ms, biases) + error_populations(net, spec.tau_error_ms)
    return spec, weights, pops, forward_projections(net, weights)


def meta_of(net: ConvNet) -> dict[str, Any]:
    """What a convolutional circuit adds to its ``meta`` (read back by :func:`net_of`)."""
    return {"layers": net.text, "input_shape": list(net.input_shape), "layer_list": json.loads(net.describe_json())}


def net_of(circuit) -> ConvNet | None:
    """The parsed network of a circuit built with ``layers=...`` (None for a dense circuit)."""
    m = circuit.meta
    return parse_layers(m["layers"], m["input_shape"]) if m.get("layers") else None


def init_weights(net: ConvNet, rng: np.random.Generator, scale: float = 1.0,
                 distribution: str = "uniform") -> tuple[list, list]:
    """Kernels and dense matrices with ``s = scale/sqrt(fan_in)`` (``U(-s, s)`` or ``N(0, s²)``), zero biases.

    Conv layers get one bias per channel.
    """
    weights, biases = [], []
    for layer in net.layers:
        s = scale / np.sqrt(layer.fan_in)
        w = (rng.uniform(-s, s, size=layer.weight_shape) if distribution == "uniform"
             else rng.normal(0.0, s, size=layer.weight_shape))
        weights.append(w)
        biases.append(np.zeros(layer.out_shape[0] if layer.kind == "conv" else layer.out_size))
    return weights, biases


def forward_populations(net: ConvNet, activation: str, tau_ms: float, biases: Sequence[np.ndarray]) -> list[Population]:
    """``x0`` (input maps, linear), hidden ``x1..x_{L-1}`` (maps for conv layers) and linear output ``xL``."""
    L = len(net.layers)
    pops = [Population("x0", net.sizes[0], tau_ms, "linear", role="input", shape=net.input_shape)]
    for l, layer in enumerate(net.layers, 1):
        out = l == L
        pops.append(Population(f"x{l}", layer.out_size, tau_ms, "linear" if out else activation,
                               bias=biases[l - 1], role="output" if out else "hidden", shape=layer.out_shape))
    return pops


def forward_projections(net: ConvNet, weights: Sequence[np.ndarray]) -> list[Projection]:
    """Plastic ``W_l: x_{l-1} -> x_l``, convolving and pooling where the layer string says so."""
    return [Projection(f"W{l}", f"x{l - 1}", f"x{l}", weights[l - 1], pathway="feedforward", plastic=True,
                       conv=layer.conv, pool=layer.pool)
            for l, layer in enumerate(net.layers, 1)]


def error_populations(net: ConvNet, tau_error_ms: float) -> list[Population]:
    """Error compartments ``e1..eL`` with their layer's maps."""
    return [Population(f"e{l}", layer.out_size, tau_error_ms, "linear", compartment_of=f"x{l}", role="error",
                       shape=layer.out_shape)
            for l, layer in enumerate(net.layers, 1)]


def feedback_projection(net: ConvNet, name: str, l: int, weights: np.ndarray | Tied,
                        plastic: bool = False) -> Projection:
    """Feedback ``e_l -> e_{l-1}`` of layer ``l``, gated by ``f'(a_{l-1})``.

    ``weights`` are in the forward layout of ``W_l`` (a kernel, or ``(n_l, n_{l-1} pooled)``), e.g.
    ``Tied("W2", "identity")`` for backprop or a fixed random array of ``W_l``'s shape for FA.
    A dense layer without pooling becomes an ordinary dense projection with the transposed
    matrix (``Tied(..., "transpose")``, or the array's transpose).
    """
    layer = net.layers[l - 1]
    if not layer.spatial:
        if isinstance(weights, Tied):
            transform = {"identity": "transpose", "neg": "neg_transpose", "sign": "sign_transpose"}[weights.transform]
            dense = Tied(weights.source, transform, weights.scale,
                         None if weights.magnitude is None else weights.magnitude.T)
        else:
            dense = np.asarray(weights).T
        return Projection(name, f"e{l}", f"e{l - 1}", dense, pathway="feedback", signal="u", gain=f"x{l - 1}",
                          plastic=plastic)
    route = f"x{l - 1}" if layer.pool is not None and layer.pool.kind == "max" else None
    return Projection(name, f"e{l}", f"e{l - 1}", weights, pathway="feedback", signal="u", gain=f"x{l - 1}",
                      plastic=plastic, conv=layer.conv, pool=layer.pool, transposed=True, route=route)
