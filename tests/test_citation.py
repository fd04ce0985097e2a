"""CITATION.cff is valid CFF 1.2.0 and cites the software and the SOFO paper.

The schema in `tests/data/cff-1.2.0-schema.json` is the JSON schema of the Citation File
Format 1.2.0 (github.com/citation-file-format/citation-file-format, CC-BY-4.0), as shipped
with the format's own validator `cffconvert` 2.0.0 (`cffconvert/schemas/1.2.0/schema.json`).
"""

import datetime
import json
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).resolve().parent / "data" / "cff-1.2.0-schema.json"


def _dates_as_strings(node):
    # the schema's note to implementers: YAML dates must be cast to strings before validation
    if isinstance(node, dict):
        return {k: _dates_as_strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_dates_as_strings(v) for v in node]
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    return node


def _citation():
    with open(ROOT / "CITATION.cff", encoding="utf-8") as f:
        return _dates_as_strings(yaml.safe_load(f))


def test_schema_is_the_cff_1_2_0_schema():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"].startswith("https://citation-file-format.github.io/1.2.0/")
    assert set(schema["required"]) == {"authors", "cff-version", "message", "title"}
    jsonschema.Draft7Validator.check_schema(schema)


def test_citation_cff_is_valid():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(_citation()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_an_invalid_file_is_rejected():
    """The check has teeth: a wrong version, a missing title and a bad date all fail."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    bad = _citation()
    bad["cff-version"] = "1.1.0"
    del bad["title"]
    bad["preferred-citation"]["conference"]["date-start"] = "9 December 2024"
    messages = " ".join(e.message for e in validator.iter_errors(bad))
    assert "'title' is a required property" in messages
    assert "'1.1.0' does not match" in messages
    assert "9 December 2024" in messages


def test_citation_matches_the_package_and_cites_sofo():
    cff = _citation()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]["text"]
    paper = cff["preferred-citation"]
    assert paper["title"] == (
        "Second-order forward-mode optimization of recurrent neural networks for neuroscience"
    )
    assert [a["family-names"] for a in paper["authors"]] == [
        "Yu",
        "Xia",
        "Ma",
        "Lengyel",
        "Hennequin",
    ]
    assert paper["year"] == 2024
    assert "NeurIPS 2024" in paper["conference"]["name"]
