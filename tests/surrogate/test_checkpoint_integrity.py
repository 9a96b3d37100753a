"""Checkpoint integrity: the digest covers the training state, an optional
HMAC signature gives provenance, crafted fields get one-line errors, modes follow umask."""

import os
import stat

import pytest
import torch

from surrogate import build_model
from surrogate.checkpoint import CheckpointError, load_model, read_checkpoint, save
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout

NORM = Normalization(FieldLayout(), (0.5, 0.5, 2.0), (0.0, 0.0, 0.3))


def _model():
    torch.manual_seed(0)
    return build_model("unet", T_in=2, hidden=4, depth=2)


def _state(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 2, 3, 8, 8)).square().mean().backward()
    opt.step()
    return {"epoch": 3, "optimizer": opt.state_dict(), "rng": {"torch": torch.get_rng_state(),
            "python": [3, [1, 2, 3], None]}, "best_valid_rmse": 0.25, "flag": True}


@pytest.fixture()
def last(tmp_path):
    model = _model()
    return save(model, tmp_path / "last.pt", normalization=NORM, metadata={"a": 1},
                training_state=_state(model))


def _rewrite(path, dest, edit):
    raw = torch.load(path, weights_only=True)
    edit(raw)
    torch.save(raw, dest)
    return dest


def test_training_state_round_trips(last):
    ts = read_checkpoint(last)["training_state"]
    assert ts["epoch"] == 3 and ts["best_valid_rmse"] == 0.25 and ts["flag"] is True
    assert ts["optimizer"]["state"][0]["exp_avg"].abs().sum() > 0


@pytest.mark.parametrize("edit", [
    lambda r: r["training_state"].__setitem__("epoch", 4),
    lambda r: r["training_state"].__setitem__("best_valid_rmse", 0.2500001),
    lambda r: r["training_state"].__setitem__("flag", 1),     # same value, other type
    lambda r: r["training_state"]["rng"]["torch"].__setitem__(5, 7),
    lambda r: r["training_state"]["optimizer"]["state"][0]["exp_avg"].view(-1).__setitem__(
        0, 1.0),
    lambda r: r["training_state"]["optimizer"]["param_groups"][0].__setitem__("lr", 1.0),
    lambda r: r["training_state"]["rng"]["python"][1].append(4),
    lambda r: r.__setitem__("torch_version", "0.0"),
    lambda r: r.pop("training_state"),
], ids=["epoch", "float", "bool-vs-int", "rng-byte", "optimizer-moment", "lr",
        "list", "version-field", "dropped-state"])
def test_any_change_to_training_state_is_refused(last, tmp_path, edit):
    bad = _rewrite(last, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(bad)


def test_single_bit_flips_in_training_state_never_pass_silently(last, tmp_path):
    """Flip bits all over the stored RNG and optimiser tensors: every flip is refused."""
    raw = torch.load(last, weights_only=True)
    targets = [raw["training_state"]["rng"]["torch"],
               raw["training_state"]["optimizer"]["state"][0]["exp_avg_sq"]]
    for t in targets:
        b = t.view(-1).view(torch.uint8)
        for i in range(0, b.numel(), max(1, b.numel() // 25)):
            b[i] ^= 1 << (i % 8)
            torch.save(raw, tmp_path / "flip.pt")
            with pytest.raises(CheckpointError, match="checksum"):
                read_checkpoint(tmp_path / "flip.pt")
            b[i] ^= 1 << (i % 8)
    torch.save(raw, tmp_path / "restored.pt")
    read_checkpoint(tmp_path / "restored.pt")


def test_hmac_signature(tmp_path):
    model = _model()
    signed = save(model, tmp_path / "s.pt", normalization=NORM, key="secret")
    plain = save(model, tmp_path / "p.pt", normalization=NORM)
    assert read_checkpoint(signed, key="secret")["model_config"]["name"] == "unet"
    assert read_checkpoint(signed)  # no key: still corruption-checked, not verified
    load_model(signed, key=b"secret")
    with pytest.raises(CheckpointError, match="signature mismatch"):
        read_checkpoint(signed, key="other")
    with pytest.raises(CheckpointError, match="not signed"):
        read_checkpoint(plain, key="secret")

    # an attacker edits the weights and recomputes the (unkeyed) digest: without the key
    # the edit passes the corruption check, with the key it is refused
    from surrogate.checkpoint import _digest

    def forge(r):
        k = next(iter(r["state_dict"]))
        r["state_dict"][k] = r["state_dict"][k] + 1
        r["digest"] = _digest(r)
    forged = _rewrite(signed, tmp_path / "forged.pt", forge)
    read_checkpoint(forged)
    with pytest.raises(CheckpointError, match="signature mismatch"):
        read_checkpoint(forged, key="secret")
    with pytest.raises(ValueError, match="non-empty"):
        save(model, tmp_path / "e.pt", key="")


@pytest.mark.parametrize("edit,match", [
    (lambda r: r.__setitem__("format_version", "1"), "format_version must be a positive"),
    (lambda r: r.__setitem__("format_version", None), "format_version must be a positive"),
    (lambda r: r.__setitem__("state_dict", [1, 2]), "'state_dict' must map names"),
    (lambda r: r.__setitem__("metadata", {"a": 1}), "'metadata' must be a JSON string"),
    (lambda r: r.__setitem__("metadata", "[1, 2]"), "'metadata' must hold a JSON object"),
    (lambda r: r.__setitem__("metadata", "{oops"), "'metadata' is not valid JSON"),
    (lambda r: r.__setitem__("normalization", '{"scale": [1]}'), "invalid normalization"),
    (lambda r: r.__setitem__("model_config", '{"hidden": 4}'), "names no model"),
    (lambda r: r.__setitem__("training_state", [1]), "'training_state' must be a dict"),
    # metadata fields every reader relies on are named (T_in="four" was a bare int() error)
    (lambda r: r.__setitem__("metadata", '{"T_in": "four"}'),
     "bad.pt: metadata field 'T_in' must be an integer, got 'four'"),
    (lambda r: r.__setitem__("metadata", '{"K": 2.5}'), "metadata field 'K' must be an integer"),
    (lambda r: r.__setitem__("metadata", '{"data": {"grid": {"ny": "x", "nx": 8}}}'),
     "metadata field 'data.grid.ny' must be an integer, got 'x'"),
    (lambda r: r.__setitem__("metadata", '{"data": {"dt": "fast"}}'),
     "metadata field 'data.dt' must be a number"),
    (lambda r: r.__setitem__("metadata", '{"splits": {"train": {}}}'),
     "metadata field 'splits.train.sims' is missing"),
    (lambda r: r.__setitem__("metadata", '{"layout": 3}'),
     "metadata field 'layout' is not a field layout"),
])
def test_crafted_fields_give_one_line_errors(tmp_path, edit, match):
    """Fields of the wrong type are named, even with a recomputed digest."""
    from surrogate.checkpoint import _digest
    good = save(_model(), tmp_path / "g.pt", normalization=NORM)

    def craft(r):
        edit(r)
        try:
            r["digest"] = _digest(r)
        except TypeError:
            pass
    bad = _rewrite(good, tmp_path / "bad.pt", craft)
    with pytest.raises(CheckpointError, match=match) as e:
        read_checkpoint(bad)
    assert "\n" not in str(e.value)


def test_unbuildable_model_config_is_a_checkpoint_error(tmp_path):
    from surrogate.checkpoint import _digest
    good = save(_model(), tmp_path / "g.pt", normalization=NORM)

    def craft(r):
        r["model_config"] = '{"name": "unet", "hidden": "four"}'
        r["digest"] = _digest(r)
    with pytest.raises(CheckpointError, match="cannot be built"):
        load_model(_rewrite(good, tmp_path / "bad.pt", craft))


def test_bad_model_config_field_names_the_file_and_field(tmp_path):
    from surrogate.checkpoint import _digest
    from surrogate.forecast import load
    good = save(_model(), tmp_path / "g.pt", normalization=NORM)

    def craft(r):
        r["model_config"] = r["model_config"].replace('"T_in": 2', '"T_in": "four"')
        r["digest"] = _digest(r)
    bad = _rewrite(good, tmp_path / "bad.pt", craft)
    with pytest.raises(CheckpointError, match=r"bad\.pt: .*T_in must be an integer, got "
                                              r"'four'"):
        load(bad)


def test_format_1_checkpoints_still_load(tmp_path):
    """A checkpoint of format 1 (digest without training state) reads as before."""
    from surrogate.checkpoint import _digest_v1
    good = save(_model(), tmp_path / "g.pt", normalization=NORM, metadata={"k": 2})

    def downgrade(r):
        r["format_version"] = 1
        r["digest"] = _digest_v1(r["model_config"], r["state_dict"], r["normalization"],
                                 r["metadata"])
    old = _rewrite(good, tmp_path / "v1.pt", downgrade)
    assert read_checkpoint(old)["metadata"] == {"k": 2}


def test_checkpoint_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = save(_model(), tmp_path / "m.pt", normalization=NORM)
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.umask(0o077)
        p = save(_model(), tmp_path / "m2.pt", normalization=NORM)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    finally:
        os.umask(old)
