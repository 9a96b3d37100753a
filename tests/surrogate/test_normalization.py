import numpy as np
import pytest
import torch

from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout, transform_fields

LAYOUT = FieldLayout()


def test_fit_uses_one_scale_per_vector_and_no_shift():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(5, 3, 8, 8))
    data[:, 0] = 3.0 + 2.0 * data[:, 0]   # u with a mean: must NOT be shifted
    data[:, 2] = 10.0 + 4.0 * data[:, 2]  # density: shifted and scaled
    n = Normalization.fit(data, LAYOUT, channel_dim=1)
    assert n.shift[0] == n.shift[1] == 0.0
    assert n.scale[0] == n.scale[1]
    assert n.scale[0] == pytest.approx(np.sqrt(np.mean(data[:, 0] ** 2 + data[:, 1] ** 2) / 2))
    assert n.shift[2] == pytest.approx(data[:, 2].mean())
    assert n.scale[2] == pytest.approx(data[:, 2].std())


def test_normalize_commutes_with_rotation_and_round_trips():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    n = Normalization(LAYOUT, (2.0, 2.0, 3.0), (0.0, 0.0, 1.5))
    assert torch.allclose(n.denormalize(n.normalize(x)), x)
    for k in range(4):
        a = n.normalize(transform_fields(x, LAYOUT, k, flip=bool(k % 2)))
        b = transform_fields(n.normalize(x), LAYOUT, k, flip=bool(k % 2))
        assert torch.allclose(a, b)


def test_rejects_rotation_breaking_statistics():
    with pytest.raises(ValueError, match="one scale for both components"):
        Normalization(LAYOUT, (1.0, 2.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="no shift"):
        Normalization(LAYOUT, (1.0, 1.0, 1.0), (0.1, 0.0, 0.0))
    with pytest.raises(ValueError, match="NaN"):
        Normalization.fit(np.full((1, 3, 2, 2), np.nan), LAYOUT, channel_dim=1)


def test_dict_round_trip():
    n = Normalization(LAYOUT, (2.0, 2.0, 3.0), (0.0, 0.0, 1.5))
    assert Normalization.from_dict(n.to_dict()) == n
