"""NT-Xent."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.loss import NTXentLoss, nt_xent


def test_nt_xent_is_near_log_2n_minus_1_for_unrelated_views():
    torch.manual_seed(0)
    z1, z2 = torch.randn(64, 32), torch.randn(64, 32)
    assert nt_xent(z1, z2, temperature=10.0).item() == pytest.approx(math.log(127), rel=0.02)


def test_nt_xent_is_small_when_pairs_match_and_others_differ():
    z = torch.eye(8) * 5
    assert nt_xent(z, z.clone(), temperature=0.1).item() < 1e-3


def test_nt_xent_prefers_the_true_pairing_over_a_shuffled_one():
    torch.manual_seed(1)
    z1 = torch.randn(16, 8)
    z2 = z1 + 0.05 * torch.randn(16, 8)
    assert nt_xent(z1, z2, 0.1) < nt_xent(z1, z2[torch.randperm(16)], 0.1)


def test_nt_xent_gradients_flow_and_shapes_are_checked():
    z1 = torch.randn(4, 3, requires_grad=True)
    NTXentLoss(0.5)(z1, torch.randn(4, 3)).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
    with pytest.raises(ValueError, match="views differ in shape"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)
