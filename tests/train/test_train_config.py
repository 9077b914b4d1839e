"""Training configs: every bad name and argument is refused before any training, most before torch
is imported, naming the file, the cycle, the config path and the closest name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.train.conftest import TINY, WriteConfig

from tidal.errors import ConfigError
from tidal.train.config import load_train_config


def _check_in_fresh_process(path: Path) -> tuple[str, bool]:
    """The error of loading ``path`` in a new interpreter, and whether torch got imported."""
    code = ("import sys\nfrom tidal.errors import ConfigError\nfrom tidal.train.config import load_train_config\n"
            f"try:\n    load_train_config({str(path)!r})\nexcept ConfigError as error:\n    print(error)\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *message, imported = result.stdout.strip().splitlines()
    return "\n".join(message), imported == "True"


@pytest.mark.parametrize(("change", "expected"), [
    ({"model": {"tidal.train.models.MPL": {"num_inputs": 64, "num_outputs": 10}}},
     "model[\"tidal.train.models.MPL\"]: 'tidal.train.models.MPL' not found: 'tidal.train.models' has no 'MPL'; "
     "did you mean 'tidal.train.models.MLP'?"),
    ({"model": {"tidal.train.models.MLP": {"num_inputs": 64, "num_output": 10}}},
     "model[\"tidal.train.models.MLP\"].num_output: tidal.train.models.MLP has no argument 'num_output'; "
     "did you mean 'num_outputs'?"),
    ({"optimizer": {"torch.optim.Adamw": {"lr": 0.01}}}, "did you mean 'torch.optim.AdamW'?"),
    ({"optimizer": {"torch.optim.Adam": {"learning_rate": 0.01}}}, "has no argument 'learning_rate'"),
    ({"loss": {"torch.nn.CrossEntropyLos": {}}}, "did you mean 'torch.nn.CrossEntropyLoss'?"),
])
def test_a_misspelled_name_or_argument_is_refused_before_torch_is_imported(
        write_config: WriteConfig, change: dict[str, object], expected: str) -> None:
    path = write_config({}, change)
    message, torch_imported = _check_in_fresh_process(path)
    assert message.startswith(f"{path} cycle 1: "), message
    assert expected in message
    assert not torch_imported


def test_a_misspelled_name_exits_2_from_the_command_line(write_config: WriteConfig, tidal_home: Path) -> None:
    path = write_config({"datasets": {"tidal.train.datasets.Digit": {}}})
    result = subprocess.run([sys.executable, "-m", "tidal", "train", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "did you mean 'tidal.train.datasets.Digits'?" in result.stderr
    assert not tidal_home.exists()  # nothing was started


@pytest.mark.parametrize(("change", "expected"), [
    ({"optimiser": {"torch.optim.Adam": {}}}, "unknown top-level key(s) 'optimiser' (did you mean 'optimizer'?)"),
    ({"model": None}, "missing top-level key(s) 'model', e.g. model: {\"tidal.train.models.SmallCNN\""),
    ({"train_loop": {"tidal.train.Loop": {"epochs": "2"}}}, ".epochs: expected int, got '2' (str)"),
    ({"train_loop": {"tidal.train.Loop": {"epochs": 0}}}, "epochs: expected at least 1, got 0"),
    ({"metrics": [{"tidal.train.metrics.Accuracy": {"top_k": 1.5}}]}, "top_k: expected int, got 1.5"),
    ({"loss": {"os.system": {}}}, "'os.system' is outside the allowed modules"),
    ({"seed": "one"}, "seed: expected an integer"),
])
def test_bad_values_name_the_config_path(write_config: WriteConfig, change: dict[str, object],
                                         expected: str) -> None:
    path = write_config(change)
    with pytest.raises(ConfigError) as raised:
        load_train_config(path)
    assert str(raised.value).startswith(str(path)), raised.value
    assert expected in str(raised.value)


def test_a_later_cycle_inherits_what_it_does_not_set() -> None:
    config = load_train_config(TINY)
    first, second = config.cycles
    assert second.canonical["model"] == first.canonical["model"]
    assert second.canonical["optimizer"]["_target_"] == "torch.optim.SGD"
    assert second.canonical["optimizer"]["momentum"] == 0.9
    assert tuple(first.canonical["optimizer"]["betas"]) == (0.9, 0.999)  # defaults filled, the parameters left out
    assert "params" not in first.canonical["optimizer"]
    assert len(config.train_id) == 12


def test_the_training_id_follows_the_config(write_config: WriteConfig) -> None:
    same = load_train_config(write_config({}, {}, name="a.json")).train_id
    assert load_train_config(write_config({}, {}, name="b.json")).train_id == same
    assert load_train_config(write_config({}, {"optimizer": {"torch.optim.SGD": {"lr": 0.02}}})).train_id != same
    assert load_train_config(write_config({"seed": 1}, {})).train_id != same


def test_a_registered_class_is_named_by_its_name(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "mynets.py").write_text(
        "import tidal\nfrom torch import nn\n\n"
        "@tidal.register\nclass TwoLayers(nn.Sequential):\n"
        "    def __init__(self, width: int = 16) -> None:\n"
        "        super().__init__(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))\n")
    path = write_config({"imports": ["mynets"], "model": {"TwoLayers": {"width": 8}}})
    config = load_train_config(path)
    assert config.cycles[0].canonical["model"] == {"_target_": "TwoLayers", "width": 8}
    bad = write_config({"imports": ["mynets"], "model": {"TwoLayers": {"wide": 8}}}, name="bad.json")
    with pytest.raises(ConfigError, match="TwoLayers has no argument 'wide'"):
        load_train_config(bad)


def test_seed_belongs_to_the_first_cycle(write_config: WriteConfig) -> None:
    path = write_config({}, {"seed": 3})
    with pytest.raises(ConfigError, match="cycle 1: 'seed' belongs to the whole training; set it in cycle 0 only"):
        load_train_config(path)
