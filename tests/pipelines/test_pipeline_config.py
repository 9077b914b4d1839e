"""Pipeline configs are validated as a whole before any work; errors name the file, the path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapes_project import edit

from tidal.errors import ConfigError
from tidal.pipelines import load_pipeline


def refused(project: Path, old: str, new: str) -> str:
    edit(project / "pipeline.hjson", old, new)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(project / "pipeline.hjson")
    assert "pipeline.hjson" in str(caught.value)
    return str(caught.value)


def test_the_steps_come_in_run_order_with_their_fields(project: Path) -> None:
    pipeline = load_pipeline(project / "pipeline.hjson")
    assert list(pipeline.steps) == ["shapes", "measure", "double", "summary"]
    assert pipeline.steps["measure"].fields == {"area": int, "square": bool, "label": str}
    assert pipeline.after("measure") == ["measure", "double", "summary"]


def test_a_step_reading_a_missing_step(project: Path) -> None:
    message = refused(project, 'from: "measure", processor', 'from: "mesure", processor')
    assert "steps.double.from: there is no step 'mesure' (did you mean 'measure'?)" in message


def test_a_cycle(project: Path) -> None:
    message = refused(project, 'from: "shapes", processor: {"shapes.measure.Measure"',
                      'from: "double", processor: {"shapes.measure.Measure"')
    assert "cycle (measure -> double -> measure)" in message or "cycle (double -> measure -> double)" in message


def test_a_filter_on_a_field_the_processor_does_not_declare(project: Path) -> None:
    message = refused(project, 'where: "square"', 'where: "squared"')
    assert "steps.double.where: step 'measure' has no field 'squared' (did you mean 'square'?)" in message


def test_a_filter_on_a_source(project: Path) -> None:
    message = refused(project, '{"shapes.measure.Measure": {}}}', '{"shapes.measure.Measure": {}}, where: "x"}')
    assert "steps.measure.where" in message and "reads a source" in message


def test_a_reducer_over_a_non_numeric_field(project: Path) -> None:
    message = refused(project, 'fields: ["area"]', 'fields: ["lab*"]')
    assert "'lab*' matches label, which is not numeric" in message


def test_a_reducer_over_a_field_that_does_not_exist(project: Path) -> None:
    assert "'volume' matches no field" in refused(project, 'fields: ["area"]', 'fields: ["volume"]')


def test_a_group_by_field_that_does_not_exist(project: Path) -> None:
    assert "steps.summary.group_by: step 'measure' has no field 'file'" in refused(
        project, 'group_by: "path"', 'group_by: "file"')


def test_an_unknown_step_key_and_a_processor_argument(project: Path) -> None:
    assert "did you mean 'where'" in refused(project, 'where: "square"', 'wher: "square"')
    edit(project / "pipeline.hjson", 'wher: "square"', 'where: "square"')
    assert "has no argument 'k'" in refused(project, '"shapes.measure.Double": {}', '"shapes.measure.Double": {k: 1}')


def test_an_environment_step_must_read_rows_not_media(project: Path) -> None:
    message = refused(project, '{"shapes.measure.Measure": {}}}', '{"shapes.measure.Measure": {}}, env: {pip: []}}')
    assert "steps.measure.env" in message and "rows (JSON)" in message


def test_an_environment_file_that_is_missing(project: Path) -> None:
    message = refused(project, 'where: "square"', 'where: "square", env: {requirements: "nope.txt"}')
    assert "steps.double.env.requirements: no file" in message
