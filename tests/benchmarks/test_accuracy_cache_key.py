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


def test_key_does_not_depend_on_where_the_cache_lies(tmp_path):
    """A cache moved or copied to another folder is reused: the key takes the run's paths
    relative to the cache; the old key (absolute paths) is kept to recognise old runs."""
    a, b = _task(tmp_path / "a", "unet"), _task(tmp_path / "elsewhere" / "b", "unet")
    assert a.out != b.out and a.key() == b.key()
    assert a.legacy_key() != b.legacy_key()
    # the data file is part of the key: another dataset is another run
    other = _task(tmp_path / "a", "unet")
    other.data_path = str(tmp_path / "a" / "symmetric.nc")
    assert other.key() != a.key()


def test_a_result_under_the_old_key_is_reused_and_rekeyed(tmp_path):
    import json
    from accuracy import run
    t = _task(tmp_path, "unet")
    res = tmp_path / "result.json"
    res.write_text(json.dumps({"key": t.legacy_key(), "scores": {"x": 1}}))
    assert run._cached(t, t.key(), res)["scores"] == {"x": 1}
    assert json.loads(res.read_text())["key"] == t.key()     # re-keyed in place
    res.write_text(json.dumps({"key": "0123456789abcdef", "scores": {}}))
    assert run._cached(t, t.key(), res) is None               # another run's settings
    res.write_text("{broken")
    assert run._cached(t, t.key(), res) is None


def test_a_second_benchmark_waits_for_the_run_another_one_trains(tmp_path):
    """Two benchmark processes on one cache never train the same run folder at once."""
    import subprocess
    import time
    from accuracy import run
    out = tmp_path / "runs" / "seed0"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from surrogate.folders import hold; from pathlib import Path; "
         "cm = hold(Path(sys.argv[2]).parent / (Path(sys.argv[2]).name + '.bench')); "
         "cm.__enter__(); print('held', flush=True); time.sleep(1.5)",
         str(ROOT), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        with run._claim(out, poll=0.05):
            waited = time.perf_counter() - t0
        assert waited > 1.0                      # the holder kept it 1.5 s after "held"
    finally:
        holder.kill()
        holder.wait()
    with run._claim(out, poll=0.05):             # free again at once
        pass
