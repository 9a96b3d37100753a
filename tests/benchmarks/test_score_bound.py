"""The bound and the lines of benchmarks/score_bound.py (no checkpoint needed)."""

import math
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import score_bound as SB  # noqa: E402
from surrogate.normalization import Normalization  # noqa: E402
from surrogate.symmetry import FieldLayout  # noqa: E402


def test_density_alone_is_bounded_at_zero():
    assert SB.density_bound(["u", "v", "density"]) == (-math.inf, -math.inf, 0.0)


def test_with_bound_replaces_whatever_the_checkpoint_recorded():
    lay = FieldLayout()
    recorded = Normalization.identity(lay)
    model = SimpleNamespace(normalization=Normalization(
        lay, recorded.scale, recorded.shift, lower_bound=(None, None, 0.0)))
    assert SB.with_bound(model, None).normalization.lower_bound is None
    b = SB.density_bound(lay.channels)
    assert SB.with_bound(model, b).normalization.lower_bound == b


def test_ratio_line_divides_each_group_by_persistence():
    line = SB.ratio_line("test-domain", "seed 0", {"velocity": 1.0, "all": 3.0},
                         {"velocity": 2.0, "all": 4.0})
    assert line == "test-domain seed 0" + " " * 18 + " 0.500 / 0.750"
