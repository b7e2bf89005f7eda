"""The JSON Schema files in schemas/json/ are generated from the models and must not drift from them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schemas import export
from schemas.events import EVENT_TYPES
from streams.tools.cli import main


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "json"
    shutil.copytree(export.SCHEMA_DIR, target)
    return target


def test_committed_schema_files_are_current():
    assert export.stale() == [], "run `dunning schemas export` and commit schemas/json/"


def test_there_is_a_schema_for_every_input_and_output_type():
    names = {path.name for path in export.SCHEMA_DIR.glob("*.schema.json")}
    expected = {f"{name}.schema.json" for name in (*EVENT_TYPES, "input-event", "notice", "dead-letter", "audit",
                                                                      "ruleset")}
    assert names == expected


def test_each_schema_file_is_json_schema_naming_its_type():
    for path in sorted(export.SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        assert schema["$id"] == f"dunning-stream/{path.name.removesuffix('.schema.json')}", path.name


def test_a_fresh_copy_is_not_stale(schema_copy):
    assert export.stale(schema_copy) == []


def test_a_modified_file_is_stale(schema_copy):
    path = schema_copy / "invoice.issued.schema.json"
    schema = json.loads(path.read_text())
    schema["properties"]["amount"]["type"] = "number"
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    assert export.stale(schema_copy) == ["invoice.issued.schema.json"]


def test_whitespace_only_change_is_stale(schema_copy):
    path = schema_copy / "notice.schema.json"
    path.write_text(path.read_text().rstrip("\n"))
    assert export.stale(schema_copy) == ["notice.schema.json"]


def test_a_missing_file_is_stale(schema_copy):
    (schema_copy / "clock.tick.schema.json").unlink()
    assert export.stale(schema_copy) == ["clock.tick.schema.json"]


def test_a_file_for_a_removed_type_is_stale(schema_copy):
    (schema_copy / "invoice.paid.schema.json").write_text("{}\n")
    assert export.stale(schema_copy) == ["invoice.paid.schema.json"]


def test_a_missing_directory_is_all_stale(tmp_path):
    assert sorted(export.stale(tmp_path / "nowhere")) == sorted(export.rendered())


def test_write_brings_a_directory_up_to_date(schema_copy):
    (schema_copy / "clock.tick.schema.json").unlink()
    (schema_copy / "notice.schema.json").write_text("{}\n")
    (schema_copy / "invoice.paid.schema.json").write_text("{}\n")
    (schema_copy / "README.md").write_text("not a schema\n")
    export.write(schema_copy)
    assert export.stale(schema_copy) == []
    assert not (schema_copy / "invoice.paid.schema.json").exists()
    assert (schema_copy / "README.md").exists()


def test_cli_check_passes_on_the_committed_files(capsys):
    assert main(["schemas", "export", "--check"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_check_names_stale_files(monkeypatch, schema_copy, capsys):
    (schema_copy / "clock.tick.schema.json").unlink()
    check_copy = export.stale
    monkeypatch.setattr(export, "stale", lambda directory=schema_copy: check_copy(directory))
    assert main(["schemas", "export", "--check"]) == 1
    assert "clock.tick.schema.json is stale" in capsys.readouterr().err
