"""Training noise is isotropic: its law commutes with the group action."""

import pytest
import torch

from surrogate import FieldLayout
from surrogate.symmetry import transform_fields
from train.objective import add_input_noise

LAYOUT = FieldLayout()


def test_noise_has_the_asked_std_per_channel_and_is_centred():
    x = torch.zeros(64, 2, 3, 32, 32, dtype=torch.float64)
    std = torch.tensor([0.2, 0.2, 0.05])
    n = add_input_noise(x, std, torch.Generator().manual_seed(0))
    got = n.transpose(0, 2).reshape(3, -1)
    torch.testing.assert_close(got.std(dim=1), std.double(), rtol=0.01, atol=0)
    assert got.mean(dim=1).abs().max() < 0.01 * std.max()


@pytest.mark.parametrize("k,flip", [(1, False), (2, False), (3, False), (1, True)])
def test_rotated_noise_has_the_same_law(k, flip):
    """g.(x + n) - g.x = g.n: for a vector with one std, g.n has the same per-channel
    std and no correlation between components, i.e. the same Gaussian law as n."""
    x = torch.randn(16, 2, 3, 32, 32, dtype=torch.float64)
    std = torch.tensor([0.3, 0.3, 0.1])
    xn = add_input_noise(x, std, torch.Generator().manual_seed(1))
    g = lambda a: torch.stack([transform_fields(a[b], LAYOUT, k=k, flip=flip)
                               for b in range(a.shape[0])])
    gn = (g(xn) - g(x)).transpose(0, 2).reshape(3, -1)
    n = (xn - x).transpose(0, 2).reshape(3, -1)
    torch.testing.assert_close(gn.std(dim=1), n.std(dim=1), rtol=0.02, atol=0)
    cov = torch.corrcoef(gn)
    assert cov[0, 1].abs() < 0.03 and cov[0, 2].abs() < 0.03  # ~5 sigma at n = 32768
