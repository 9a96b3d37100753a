"""Symmetry discovery: per-element step errors, the keep rule and its verdict, and the
irrep energies of relaxed group-conv weights, on models whose symmetry is known."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import surrogate
from evaluate.cli import main
from evaluate.discovery import (KEEP_TOLERANCE, discover_symmetry, element_errors,
                                element_words, irrep_energy, judge, layer_symmetries,
                                real_irreps, step_error, symmetry_markdown)
from evaluate.equivariance import relaxation_summary
from surrogate.groups import get_group
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout, transform_fields

TINY = dict(T_in=2, hidden=2, depth=2, norm_groups=1)
LAYOUT = FieldLayout()
ALL = ["e", "r", "r2", "r3", "s", "rs", "r2s", "r3s"]
SIGNED = ["A1 (r:+1, s:+1)", "A2 (r:+1, s:-1)", "B1 (r:-1, s:+1)", "B2 (r:-1, s:-1)"]


def history(seed=0, n=16, b=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, 3, n, n, generator=g, dtype=torch.float64)


def mirror(t):
    """The mirror x -> -x, g = (0, 1)."""
    return transform_fields(t, LAYOUT, 0, True)


class MirrorSymmetrized(nn.Module):
    """f(x) = (h(x) + s h(s x)) / 2: equivariant to the mirror s only."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, x):
        return (self.inner(x) + mirror(self.inner(mirror(x)))) / 2


class ConstantDrift(nn.Module):
    """f(x) = x_T + (1, 0, 0): a step of one unit of u everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))

    def forward(self, x):
        return x[:, -1] + self.shift


# -- element naming ------------------------------------------------------------------
@pytest.mark.parametrize("g,where,vector", [
    ((0, 0), (2, 1), (1, 0)), ((1, 0), (-1, 2), (0, 1)), ((2, 0), (-2, -1), (-1, 0)),
    ((3, 0), (1, -2), (0, -1)), ((0, 1), (-2, 1), (-1, 0)), ((2, 1), (2, -1), (1, 0)),
    ((3, 1), (1, 2), (0, 1)), ((1, 1), (-1, -2), (0, -1))])
def test_element_words_say_what_transform_fields_does(g, where, vector):
    """A point at (x, y) = (2, 1) carrying the vector (1, 0) lands at ``where`` with
    ``vector``; the words name the same map."""
    a = torch.zeros(3, 5, 5, dtype=torch.float64)
    a[:, 1 + 2, 2 + 2] = torch.tensor([1.0, 0.0, 1.0])  # u, v, density; row = y + 2
    b = transform_fields(a, LAYOUT, g[0], bool(g[1]))
    i, j = divmod(int(b[2].argmax()), 5)
    assert (j - 2, i - 2) == where
    assert tuple(b[:2, i, j].tolist()) == vector
    maps = {"identity": (2, 1), "quarter turn (+90°)": (-1, 2), "half turn": (-2, -1),
            "three-quarter turn (-90°)": (1, -2), "mirror x -> -x": (-2, 1),
            "mirror y -> -y": (2, -1), "diagonal mirror (x, y) -> (y, x)": (1, 2),
            "anti-diagonal mirror (x, y) -> (-y, -x)": (-1, -2)}
    assert maps[element_words(g)] == where


# -- models of known symmetry --------------------------------------------------------
def _model(kind):
    torch.manual_seed(0)
    if kind == "mirror":
        return MirrorSymmetrized(surrogate.build_model("unet", **TINY))
    group = {"gconv_D4": "D4", "gconv_C4": "C4"}.get(kind)
    return surrogate.build_model("gconv_unet" if group else "unet", **TINY,
                                 **({"group": group} if group else {}))


@pytest.mark.parametrize("kind,keeps,verdict", [
    ("gconv_D4", ALL, "keeps all of D4; breaks: nothing"),
    ("gconv_C4", ["e", "r", "r2", "r3"],
     "keeps C4: identity, quarter turns (±90°), half turn; breaks: mirror x -> -x, "
     "mirror y -> -y, diagonal mirrors"),
    ("mirror", ["e", "s"],
     "keeps D1{e,s}: identity, mirror x -> -x; breaks: quarter turns (±90°), half turn, "
     "mirror y -> -y, diagonal mirrors"),
    ("unet", ["e"],
     "keeps only the identity; breaks: quarter turns (±90°), half turn, mirror x -> -x, "
     "mirror y -> -y, diagonal mirrors"),
])
def test_discovery_finds_the_symmetry_a_model_was_built_with(kind, keeps, verdict):
    v = discover_symmetry(_model(kind), history())
    assert list(v.errors) == ALL and v.errors["e"] == 0
    assert v.subgroup == keeps and v.kept == keeps
    assert v.verdict == verdict
    for k, e in v.errors.items():
        assert (e < 1e-10) if k in keeps else (e > 0.1), (k, e)
    assert v.threshold == max(KEEP_TOLERANCE.atol, KEEP_TOLERANCE.rtol * max(v.errors.values()))


def test_step_error_by_hand():
    """A constant drift of u: e_g = ||(1, 0) - M_g (1, 0)|| per cell over the step's 1."""
    e = element_errors(ConstantDrift(), history())
    r2 = 2 ** 0.5
    want = {"e": 0, "r": r2, "r2": 2, "r3": r2, "s": 2, "rs": r2, "r2s": 0, "r3s": r2}
    assert e == pytest.approx(want, abs=1e-12)
    assert judge(e).subgroup == ["e", "r2s"]  # only the mirror y -> -y keeps u


def test_the_model_own_step_error_is_the_floor_of_the_keep_rule():
    """ConstantDrift predicts x_T + shift: against truths x_T + shift it is exact, against
    x_T + shift / 2 its error is half its step; a floor above an element's error keeps it."""
    x, net = history(), ConstantDrift()
    fx = net(x)
    assert step_error(net, x, fx) == pytest.approx(0, abs=1e-12)
    half = x[:, -1] + (fx - x[:, -1]) / 2
    assert step_error(net, x, half) == pytest.approx(0.5, abs=1e-12)
    e = element_errors(net, x)
    assert judge(e, floor=1.5).kept == ["e", "r", "r3", "rs", "r2s", "r3s"]
    assert judge(e, floor=2.0).subgroup_name == "D4"
    assert judge(e, floor=2.0).floor == 2.0 and judge(e).floor is None


def test_surrogate_is_judged_on_normalised_fields():
    """A Surrogate on physical histories gives its network's errors on the normalised
    ones (the normalisation weighs every channel alike); a C4 net judged on C4."""
    torch.manual_seed(1)
    net = surrogate.build_model("unet", **TINY)
    norm = Normalization(LAYOUT, (3.0, 3.0, 0.2), (0.0, 0.0, 1.5))
    sur = surrogate.Surrogate(net, norm)
    x = history()
    physical = norm.denormalize(x)
    assert element_errors(sur, physical) == pytest.approx(element_errors(net, x), rel=1e-9)
    c4 = element_errors(_model("gconv_C4"), x, group="C4")
    assert list(c4) == ["e", "r", "r2", "r3"] and max(c4.values()) < 1e-10


def test_keep_rule_and_a_kept_set_that_is_not_a_group():
    errors = dict(zip(ALL, [0, 0.01, 1.0, 0.9, 0.02, 0.8, 1.0, 0.7]))
    v = judge(errors, atol=0.05, rtol=0.2)
    assert v.threshold == pytest.approx(0.2)
    assert v.kept == ["e", "r", "s"]  # {e, r, s} is no group; the largest inside: {e, s}
    assert v.subgroup == ["e", "s"] and v.subgroup_name == "D1{e,s}"
    assert "quarter turn (+90°) within tolerance, but not a group" in v.verdict
    assert judge(errors, atol=2.0).verdict == "keeps all of D4; breaks: nothing"
    nan = judge({**errors, "r": float("nan"), "r3": float("nan")}, atol=0.05, rtol=0.2)
    assert "r" not in nan.kept and "not measured (non-square grid)" in nan.verdict
    assert json.dumps(nan.to_dict())  # NaN as null


# -- irrep energies ------------------------------------------------------------------
def _character(group, name):
    return next(chi for n, chi, _ in real_irreps(group) if n == name)


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_irrep_energy_of_constant_and_character_weights(group):
    grp = get_group(group)
    names = [n for n, _, _ in real_irreps(grp)]
    e = irrep_energy(np.full((3, grp.order), 0.7), grp)
    assert e.fractions[names[0]] == pytest.approx(1) and e.symmetry == group
    for name in names:
        if name.startswith("E"):
            continue
        e = irrep_energy(np.stack([_character(grp, name), -2 * _character(grp, name)]), grp)
        assert e.fractions[name] == pytest.approx(1)
        assert sum(e.fractions.values()) == pytest.approx(1)
    assert names == (SIGNED + ["E"] if group == "D4" else ["A (r:+1)", "B (r:-1)", "E"])


@pytest.mark.parametrize("group", ["C4", "D4", "C8"])
def test_irrep_energies_add_up_to_the_norm(group):
    grp = get_group(group)
    w = np.random.default_rng(0).normal(size=(5, grp.order))
    e = irrep_energy(w, grp)
    assert sum(e.energy.values()) == pytest.approx((w ** 2).sum(), rel=1e-12)
    assert sum(e.fractions.values()) == pytest.approx(1)
    assert min(e.energy.values()) > 0 and e.symmetry == "trivial"


def _mirror_invariant(grp, rng, banks=2):
    """Random w with w_l(s g) = w_l(g) (left invariance under the mirror s)."""
    w = rng.normal(size=(banks, grp.order))
    s_g = [grp.index(grp.compose((0, 1), g)) for g in grp.elements]
    return (w + w[:, s_g]) / 2


def test_mirror_invariant_weights_sit_in_irreps_that_s_fixes():
    """A1, B1 (s:+1) and E (s has eigenvalue +1) restrict to {e, s} with a trivial part;
    A2, B2 (s:-1) do not and get no energy."""
    grp = get_group("D4")
    e = irrep_energy(_mirror_invariant(grp, np.random.default_rng(1)), grp)
    assert e.fractions["A2 (r:+1, s:-1)"] < 1e-28 and e.fractions["B2 (r:-1, s:-1)"] < 1e-28
    assert min(e.fractions[k] for k in ("A1 (r:+1, s:+1)", "B1 (r:-1, s:+1)", "E")) > 1e-3
    assert e.symmetry == "D1{e,s}" and e.violations["D1{e,s}"] < 1e-14


def test_relaxed_weights_fixed_by_the_mirror_make_a_mirror_equivariant_model():
    """Every relaxed D4 layer with w_l(s g) = w_l(g): the irreps and the existing
    violations agree on {e, s}, and the model's predictions keep exactly {e, s}."""
    torch.manual_seed(0)
    model = surrogate.build_model("relaxed_gconv_unet", group="D4", **TINY)
    grp, rng = get_group("D4"), np.random.default_rng(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(getattr(m, "relaxed_weights", None), nn.Parameter):
                m.relaxed_weights.copy_(torch.from_numpy(
                    1 + 2 * _mirror_invariant(grp, rng, m.relaxed_weights.shape[0])))
    layers = layer_symmetries(model)
    assert len(layers) == len(relaxation_summary(model)) > 0
    for l in layers:
        assert l.symmetry == l.violation_symmetry == "D1{e,s}", l
        assert l.irreps["A2 (r:+1, s:-1)"] < 1e-20 and l.irreps["E"] > 1e-4
    v = discover_symmetry(model, history())
    assert v.subgroup == ["e", "s"] and v.layers == layers


def test_c2_relaxed_weights_put_energy_in_a_and_b_only():
    """The existing C2 case (w repeats every half turn): no E energy; C2 by both."""
    grp = get_group("C4")
    e = irrep_energy(np.array([[1.0, 0.2, 1.0, 0.2], [0.3, 0.9, 0.3, 0.9]]), grp)
    assert e.fractions["E"] < 1e-28 and e.fractions["B (r:-1)"] > 0.1
    assert e.symmetry == "C2"


# -- the report ----------------------------------------------------------------------
def test_report_writes_the_symmetry_section_figure_and_json(tiny_data, tiny_checkpoints,
                                                            tmp_path):
    data, _ = tiny_data
    out = tmp_path / "rep"
    rc = main(["--checkpoint", str(tiny_checkpoints["unet"]),
               str(tiny_checkpoints["relaxed_gconv_unet"]), "--data", str(data),
               "--split", "test-future", "--split", "test-domain", "--steps", "2",
               "--max-windows", "2", "--equivariance-windows", "2", "--device", "cpu",
               "--no-gif", "--out", str(out), "--quiet"])
    assert rc == 0
    md = (out / "summary.md").read_text()
    sec = md[md.index("## Symmetry the model keeps"):md.index("## Learned relaxation")]
    assert "### unet" in sec and "### relaxed_gconv_unet" in sec
    assert "**keeps only the identity; breaks:" in sec
    assert "| s | mirror x -> -x |" in sec and "| r3s | diagonal mirror (x, y) -> (y, x) |" in sec
    assert "| layer | symmetry | A (r:+1) | B (r:-1) | E |" in sec
    models = {m["label"]: m for m in json.loads((out / "summary.json").read_text())["models"]}
    sym = models["relaxed_gconv_unet"]["symmetry"]
    assert list(sym["errors"]) == ALL and sym["group"] == "D4"
    assert all(sum(l["irreps"].values()) == pytest.approx(1) for l in sym["layers"])
    assert models["persistence"]["symmetry"] is None
    png = (out / "symmetry.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "![symmetry.png](symmetry.png)" in md


def test_position_dependent_layers_carry_their_profile_peak_and_mean():
    """Translation-relaxed group convs: C4-equivariant at initialisation (kept on D4:
    the rotations), then with perturbed position weights the verdict carries each
    layer's deviation-profile peak and mean, and the report's section lists them."""
    torch.manual_seed(0)
    model = surrogate.build_model("relaxed_gconv_unet", group="C4", relax="translation",
                                  grid=(16, 16), **TINY)
    assert discover_symmetry(model, history()).subgroup == ["e", "r", "r2", "r3"]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(getattr(m, "relaxed_weights", None), nn.Parameter):
                m.relaxed_weights.add_(0.3 * torch.randn_like(m.relaxed_weights))
    v = discover_symmetry(model, history())
    profiles = {l.name: l.profile for l in relaxation_summary(model)}
    assert v.layers and {l.name for l in v.layers} == set(profiles)
    for l in v.layers:
        assert l.kind == "translation" and not l.irreps
        assert l.peak == pytest.approx(profiles[l.name].max()) and l.peak > l.mean > 0
    md = "\n".join(symmetry_markdown({"m": v}))
    assert "Position-dependent layers" in md and "| stem | translation |" in md
