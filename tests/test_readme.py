"""The README is short and true to what ships: its model count, its preset's numbers
and the paths it names exist."""

import re
from pathlib import Path

import surrogate
import train

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
WORDS = {"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def test_readme_is_short_and_names_no_issue():
    assert len(README.splitlines()) <= 200
    assert not re.search(r"issue \d", README, re.I)


def test_model_count_is_the_registry_s():
    n = len(surrogate.available_models())
    counts = re.findall(r"(\w+) U-Net surrogates|available_models\(\)` lists (\w+)", README)
    found = [WORDS.get(w, w) for pair in counts for w in pair if w]
    assert found and all(c == n for c in found), (found, n)
    for name in surrogate.available_models():
        assert f"`{name}`" in README, name


def test_cpu_preset_numbers_in_readme_are_the_preset_s():
    cpu = train.load_preset("cpu")
    line = re.search(r"`cpu` preset \(`train/presets/cpu.toml`: `T_in` (\d+), K (\d+), "
                     r"(\d+) x (\d+) optimiser\s+steps at lr ([\d.e-]+)", README)
    assert line, "the README states the cpu preset's settings"
    assert tuple(int(v) for v in line.groups()[:4]) == (cpu.T_in, cpu.K, cpu.epochs,
                                                        cpu.max_steps_per_epoch)
    assert float(line.group(5)) == cpu.lr


def test_linked_files_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
