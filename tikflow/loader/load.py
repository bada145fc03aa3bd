"""`load_recipe`: a recipe file → a validated `Recipe`, or every problem it has, located."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tikflow.loader.checks import Checker, check_poll_every, check_raw_expressions, check_shape
from tikflow.loader.files import check_characters, decode, read_file
from tikflow.loader.model_errors import data_path, report_validation_error
from tikflow.loader.problems import Document, RecipeError
from tikflow.loader.subrecipes import resolve_subrecipes
from tikflow.loader.yaml_positions import parse_yaml
from workflows.models import Recipe

__all__ = ["LoadedRecipe", "load_recipe", "load_recipe_text", "parse_document"]


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and the file it came from."""

    recipe: Recipe
    source: str


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Load and validate the recipe at `path`.

    Raises:
        RecipeError: with every problem found (the file unreadable, not a regular file or too big
            included).
    """
    name = str(path)
    return load_recipe_text(read_file(path, name), name)


def parse_document(raw: bytes | str, file: str) -> tuple[Document, Any]:
    """YAML text (bytes or str) from `file` as plain data, with the positions of its values.

    Raises:
        RecipeError: the text is not UTF-8, holds characters YAML forbids, or is not safe YAML.
    """
    text = decode(raw, file) if isinstance(raw, bytes) else raw
    check_characters(text, file)
    doc = Document(file)
    data = parse_yaml(text, doc)
    if doc.problems:
        raise RecipeError(doc.problems)
    return doc, data


def load_recipe_text(
    raw: bytes | str, file: str = "<recipe>", *, parents: tuple[Path, ...] = ()
) -> LoadedRecipe:
    """Validate recipe text (bytes or str) that came from `file`.

    `parents` are the recipe files whose sub-recipes led here (to refuse a cycle).

    Raises:
        RecipeError: with every problem found.
    """
    doc, data = parse_document(raw, file)
    if not isinstance(data, dict):
        doc.at((), "a recipe is a mapping with at least `recipe:` and `steps:`")
        raise RecipeError(doc.problems)
    said = check_shape(doc, data)
    if len(doc.problems) > len(said):
        raise RecipeError(doc.problems)  # nested too deep: the models would only fail on it
    said |= check_poll_every(doc, data)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if data_path(data, error["loc"])[1] not in said:
                report_validation_error(doc, data, error)
        # Semantic checks still run on the parts that validated, so all problems show at once.
        check_raw_expressions(doc, data)
        raise RecipeError(doc.problems) from None
    Checker(doc, recipe).check()
    recipe = resolve_subrecipes(doc, recipe, file, parents, _load_child)
    if doc.problems:
        raise RecipeError(doc.problems)
    return LoadedRecipe(recipe=recipe, source=file)


def _load_child(path: Path, parents: tuple[Path, ...]) -> Recipe:
    """The sub-recipe at `path`, loaded below `parents`."""
    return load_recipe_text(read_file(path, str(path)), str(path), parents=parents).recipe
