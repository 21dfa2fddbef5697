"""Residual-MLP denoiser of SynthER (Lu et al. 2023), the network F inside EDM's D(x, sigma)."""

from __future__ import annotations

import importlib.util
import math

import torch
from torch import nn

from synther_fast.config import DENOISER_BACKENDS, DenoiserConfig, validate
from synther_fast.kernels.precision import fused_linear_emulated

BACKENDS = DENOISER_BACKENDS


def picks_fused_layers(config: DenoiserConfig, on_cuda: bool) -> bool:
    """The dispatch rule: fused Triton layers (kernels/fused_linear.py) on CUDA, or when forced;
    the reference elsewhere, so that on CPU nothing slower than the reference is ever picked by
    default."""
    if config.backend in ("reference", "emulated"):
        return False
    if config.backend == "fused":
        return True
    return on_cuda and not config.layer_norm and importlib.util.find_spec("triton") is not None


class RandomFourierTimeEmbedding(nn.Module):
    """[c, sin(2 pi w c), cos(2 pi w c)] for k frozen frequencies w ~ N(0, 1): 2k + 1 features."""

    def __init__(self, n_frequencies: int) -> None:
        super().__init__()
        # A buffer, not a parameter: frozen, but saved in the state_dict so a loaded model matches.
        self.register_buffer("frequencies", torch.randn(n_frequencies))

    @property
    def out_features(self) -> int:
        return 2 * self.frequencies.numel() + 1

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        c = c_noise.reshape(-1, 1)
        phase = 2 * math.pi * c * self.frequencies.reshape(1, -1)
        return torch.cat([c, phase.sin(), phase.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """x + Linear(relu(x)), with an optional LayerNorm before the relu."""

    def __init__(self, width: int, layer_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(torch.relu(self.norm(x)))


class ResidualMLPDenoiser(nn.Module):
    """F(x_in, c_noise): proj(x_in) + time_mlp(c_noise) -> Linear(dim_t, width) -> residual blocks
    -> relu -> Linear(width, d_in)."""

    emulated_tf32_rounding = "rz"
    """How the 'emulated' backend rounds TF32 operands: 'rz' as Triton's tensor-core products,
    'rn' as cuBLAS (see synther_fast.kernels.precision)."""

    def __init__(self, config: DenoiserConfig, d_in: int, conditional: bool = False, null: str = "zero") -> None:
        super().__init__()
        validate(config)
        if d_in <= 0:
            raise ValueError(f"d_in must be positive, got {d_in}")
        self.config = config
        self.d_in = d_in
        self.proj = nn.Linear(d_in, config.dim_t)
        self.time_embedding = RandomFourierTimeEmbedding(config.fourier_features)
        self.time_mlp = nn.Sequential(
            nn.Linear(self.time_embedding.out_features, config.dim_t),
            nn.SiLU(),
            nn.Linear(config.dim_t, config.dim_t),
        )
        self.input_layer = nn.Linear(config.dim_t, config.width)
        self.blocks = nn.ModuleList(
            ResidualBlock(config.width, config.layer_norm) for _ in range(config.depth)
        )
        self.output_layer = nn.Linear(config.width, d_in)
        # The conditional parts come last, so every other parameter draws the same initial values
        # as in the unconditional model (and an unconditional model has none of them).
        self.conditional = conditional
        if conditional:
            # A scalar condition -> a dim_t embedding *added* to the input and time embeddings, not
            # concatenated as PGR does: the layers after it keep the unconditional shapes (the
            # fused blocks are untouched) and, with the zero null embedding, the unconditional
            # branch is exactly the unconditional network.
            self.cond_mlp = nn.Sequential(nn.Linear(1, config.dim_t), nn.SiLU(), nn.Linear(config.dim_t, config.dim_t))
            if null not in ("zero", "learned"):
                raise ValueError(f"null must be 'zero' or 'learned', got {null!r}")
            self.null_embedding = nn.Parameter(torch.zeros(config.dim_t), requires_grad=null == "learned")

    def condition_embedding(self, cond: torch.Tensor | None, keep: torch.Tensor | None = None,
                            rows: int | None = None) -> torch.Tensor | None:
        """The embedding added for (normalised) conditions ``cond`` (B,): the null embedding where
        ``keep`` (B,) is False, and for every row when ``cond`` is None (``rows`` of them)."""
        if not self.conditional:
            if cond is not None:
                raise ValueError("this denoiser is unconditional: it takes no condition")
            return None
        if cond is None:
            return self.null_embedding.expand(rows if rows is not None else 1, -1)
        emb = self.cond_mlp(cond.reshape(-1, 1).to(self.null_embedding.dtype))
        if keep is not None:
            emb = torch.where(keep.reshape(-1, 1), emb, self.null_embedding)
        return emb

    def uses_fused_blocks(self, x: torch.Tensor) -> bool:
        """Whether this forward runs the fused Triton layers (see :func:`picks_fused_layers`)."""
        return picks_fused_layers(self.config, x.is_cuda)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, *, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """F(x, c_noise[, condition]). A conditional model takes the rows' normalised conditions
        ``cond`` (B,) with an optional ``keep`` mask (False: the null embedding), or their
        precomputed :meth:`condition_embedding`; given neither it runs its unconditional branch."""
        h = self.proj(x) + self.time_mlp(self.time_embedding(c_noise))
        if embedding is None and (self.conditional or cond is not None):
            embedding = self.condition_embedding(cond, keep)
        if embedding is not None:
            if not self.conditional:
                raise ValueError("this denoiser is unconditional: it takes no condition")
            h = h + embedding
        if self.uses_fused_blocks(h):
            from synther_fast.kernels.fused_linear import fused_linear as linear
        elif self.config.backend == "emulated":
            # The fused path's maths at its precision, in plain PyTorch (any device; for studies).
            def linear(x, weight, bias, precision, relu_input=False, residual=False):
                return fused_linear_emulated(x, weight, bias, precision, self.emulated_tf32_rounding,
                                             relu_input, residual)
        else:
            h = self.input_layer(h)
            for block in self.blocks:
                h = block(h)
            return self.output_layer(torch.relu(h))
        # Fused / emulated: the layer into the blocks, the blocks and the relu + output layer all
        # run at the configured precision (the small time and input projections stay in PyTorch).
        p = self.config.precision
        h = linear(h, self.input_layer.weight, self.input_layer.bias, p)
        for block in self.blocks:
            h = linear(h, block.linear.weight, block.linear.bias, p, relu_input=True, residual=True)
        return linear(h, self.output_layer.weight, self.output_layer.bias, p, relu_input=True)
