"""A benchmark run's cache key names the model's own options at their resolved values,
so that changing a model default (relax_scale 0.1 -> 1) retrains instead of reusing."""

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import plan  # noqa: E402
from surrogate.records import ModelConfig  # noqa: E402


def _task(tmp_path, model, extra=None):
    scale = copy.deepcopy(plan.SCALES["smoke"])
    dj = plan.DataJob("rotation", "rotation", {}, str(tmp_path / "rotation.nc"))
    ts = plan._TaskSet(scale, {"rotation": dj}, tmp_path, "cpu", 1)
    ts.add("main", "rotation", model, model, (), 0, extra)
    return next(iter(ts.tasks.values()))


def test_key_records_the_default_of_the_models_own_options(tmp_path):
    t = _task(tmp_path, "relaxed_steer_unet")
    assert t.model_config["relax_scale"] == ModelConfig.defaults()["relax_scale"] == 1.0
    # the explicit default is the same run; another value is another run
    assert _task(tmp_path, "relaxed_steer_unet", {"relax_scale": 1.0}).key() == t.key()
    assert _task(tmp_path, "relaxed_steer_unet", {"relax_scale": 0.1}).key() != t.key()
    # a model without that option does not carry it
    assert "relax_scale" not in _task(tmp_path, "steer_unet").model_config
