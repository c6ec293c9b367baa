"""NT-Xent, the contrastive loss of SimCLR/CLMR, with in-batch negatives."""

from __future__ import annotations

import torch
from torch import nn


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy over a batch of positive pairs.

    With z = normalize([z1; z2]) (2N rows) and s_ij = z_i . z_j / tau, each row i has one
    positive p(i) (its pair) and 2N - 2 negatives (every other row):

        L = -1/(2N) sum_i log( exp(s_i,p(i)) / sum_{k != i} exp(s_ik) )

    The temperature tau sharpens (small tau) or flattens (large tau) the softmax over
    candidates: small values put almost all the gradient on the hardest negatives.

    Args:
        z1: (N, d) projections of the first views.
        z2: (N, d) projections of the second views; row i is the positive of z1 row i.
        temperature: tau > 0.

    Returns:
        Scalar loss; log(2N - 1) for random embeddings, 0 for a perfect separation.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"views differ in shape: {tuple(z1.shape)} vs {tuple(z2.shape)}")
    n = z1.shape[0]
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    sims = z @ z.T / temperature  # (2N, 2N)
    sims.fill_diagonal_(float("-inf"))  # a view is not its own candidate
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return nn.functional.cross_entropy(sims, targets)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent` with a fixed temperature."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Loss of the pairs (z1[i], z2[i])."""
        return nt_xent(z1, z2, self.temperature)
