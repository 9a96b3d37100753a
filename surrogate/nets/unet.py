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

Breaking inputs (:mod:`surrogate.breaking`) are lifted like the state (vectors rho_1,
scalars trivial). Exact equivariance needs a square grid whose side is divisible by
``2**(depth-1)`` (pooling on even grids) and an equivariant convolution class.
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

    The options are :class:`surrogate.records.ModelConfig`'s (``group`` may also be a
    :class:`Group`), plus ``conv_cls``, called as ``conv_cls(group, in_fields, out_fields,
    kernel_size, **conv_kwargs)`` on regular fields, and ``name`` (stored in
    :attr:`config`). ``residual``: predict ``last frame + delta_scale * out``, with
    ``delta_scale`` a ``(C,)`` buffer saved with the weights (1 by default; training sets
    the ratio of the normalised one-step change to the normalised state,
    :meth:`set_delta_scale`). Without ``breaking_inputs`` the network is exactly the one
    before that option.
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

        grid = conv_kwargs.get("grid")
        if grid is not None:  # position-dependent layers: one grid per level
            self.config["grid"] = list(_level_grid(grid, 0, depth))

        def conv_at(level: int):
            at = {} if grid is None else {"grid": _level_grid(grid, level, depth)}
            return partial(conv_cls, **{**conv_kwargs, **at})

        def stage(level: int, w_in: int, w_out: int) -> nn.Sequential:
            """``num_blocks`` residual blocks ``w_in -> w_out -> ... -> w_out`` fields."""
            return nn.Sequential(*[ResidualBlock(conv_at(level), group, w_out if j else w_in,
                                                 w_out, kernel_size, norm_groups)
                                   for j in range(num_blocks)])
        self.lift = FieldLift(layout, group)
        n_f = self.lift.out_fields
        # no saved buffers: a model without breaking inputs has the state_dict of before
        self.aux_lift = (FieldLift(self.breaking.layout, group)
                         if self.breaking.layout.num_channels else None)
        n_aux = self.aux_lift.out_fields if self.aux_lift is not None else 0
        self.widths = widths = [hidden * 2 ** i for i in range(depth)]
        self.stem = conv_at(0)(group, T_in * n_f + n_aux, widths[0], kernel_size)
        self.down = Downsample()
        self.up = Upsample(upsample)
        self.encoder = nn.ModuleList(stage(i, widths[max(i - 1, 0)], w)
                                     for i, w in enumerate(widths))
        self.decoder = nn.ModuleList(stage(i, widths[i + 1] + widths[i], widths[i])
                                     for i in reversed(range(depth - 1)))
        self.head = conv_at(0)(group, widths[0], n_f, 1)
        self.project = FieldProjection(layout, group)
        self.register_buffer("delta_scale", torch.ones(layout.num_channels))

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
        """``x (B, T_in, C, H, W)`` -> ``(B, C, H, W)``; ``aux (B or 1, C_aux, H, W)``: the
        static fields of the breaking inputs, as :class:`BreakingInputs` takes them (None
        without breaking inputs, or when none of them needs data)."""
        self._check_input(x)
        b, t, c, h, w = x.shape
        z = self.lift(x.reshape(b * t, c, h, w)).reshape(b, -1, h, w)
        if self.aux_lift is not None:
            a = self.breaking(aux, b, h, w, x.dtype, x.device)
            z = torch.cat([z, self.aux_lift(a)], dim=1)
        elif aux is not None:
            raise ValueError(f"model {self.config['name']!r} has no breaking inputs; "
                             "aux must be None")
        skips = [self.encoder[0](self.stem(z))]
        for enc in self.encoder[1:]:
            skips.append(enc(self.down(skips[-1])))
        z = skips.pop()
        for dec in self.decoder:
            z = dec(concat_fields(self.up(z), skips.pop()))
        out = self.project(self.head(z))
        if not self.residual:
            return out
        return x[:, -1] + out * self.delta_scale.to(out.dtype).view(1, -1, 1, 1)

    def field_convs(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, layer)`` for every convolution on regular fields (a
        :class:`RegularConv`; none of them holds submodules)."""
        return ((n, m) for n, m in self.named_modules() if isinstance(m, RegularConv))

    def equivariance_penalty(self) -> torch.Tensor:
        """``alpha * sum`` of the layers' raw penalties; a 0-dim tensor (0 when strict)."""
        total = next(self.parameters()).new_zeros(())
        for _, layer in self.field_convs():
            total = total + layer.equivariance_penalty().to(total)
        return self.alpha * total

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``"layer.path.key" -> tensor`` for every relaxed layer ({} when strict)."""
        return {f"{name}.{key}": val for name, layer in self.field_convs()
                for key, val in layer.relaxation_weights().items()}

    @torch.no_grad()
    def export(self) -> "FieldUNet":
        """A deep copy whose every regular-field convolution is replaced by its exported
        ``nn.Conv2d`` (kernels expanded once): same outputs, no basis expansion."""
        model = copy.deepcopy(self)
        for name, layer in list(model.field_convs()):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, layer.export())
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
