"""Read a recipe file into a validated `Recipe`, or report every problem as FILE:LINE:COL: message.

The loader runs outside any event loop and never inside workflow code. It:
1. refuses what is not a recipe before parsing it (not a regular file, over 1 MB, not UTF-8,
   NUL or other characters YAML forbids);
2. composes the YAML into nodes from the parser's events (so every value keeps its line and
   column), refusing nesting deeper than `MAX_DEPTH`, tags other than JSON's types, duplicate
   keys, non-string keys and alias bombs, then builds plain data from the nodes; neither step
   recurses, so no input reaches a stack limit;
3. validates the data against the pydantic models and maps each error back to its node;
4. checks what the models cannot: unique step ids, `steps.X` references to earlier steps,
   `inputs.X` references to declared inputs, expressions (compiled, sandbox-checked), action
   names and their `with:` inputs against the registry, cron expressions and time zones as
   Temporal reads them, account names, webhook URLs, and what a recipe file may ask for
   (a poll every `MIN_POLL_EVERY` at most, steps nested `MAX_STEP_NESTING` deep at most).
All problems are collected, so one run shows them all (a recipe nested too deep, or holding a
NaN, is refused before the models see it).
"""

from tikflow.loader.checks import MAX_STEP_NESTING, MIN_POLL_EVERY
from tikflow.loader.files import MAX_FILE_BYTES
from tikflow.loader.inputs import resolve_inputs
from tikflow.loader.load import LoadedRecipe, load_recipe, load_recipe_text
from tikflow.loader.problems import Problem, RecipeError
from tikflow.loader.yaml_positions import MAX_DEPTH, MAX_NODES
from workflows.models import MAX_INPUT_DEPTH

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INPUT_DEPTH",
    "MAX_NODES",
    "MAX_STEP_NESTING",
    "MIN_POLL_EVERY",
    "LoadedRecipe",
    "Problem",
    "RecipeError",
    "load_recipe",
    "load_recipe_text",
    "resolve_inputs",
]
