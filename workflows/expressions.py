"""Recipe expressions: sandboxed Jinja2, deterministic, bounded, checked at load time.

Recipes say `{{ steps.videos.items }}` or `"Hi {{ comment.author }}"`. A value that is exactly one
`{{ … }}` evaluates to the native value (a list stays a list); anything else renders to text.

Why it is safe to run inside workflow code:
- `ImmutableSandboxedEnvironment` refuses attributes that start with `_` and unsafe callables,
  and cannot mutate lists or dicts; `check_source` additionally rejects `_`-names at load time, so
  `{{ ''.__class__ }}` is a load error, not a runtime surprise.
- No globals that touch the outside world or are not deterministic: `lipsum`, `cycler`, `joiner`,
  `namespace` and the `random` filter are removed; `range` is capped.
- `*`, `**`, `+` and `%` are intercepted, and so are the string methods and filters whose output
  size an argument sets (`'a'.ljust(10**10)`, `'{:>9999999999}'.format(1)`, `center`, `indent`,
  `slice`...), so a template cannot build a gigabyte string or number; text is rendered piece by
  piece and stops at `MAX_OUTPUT_CHARS`.
- Every `{% for %}` of a render draws on one budget of `MAX_LOOP_ITERATIONS`, so nested loops
  cannot spin a workflow task for minutes without output; runaway macro recursion is an error too.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_OUTPUT_CHARS",
    "ExpressionError",
    "check_source",
    "evaluate",
    "evaluate_value",
    "is_template",
    "referenced_names",
    "referenced_steps",
    "truthy",
]

MAX_OUTPUT_CHARS = 1_000_000
MAX_RANGE = 10_000
MAX_POWER_DIGITS = 1000
#: Iterations of all `{% for %}` loops in one render together (about 50 ms of workflow task time).
MAX_LOOP_ITERATIONS = 1_000_000
#: The render context's name for its loop budget (`_`-names are refused in recipes).
_BUDGET = "_tikflow_loops"

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """An expression could not be compiled or evaluated; the message says why, in one line."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, bytes)) else 0


def _too_large() -> ExpressionError:
    return ExpressionError(f"result too large (over {MAX_OUTPUT_CHARS} characters)")


#: str methods whose result is as long as one of their arguments says.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_SPEC = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_sizes(*values: Any) -> None:
    """Refuse an int argument that would make a result longer than the cap."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_OUTPUT_CHARS:
            raise _too_large()


def _check_brace_format(template: str) -> None:
    """`'{:>N}'.format(...)`: refuse widths over the cap and widths taken from arguments."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ExpressionError(f"bad format string: {exc}") from None
    for _, _, spec, _ in parsed:
        if spec and ("{" in spec or any(int(n) > MAX_OUTPUT_CHARS for n in re.findall(r"\d+", spec))):
            raise _too_large()


def _check_percent_format(template: str, args: Any) -> None:
    """`'%Ns' % x`: refuse widths over the cap (and `*` widths over it in the arguments)."""
    for width, precision in _PERCENT_SPEC.findall(template):
        for part in (width, precision):
            if part.isdigit() and int(part) > MAX_OUTPUT_CHARS:
                raise _too_large()
            if part == "*":
                _check_sizes(*(args if isinstance(args, tuple) else (args,)))


def _sized_filter(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """A built-in filter, with `check(*args, **kwargs)` run on its arguments first."""
    # A filter marked `pass_environment`/`pass_context` gets that object first, then the value.
    skip = 1 if getattr(original, "jinja_pass_arg", None) else 0

    @functools.wraps(original)
    def filtered(*args: Any, **kwargs: Any) -> Any:
        check(*args[skip:], **kwargs)
        return original(*args, **kwargs)

    return filtered


def _check_filter_args(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_sizes(*args, *kwargs.values())
    for arg in (*args, *kwargs.values()):
        # `indent` also takes its width as a string of spaces.
        if isinstance(arg, str) and len(arg) * (str(value).count("\n") + 1) > MAX_OUTPUT_CHARS:
            raise _too_large()


def _check_count_filter(value: Any, count: Any = 1, *args: Any, **kwargs: Any) -> None:
    # `slice(n)` loops n times whatever the input: a CPU bomb, not just a memory one.
    if isinstance(count, int) and count > MAX_RANGE:
        raise ExpressionError(f"more than {MAX_RANGE} groups")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent_format(str(value), args)


class _RecipeEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox recipes run in: immutable, no side channels, bounded arithmetic."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja sandboxes `str.format` when the method is looked up, not when it is called.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_brace_format(template)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            if method in _WIDTH_METHODS:
                _check_sizes(*args, *kwargs.values())
            elif method == "replace" and len(args) >= 2 and isinstance(args[1], str):
                hits = owner.count(args[0]) if args[0] else len(owner) + 1
                if len(owner) + hits * len(args[1]) > MAX_OUTPUT_CHARS:
                    raise _too_large()
            elif (
                method == "join"
                and args
                and isinstance(args[0], list | tuple)
                and len(owner) * len(args[0]) + sum(_size(x) for x in args[0]) > MAX_OUTPUT_CHARS
            ):
                raise _too_large()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Results are plain dicts with keys like `items`; `steps.x.items` must mean the key,
        # not the dict method Jinja would find first.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and isinstance(left, (int, float)):
                magnitude = abs(right) * len(str(int(abs(left)) or 1))
                if magnitude > MAX_POWER_DIGITS:
                    raise ExpressionError("exponent too large")
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_percent_format(left, right)
            return left % right
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_OUTPUT_CHARS:
                    raise ExpressionError(f"result too large (over {MAX_OUTPUT_CHARS} characters)")
            return left * right
        if _size(left) + _size(right) > MAX_OUTPUT_CHARS:
            raise ExpressionError(f"result too large (over {MAX_OUTPUT_CHARS} characters)")
        return left + right


class _LoopBudget:
    """Counts the iterations of every loop in one render; `each` wraps each loop's iterable."""

    def __init__(self) -> None:
        self.left = MAX_LOOP_ITERATIONS

    def each(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            self.left -= 1
            if self.left < 0:
                raise ExpressionError(f"loops ran more than {MAX_LOOP_ITERATIONS} iterations")
            yield item


def _budgeted(tree: nodes.Template) -> nodes.Template:
    """The template with every `{% for x in ITER %}` rewritten to iterate `budget.each(ITER)`."""
    env = _environment()
    for loop in tree.find_all(nodes.For):
        each = nodes.Getattr(nodes.Name(_BUDGET, "load"), "each", "load")
        loop.iter = nodes.Call(each, [loop.iter], [], None, None)
        loop.iter.set_lineno(loop.lineno).set_environment(env)
    return tree


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise ExpressionError(f"range() of more than {MAX_RANGE} items")
    return result


def _contains_any(text: Any, words: Any) -> bool:
    """`{{ comment.text | contains_any(['price', 'cost']) }}`: case-insensitive keyword match."""
    haystack = str(text).lower()
    if isinstance(words, str):
        words = [words]
    return any(str(w).lower() in haystack for w in words)


def _combine(*dicts: Any) -> dict[str, Any]:
    """`{{ a | combine(b) }}`: a new dict with b's keys over a's (as in Ansible)."""
    merged: dict[str, Any] = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            raise ExpressionError(f"combine needs mappings, got {type(d).__name__}")
        merged.update(d)
    return merged


def _items2dict(items: Any, key_name: str = "key", value_name: str = "value") -> dict[str, Any]:
    """`{{ list | items2dict(key_name='handle', value_name='followers') }}` (as in Ansible)."""
    return {str(item[key_name]): item[value_name] for item in items}


def _dict2items(mapping: Any) -> list[dict[str, Any]]:
    """`{{ dict | dict2items }}`: `[{key, value}, …]` in key order (as in Ansible)."""
    return [{"key": k, "value": v} for k, v in sorted(mapping.items(), key=lambda kv: str(kv[0]))]


@functools.lru_cache(maxsize=1)
def _environment() -> _RecipeEnvironment:
    # cache_size=0: compiled templates are cached in `_compiled`; Jinja's own cache takes a
    # threading lock, which Temporal's workflow sandbox forbids.
    env = _RecipeEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, cache_size=0
    )
    for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
        env.globals.pop(name, None)
    env.globals["range"] = _bounded_range
    env.filters.pop("random", None)
    for name in ("center", "indent", "truncate", "wordwrap"):
        env.filters[name] = _sized_filter(env.filters[name], _check_filter_args)
    for name in ("slice", "batch"):
        env.filters[name] = _sized_filter(env.filters[name], _check_count_filter)
    env.filters["format"] = _sized_filter(env.filters["format"], _check_format_filter)
    env.filters["contains_any"] = _contains_any
    env.filters["combine"] = _combine
    env.filters["items2dict"] = _items2dict
    env.filters["dict2items"] = _dict2items
    return env


def is_template(value: Any) -> bool:
    """Whether a string contains template syntax."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(source: str) -> str | None:
    match = _SINGLE_EXPR.match(source)
    return match.group("expr") if match else None


def _parse(source: str) -> nodes.Template:
    try:
        return _environment().parse(source)
    except TemplateError as exc:
        raise ExpressionError(_one_line(exc)) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


@functools.lru_cache(maxsize=4096)
def check_source(source: str) -> nodes.Template:
    """Compile-check a template and reject access to Python internals; returns the parsed tree.

    Raises:
        ExpressionError: syntax error or a forbidden name/attribute.
    """
    tree = _parse(source)
    for node in _walk(tree):
        name: str | None = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value if isinstance(node.arg.value, str) else None
        elif isinstance(node, nodes.Name):
            name = node.name
        if name is not None and name.startswith("_"):
            raise ExpressionError(f"access to {name!r} is not allowed (names starting with _ are private)")
    try:
        _compiled(source)
    except TemplateError as exc:
        raise ExpressionError(_one_line(exc)) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None
    return tree


@functools.lru_cache(maxsize=4096)
def _flat(tree: nodes.Template) -> tuple[nodes.Node, ...]:
    # Trees come from check_source's cache, so one expression's tree is walked once however many
    # questions the loader asks about it (Jinja nodes hash by identity).
    return tuple(_walk(tree))


def referenced_names(tree: nodes.Template) -> set[str]:
    """Top-level names an expression reads (`inputs`, `steps`, loop variables…)."""
    loaded: set[str] = set()
    assigned: set[str] = set()
    for n in _flat(tree):
        if isinstance(n, nodes.Name) and n.ctx == "load":
            loaded.add(n.name)
        elif isinstance(n, nodes.Macro) or (isinstance(n, nodes.Name) and n.ctx in ("store", "param")):
            assigned.add(n.name)
    return loaded - assigned


def referenced_steps(tree: nodes.Template, root: str = "steps") -> set[str]:
    """The ids an expression reads as `steps.<id>` or `steps['<id>']` (or `inputs.<x>` with root)."""
    found: set[str] = set()
    for node in _flat(tree):
        if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name):
            if node.node.name != root:
                continue
            if isinstance(node, nodes.Getattr):
                found.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                found.add(node.arg.value)
    return found


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    env = _environment()
    expr = _single_expression(source)
    if expr is not None:
        return ("expr", env.compile_expression(expr, undefined_to_none=False))
    return ("text", env.from_string(_budgeted(env.parse(source))))


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one template string against `context`.

    Raises:
        ExpressionError: the template fails (undefined name, forbidden access, too large…).
    """
    try:
        kind, compiled = _compiled(source)
        result = compiled(**context) if kind == "expr" else _render(compiled, context)
    except ExpressionError:
        raise
    except TemplateError as exc:
        raise ExpressionError(_one_line(exc)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {_one_line(exc)}") from None
    except RecursionError:
        raise ExpressionError("recursion too deep (a macro that calls itself without end?)") from None
    _ensure_defined(result)
    if isinstance(result, str) and len(result) > MAX_OUTPUT_CHARS:
        raise ExpressionError(f"result too large (over {MAX_OUTPUT_CHARS} characters)")
    return result


def _render(template: Any, context: Mapping[str, Any]) -> str:
    """Render text piece by piece, stopping as soon as it passes the cap (not after building it)."""
    pieces: list[str] = []
    size = 0
    for piece in template.generate(**context, **{_BUDGET: _LoopBudget()}):
        size += len(piece)
        if size > MAX_OUTPUT_CHARS:
            raise _too_large()
        pieces.append(piece)
    return "".join(pieces)


def _ensure_defined(value: Any) -> None:
    """Raise for an undefined value anywhere inside a result (`{'a': steps.x.missing}`).

    Jinja only complains about an undefined value when it is used; one hidden inside a list
    or dict literal would otherwise escape into workflow state and fail there.
    """
    if isinstance(value, Undefined):
        raise ExpressionError(value._undefined_message)
    if isinstance(value, dict):
        for item in value.values():
            _ensure_defined(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _ensure_defined(item)


def evaluate_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate every template inside a nested value (dicts, lists); other values pass through."""
    if isinstance(value, str):
        return evaluate(value, context) if is_template(value) else value
    if isinstance(value, dict):
        return {k: evaluate_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_value(v, context) for v in value]
    return value


def truthy(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a condition; the strings `false`, `no`, `0` and `` count as false."""
    result = evaluate(source, context)
    if isinstance(result, str):
        return result.strip().lower() not in ("", "false", "no", "0", "none")
    return bool(result)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# Built at import (outside any workflow sandbox), so workflow code only ever uses it.
_environment()
