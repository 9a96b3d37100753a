"""One U-Net skeleton for every surrogate: plain, group-equivariant, relaxed, steerable.

The network acts on regular feature fields ``(B, F |G|, H, W)`` (field-major channels).
The models differ only in the convolution class (a :class:`RegularConv`-like layer);
the plain ``unet`` is the trivial group (``|G| = 1``, the lift is the identity).

    (B, T_in, C, H, W) --lift each frame--> (B, T_in n_f |G|, H, W)
        [++ lifted aux fields (B, n_aux |G|, H, W) when the model has breaking inputs]
        --stem conv--> encoder [residual blocks, 2x2 avg pool] x depth
        --> decoder [x2 upsample, concat skip, residual blocks] x (depth - 1)
        --1x1 conv--> (B, n_f |G|, H, W) --project--> (B, C, H, W)
        residual: x[t+1] = x[t] + delta_scale * out   (delta_scale: buffer (C,), default 1)

Breaking inputs (:mod:`surrogate.breaking`) are static fields lifted like the state
(vectors rho_1, scalars trivial) and concatenated to the lifted history before the stem.

Exact equivariance needs a square grid whose side is divisible by ``2**(depth-1)``
(pooling on even grids) and an equivariant convolution class.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from ..breaking import BreakingInputs
from ..groups import Group, get_group
from ..symmetry import DEFAULT_LAYOUT, FieldLayout
from ..layers.blocks import Downsample, ResidualBlock, Upsample, concat_fields
from ..layers.regular import FieldLift, FieldProjection, RegularConv

__all__ = ["FieldUNet"]


class FieldUNet(nn.Module):
    """U-Net surrogate ``(B, T_in, C, H, W) [, aux (B, C_aux, H, W)] -> (B, C, H, W)`` on
    regular feature fields.

    Args:
        conv_cls: convolution class ``conv_cls(group, in_fields, out_fields, kernel_size,
            **conv_kwargs)`` acting on regular fields.
        group: a :class:`Group` or its name.
        layout: which input channels are vectors / scalars (:class:`FieldLayout` or dict).
        T_in: number of past frames.
        hidden: number of fields at the first level; doubles at every level.
        depth: number of U-Net levels (``depth - 1`` poolings).
        kernel_size: odd kernel size of the 3x3-type convolutions.
        alpha: weight of the equivariance penalty.
        residual: predict ``last frame + delta_scale * out`` instead of the frame itself;
            ``delta_scale`` (a ``(C,)`` buffer saved with the weights, 1 by default) is
            set by training to the ratio of the normalised one-step change to the
            normalised state (:meth:`set_delta_scale`).
        num_blocks: residual blocks per level (encoder and decoder).
        upsample: ``"bilinear"`` or ``"nearest"``.
        norm_groups: GroupNorm groups (whole fields per group).
        conv_kwargs: extra keyword arguments of ``conv_cls`` (e.g. ``num_banks``).
        name: model name stored in :attr:`config`.
        breaking_inputs: any of ``"frame"``, ``"cause"``, ``"coords"`` (see
            :mod:`surrogate.breaking`); their static fields enter :meth:`forward` as
            ``aux``. Empty: the network is exactly the one without this option.
    """

    def __init__(self, conv_cls: type[nn.Module], group: Group | str = "C4",
                 layout: FieldLayout | dict = DEFAULT_LAYOUT, T_in: int = 10, hidden: int = 16,
                 depth: int = 4, kernel_size: int = 3, alpha: float = 0.0,
                 residual: bool = True, num_blocks: int = 1, upsample: str = "bilinear",
                 norm_groups: int = 8, conv_kwargs: dict[str, Any] | None = None,
                 name: str = "custom", breaking_inputs: Iterable[str] = ()) -> None:
        super().__init__()
        group = get_group(group) if isinstance(group, str) else group
        layout = FieldLayout.of(layout)
        for key, val in (("T_in", T_in), ("hidden", hidden), ("depth", depth),
                         ("num_blocks", num_blocks)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{key} must be a positive integer, got {val!r}")
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        conv_kwargs = dict(conv_kwargs or {})
        self.group, self.layout, self.T_in, self.depth = group, layout, T_in, depth
        self.alpha, self.residual = float(alpha), bool(residual)
        self.breaking = BreakingInputs(breaking_inputs)
        self.exported = False
        self.config: dict[str, Any] = {
            "name": name, "T_in": T_in, "hidden": hidden, "depth": depth,
            "kernel_size": kernel_size, "group": group.name, "alpha": float(alpha),
            "layout": layout.to_dict(), "residual": bool(residual), "num_blocks": num_blocks,
            "upsample": upsample, "norm_groups": norm_groups,
            "breaking_inputs": list(self.breaking.names), **conv_kwargs}

        if conv_kwargs.get("grid") is not None:  # position-dependent layers: one grid per level
            conv_kwargs["grid"] = _level_grid(conv_kwargs["grid"], 0, depth)
            self.config["grid"] = list(conv_kwargs["grid"])

        def conv_at(level: int):
            kw = dict(conv_kwargs)
            if kw.get("grid") is not None:
                kw["grid"] = _level_grid(kw["grid"], level, depth)
            return partial(_make_conv, conv_cls, kw)

        def block(level: int, w_in: int, w_out: int) -> ResidualBlock:
            return ResidualBlock(conv_at(level), group, w_in, w_out, kernel_size=kernel_size,
                                 norm_groups=norm_groups)
        conv = conv_at(0)
        self.lift = FieldLift(layout, group)
        n_f = self.lift.out_fields
        # aux fields lifted as the state is (vectors rho_1, scalars trivial); no buffers
        # are saved, so a model without breaking inputs has the same state_dict as before
        self.aux_lift = (FieldLift(self.breaking.layout, group)
                         if self.breaking.num_channels else None)
        n_aux = self.aux_lift.out_fields if self.aux_lift is not None else 0
        widths = [hidden * 2 ** i for i in range(depth)]
        self.widths = widths

        self.stem = conv(group, T_in * n_f + n_aux, widths[0], kernel_size)
        self.down = Downsample()
        self.up = Upsample(upsample)
        self.encoder = nn.ModuleList()
        for i, w in enumerate(widths):
            w_in = widths[max(i - 1, 0)]
            self.encoder.append(nn.Sequential(*[block(i, w_in if j == 0 else w, w)
                                                for j in range(num_blocks)]))
        self.decoder = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            w_in = widths[i + 1] + widths[i]
            self.decoder.append(nn.Sequential(*[block(i, w_in if j == 0 else widths[i],
                                                      widths[i])
                                                for j in range(num_blocks)]))
        self.head = conv(group, widths[0], n_f, 1)
        self.project = FieldProjection(layout, group)
        self.register_buffer("delta_scale", torch.ones(layout.num_channels))

    # ------------------------------------------------------------------ residual head
    @torch.no_grad()
    def set_delta_scale(self, values) -> None:
        """Set the residual's per-channel scale ``(C,)``; a vector field needs one value
        for both components (so the step stays equivariant)."""
        v = torch.as_tensor(values, dtype=self.delta_scale.dtype).reshape(-1)
        if v.numel() != self.layout.num_channels or not torch.isfinite(v).all() \
                or (v <= 0).any():
            raise ValueError(f"delta_scale needs {self.layout.num_channels} positive finite "
                             f"values, got {v.tolist()}")
        if any(v[i] != v[j] for i, j in self.layout.vector_indices):
            raise ValueError("delta_scale must be equal for both components of a vector")
        self.delta_scale.copy_(v.to(self.delta_scale.device))

    @torch.no_grad()
    def init_persistence(self) -> None:
        """Zero the output head (filters and biases), so that a residual model predicts
        exactly ``x[t+1] = x[t]`` (persistence) until it is trained; gradients still
        reach the head at once, and the body from the first step on."""
        if not self.residual:
            raise ValueError("init_persistence needs a residual model (residual=True)")
        for name, p in self.head.named_parameters():
            if name != "relaxed_weights":  # the relaxed mixing weights stay at 1/L
                p.zero_()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # checkpoints written before the delta scale existed predict x[t] + out
        key = prefix + "delta_scale"
        if key not in state_dict:
            state_dict = {**state_dict, key: torch.ones_like(self.delta_scale)}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"expected input (B, T_in, C, H, W), got shape {tuple(x.shape)}")
        _, t, c, h, w = x.shape
        if t != self.T_in:
            raise ValueError(f"expected T_in={self.T_in} past frames, got {t} "
                             f"(input shape {tuple(x.shape)})")
        if c != self.layout.num_channels:
            raise ValueError(f"expected {self.layout.num_channels} channels "
                             f"{self.layout.channels}, got {c} (input shape {tuple(x.shape)})")
        m = 2 ** (self.depth - 1)
        if h % m or w % m:
            raise ValueError(f"H and W must be divisible by 2**(depth-1) = {m} for depth "
                             f"{self.depth}, got {h}x{w}")

    @property
    def aux_layout(self) -> FieldLayout:
        """:class:`FieldLayout` of all aux channels (empty without breaking inputs)."""
        return self.breaking.layout

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, T_in, C, H, W)`` -> ``(B, C, H, W)``.

        ``aux (B or 1, C_aux, H, W)``: the static fields of the breaking inputs, holding
        every channel of :attr:`aux_layout`, or only the data ones (``cause``; ``frame``
        and ``coords`` are then made by the model). None without breaking inputs, or
        when none of them needs data."""
        self._check_input(x)
        b, t, c, h, w = x.shape
        z = self.lift(x.reshape(b * t, c, h, w)).reshape(b, -1, h, w)
        if self.aux_lift is not None:
            a = self.breaking(aux, b, h, w, x.dtype, x.device)
            z = torch.cat([z, self.aux_lift(a)], dim=1)
        elif aux is not None:
            raise ValueError(f"model {self.config['name']!r} has no breaking inputs; "
                             "aux must be None")
        z = self.stem(z)
        skips = []
        for i, enc in enumerate(self.encoder):
            if i:
                z = self.down(z)
            z = enc(z)
            skips.append(z)
        skips.pop()
        for dec in self.decoder:
            z = dec(concat_fields(self.up(z), skips.pop()))
        out = self.project(self.head(z))
        if not self.residual:
            return out
        return x[:, -1] + out * self.delta_scale.to(out.dtype).view(1, -1, 1, 1)

    # ------------------------------------------------------------------ relaxation
    def field_convs(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, layer)`` for every convolution on regular fields (a
        :class:`RegularConv`; none of them holds submodules)."""
        return ((n, m) for n, m in self.named_modules() if isinstance(m, RegularConv))

    def equivariance_penalty(self) -> torch.Tensor:
        """``alpha * sum`` of the layers' raw penalties; a 0-dim tensor (0 when strict)."""
        ref = next(self.parameters())
        total = ref.new_zeros(())
        for _, layer in self.field_convs():
            total = total + layer.equivariance_penalty().to(total)
        return self.alpha * total

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``"layer.path.key" -> tensor`` for every relaxed layer ({} when strict)."""
        out = {}
        for name, layer in self.field_convs():
            for key, val in layer.relaxation_weights().items():
                out[f"{name}.{key}"] = val
        return out

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self) -> "FieldUNet":
        """A deep copy whose every regular-field convolution is replaced by its exported
        ``nn.Conv2d`` (kernels expanded once): same outputs, no basis expansion."""
        model = copy.deepcopy(self)
        for name, layer in list(model.field_convs()):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, layer.export())
        model.exported = True
        return model

    def extra_repr(self) -> str:
        return (f"name={self.config['name']!r}, group={self.group.name}, T_in={self.T_in}, "
                f"widths={self.widths}, breaking_inputs={list(self.breaking.names)}, "
                f"exported={self.exported}")


def _level_grid(grid, level: int, depth: int) -> tuple[int, int]:
    """The ``(H, W)`` of U-Net level ``level`` for input grid ``grid``."""
    h, w = (int(g) for g in grid)
    m = 2 ** (depth - 1)
    if h % m or w % m:
        raise ValueError(f"grid {h}x{w} must be divisible by 2**(depth-1) = {m}")
    return h >> level, w >> level


def _make_conv(conv_cls, conv_kwargs, group, in_fields, out_fields, kernel_size):
    return conv_cls(group, in_fields, out_fields, kernel_size, **conv_kwargs)
