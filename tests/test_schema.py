"""The committed JSON Schema matches the models; shipped recipes point editors at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tikflow.cli import main
from workflows.models import RECIPE_ADAPTER, Recipe, recipe_json_schema

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
SCHEMA_FILE = DEFINITIONS / "recipe.schema.json"
VALID = sorted((Path(__file__).parent / "recipes" / "valid").glob("*.yaml"))
SHIPPED = sorted(DEFINITIONS.glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=./recipe.schema.json"


def test_committed_schema_matches_the_models():
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == recipe_json_schema(), "definitions/recipe.schema.json is stale: run `make schema`"


def test_committed_schema_is_byte_for_byte_what_tikflow_schema_prints(capsys: pytest.CaptureFixture[str]):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(), "run `make schema`"


def test_schema_describes_every_property():
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                assert "description" in prop, f"{where}.{name} has no description"
            for key, child in node.items():
                walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}[{index}]")

    walk(recipe_json_schema(), "schema")


def test_schema_uses_the_yaml_spelling_of_keyword_fields():
    call = recipe_json_schema()["$defs"]["CallStep"]["properties"]
    assert {"with", "if"} <= set(call)
    assert not {"with_", "when"} & set(call)


def test_shipped_definitions_exist():
    assert SHIPPED, "definitions/ holds no recipes"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_starts_with_the_schema_line(path: Path):
    assert path.read_text().splitlines()[0] == SCHEMA_LINE


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: p.name)
def test_models_accept_valid_recipes(path: Path):
    # jsonschema is not a dependency; the schema is generated from these models, so the models
    # accepting a recipe is what the schema promises.
    data = yaml.safe_load(path.read_text())
    assert isinstance(RECIPE_ADAPTER.validate_python(data), Recipe)
