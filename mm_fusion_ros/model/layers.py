"""Attention building blocks shared by the radar temporal encoder and the fusion module.

Written out (linear projections + matmul + softmax) rather than `nn.MultiheadAttention` so the
reshapes stay shape-agnostic (`-1` for the token count: ONNX export with any batch), the key
mask semantics are ours (True = valid key; callers guarantee one valid key per row, so the
softmax never sees an all -inf row and never yields NaN) and forward hooks see every Linear.
"""

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of `x` (queries) over `context` (keys/values)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x: (B, Nq, D); context: (B, Nk, D); key_mask: (B, Nk) bool, True = attend.
        b = x.shape[0]
        q = self.q(x).reshape(b, -1, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(context).reshape(b, -1, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)      # (B, h, Nk, hd) each
        scores = (q * self.scale) @ k.transpose(-2, -1)  # (B, h, Nq, Nk)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float('-inf'))
        attn = self.drop(scores.softmax(dim=-1))
        y = (attn @ v).transpose(1, 2).flatten(2)        # (B, Nq, D)
        return self.out(y)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mlp_ratio: float, dropout: float) -> None:
        hidden = max(1, int(round(dim * mlp_ratio)))
        super().__init__(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
            nn.Dropout(dropout))


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer encoder layer (self-attention + feed-forward)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, N, D) -> (B, N, D)
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, key_mask))
        return x + self.ffn(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Queries read a context (cross-attention), talk among themselves, then feed-forward."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_ctx = nn.LayerNorm(dim)
        self.cross = Attention(dim, num_heads, dropout)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x: (B, K, D) queries; context: (B, Nk, D); key_mask: (B, Nk) -> (B, K, D)
        x = x + self.drop(self.cross(self.norm_q(x), self.norm_ctx(context), key_mask))
        h = self.norm_self(x)
        x = x + self.drop(self.self_attn(h, h))
        return x + self.ffn(self.norm_ffn(x))
