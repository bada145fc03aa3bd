"""Recipe expressions: sandboxed Jinja2, deterministic, bounded, checked at load time.

Recipes say `{{ steps.videos.items }}` or `"Hi {{ comment.author }}"`. A value that is exactly one
`{{ … }}` evaluates to the native value (a list stays a list); anything else renders to text, and a
list or mapping inside text renders as JSON (`"got {{ steps.x }}"`), not as a Python repr.

Why it is safe to run inside workflow code:
- `ImmutableSandboxedEnvironment` refuses attributes that start with `_` and unsafe callables,
  and cannot mutate lists or dicts; `check_source` additionally rejects `_`-names at load time
  (also as filter arguments: `attr('__class__')`, `map(attribute=…)`, `'{0.__class__}'.format`),
  so `{{ ''.__class__ }}` is a load error, not a runtime surprise.
- No globals that touch the outside world or are not deterministic: `lipsum`, `cycler`, `joiner`,
  `namespace` and the `random` filter are removed; `range` is capped.
- The source is bounded before Jinja sees it (length, parts, nesting), every compile failure is an
  `ExpressionError`, and Jinja's optimizer is off: it folds constants at compile time outside every
  bound below, and it is super-linear on long filter chains (150 filters: 1.6 s; without it 11 ms).
- Every render has a `_Budget`: each operation that can make a value (arithmetic, calls, filters,
  literals, slices, `~`, comparisons, output) is checked *before* it allocates where its size is
  set by an argument (`'a'.ljust(10**10)`, `tojson(indent=10**9)`, `'%(a)999999999s'`, `x * x`),
  its result is bounded (text `MAX_OUTPUT_CHARS`, lists and mappings `MAX_VALUE_SIZE`, integers
  `MAX_INT_DIGITS`), and its cost is drawn from one work budget (`MAX_WORK`), so no template runs
  for more than a fraction of a second; every `{% for %}` of a render also draws on one budget of
  `MAX_LOOP_ITERATIONS`. Whatever still goes wrong (`MemoryError`, `RecursionError`, …) is an
  `ExpressionError`, so at run time the *step* fails; the workflow task never does.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView, Sequence
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_context
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_OUTPUT_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_VALUE_SIZE",
    "MAX_WORK",
    "ExpressionError",
    "check_constant",
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
#: Python's own limit for converting an int to text; a bigger one could not be shown anyway.
MAX_INT_DIGITS = 4300
_MAX_INT_BITS = MAX_INT_DIGITS * 3322 // 1000
#: A list or mapping, measured as the length of its JSON text (shared parts counted every time).
MAX_VALUE_SIZE = 4_000_000
#: Values nested deeper than this are refused (JSON and Temporal's converter recurse on them).
MAX_VALUE_DEPTH = 100
#: Iterations of all `{% for %}` loops in one render together (about 50 ms of workflow task time).
MAX_LOOP_ITERATIONS = 1_000_000
#: Work units of one render, a unit being about 50 ns of CPU: an operation costs `_OP_COST`, a macro
#: call `_MACRO_COST`, each loop iteration one unit per part of its body, each element of a list or
#: mapping measured `_ELEMENT_COST`, and every `_CHARS_PER_UNIT` characters made one. A template that
#: spends it all runs about 0.2 s on the 2-core box (the deadlock detector fails a task at 2 s).
MAX_WORK = 4_000_000
_OP_COST = 20
_MACRO_COST = 100
_ELEMENT_COST = 3
_CHARS_PER_UNIT = 16
#: A filter that walks its input pays per element (or character) it reads: Jinja's filters do
#: Python-level work per element (key functions, tests, attribute lookups), 0.1-2 us measured.
_FILTER_ELEMENT_COST = 25
_ITERATING_FILTERS = frozenset(
    {
        "batch",
        "combine",
        "contains_any",
        "dict2items",
        "dictsort",
        "groupby",
        "items",
        "items2dict",
        "join",
        "list",
        "map",
        "max",
        "min",
        "reject",
        "rejectattr",
        "select",
        "selectattr",
        "slice",
        "sort",
        "sum",
        "unique",
        "tojson",
        "pprint",
        "urlencode",
    }
)
#: Units per 1,000 characters of text input, for the filters much slower than copying
#: (measured ns/char: urlize 550, wordwrap 170, title 105, pprint 61, wordcount 42).
_TEXT_FILTER_COST = {"urlize": 12000, "wordwrap": 4000, "title": 2500, "wordcount": 1000, "striptags": 250}
MAX_SOURCE_CHARS = 20_000
#: Parts (syntax nodes) of one expression; the shipped recipes use at most ~30.
MAX_NODES = 3_000
#: Nesting of an expression's syntax tree, and of its `{% %}` blocks; the shipped recipes use 9 and 2.
#: Python's compiler refuses 20 nested blocks and 200 nested parentheses in the generated code.
MAX_DEPTH = 40
MAX_BLOCK_DEPTH = 8
#: The render context's name for its budget (`_`-names are refused in recipes).
_BUDGET = "_tikflow_budget"
_GUARD = "_tikflow_"

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """An expression could not be compiled or evaluated; the message says why, in one line."""


def _too_large() -> ExpressionError:
    return ExpressionError(f"result too large (over {MAX_OUTPUT_CHARS} characters)")


def _too_large_value() -> ExpressionError:
    return ExpressionError(f"result too large (a list or mapping over {MAX_VALUE_SIZE} characters as JSON)")


def _too_many_digits() -> ExpressionError:
    return ExpressionError(f"number too large (over {MAX_INT_DIGITS} digits)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _digits(value: int) -> int:
    # log10(2) = 0.30103: an upper bound of the decimal digits, without converting.
    return value.bit_length() * 30103 // 100000 + 1


# ---------------------------------------------------------------------------------------------
# The budget of one render


class _Budget:
    """What one render may still do; every guarded operation draws on it.

    Sizes of lists and mappings are remembered by identity for the render (with a reference, so
    an id is not reused), so a big input is measured once however often a template touches it.
    """

    def __init__(self) -> None:
        self.loops = MAX_LOOP_ITERATIONS
        self.work = MAX_WORK
        self._sizes: dict[int, tuple[Any, int]] = {}

    def charge(self, units: int) -> None:
        self.work -= units
        if self.work < 0:
            raise ExpressionError(f"expression does too much work (over {MAX_WORK} steps)")

    def size(self, value: Any, depth: int = 0) -> int:
        """About the length of `value` as JSON text; refuses values over `MAX_VALUE_SIZE`."""
        if isinstance(value, str | bytes):
            return len(value) + 2
        if isinstance(value, Undefined) or value is None or isinstance(value, bool | float):
            return 8
        if isinstance(value, int):
            return _digits(value)
        if not isinstance(value, list | tuple | dict):
            return 8
        known = self._sizes.get(id(value))
        if known is not None:
            return known[1]
        if depth >= MAX_VALUE_DEPTH:
            raise ExpressionError(f"value nested more than {MAX_VALUE_DEPTH} deep")
        total = 2
        self.charge(_ELEMENT_COST * (2 * len(value) if isinstance(value, dict) else len(value)))
        parts: Iterable[Any] = (
            (x for pair in value.items() for x in pair) if isinstance(value, dict) else value
        )
        for part in parts:
            # Text and numbers inline: this walk is the guard's own cost, keep it cheap.
            kind = part.__class__
            if kind is str:
                total += len(part) + 4
            elif kind is int:
                total += part.bit_length() * 30103 // 100000 + 3
            elif kind is float or kind is bool or part is None:
                total += 10
            else:
                total += self.size(part, depth + 1) + 2
            if total > MAX_VALUE_SIZE:
                raise _too_large_value()
        if total >= 64:
            self._sizes[id(value)] = (value, total)
        return total

    def known(self, value: Any, size: int) -> None:
        """Remember the size of a value an operation made from measured parts (`list * n`)."""
        if size > MAX_VALUE_SIZE:
            raise _too_large_value()
        self.charge(size // (4 * _CHARS_PER_UNIT))
        if size >= 64:
            self._sizes[id(value)] = (value, size)

    def result(self, value: Any) -> Any:
        """Check and pay for a value an operation made; an iterator is paid for item by item."""
        if isinstance(value, str | bytes):
            if len(value) > MAX_OUTPUT_CHARS:
                raise _too_large()
            self.charge(_OP_COST + len(value) // _CHARS_PER_UNIT)
        elif _is_int(value):
            if value.bit_length() > _MAX_INT_BITS:
                raise _too_many_digits()
            self.charge(_OP_COST + value.bit_length() // 64)
        elif isinstance(value, list | tuple | dict):
            self.charge(_OP_COST)
            self.size(value)
        elif isinstance(value, Iterator) and not isinstance(value, Undefined):
            return self.items(value)
        else:
            self.charge(_OP_COST)
        return value

    def items(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for item in iterator:
            yield self.result(item)

    def each(self, iterable: Any, cost: int) -> Iterator[Any]:
        """A loop's iterable, counted: one iteration and `cost` work units per item."""
        for item in iterable:
            self.loops -= 1
            if self.loops < 0:
                raise ExpressionError(f"loops ran more than {MAX_LOOP_ITERATIONS} iterations")
            self.charge(cost)
            yield item

    def text(self, value: Any) -> str:
        """A value as text: lists and mappings as JSON, anything else as `str()` does."""
        if isinstance(value, str):
            self.charge(1 + len(value) // _CHARS_PER_UNIT)
            return value
        if isinstance(value, list | tuple | dict):
            size = self.size(value)
            if size > MAX_OUTPUT_CHARS:
                raise _too_large()
            # json.dumps: 15-100 ns per element, a few characters each.
            self.charge(size // 4)
            try:
                rendered = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                # Keys JSON cannot have (a tuple); Python's text is still better than nothing.
                rendered = str(value)
        else:
            if _is_int(value) and value.bit_length() > _MAX_INT_BITS:
                raise _too_many_digits()
            rendered = str(value)
        return str(self.result(rendered))


def _budget_of(context: Context) -> _Budget:
    # The render's own variables are in `parent`: a plain dict lookup (this runs for every guard).
    budget = context.parent.get(_BUDGET)
    # Only a template compiled here renders, always with a budget; a fresh one keeps bounds anyway.
    return budget if isinstance(budget, _Budget) else _Budget()


# ---------------------------------------------------------------------------------------------
# Size checks made before an operation allocates


def _check_sizes(*values: Any) -> None:
    """Refuse an int argument that would make a result longer than the cap."""
    for value in values:
        if _is_int(value) and value > MAX_OUTPUT_CHARS:
            raise _too_large()


def _estimate(budget: _Budget, estimate: int) -> None:
    if estimate > MAX_OUTPUT_CHARS:
        raise _too_large()


def _format_fields(template: str) -> list[tuple[str | None, str]]:
    try:
        return [(field, spec or "") for _, field, spec, _ in string.Formatter().parse(template)]
    except ValueError as exc:
        raise ExpressionError(f"bad format string: {exc}") from None


def _check_brace_format(
    budget: _Budget, template: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """`'{:>N}'.format(...)`: refuse over-long widths, widths from arguments, over-long results.

    A result is too long when the template plus its fields times the largest argument is.
    """
    fields = [(field, spec) for field, spec in _format_fields(template) if field is not None]
    for _, spec in fields:
        if "{" in spec or any(int(n) > MAX_OUTPUT_CHARS for n in re.findall(r"\d+", spec)):
            raise _too_large()
    widest = max((budget.size(v) for v in (*args, *kwargs.values())), default=0)
    _estimate(budget, len(template) + len(fields) * widest)


_PERCENT_SPEC = re.compile(r"%(?:%|(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?)")


def _check_percent_format(budget: _Budget, template: str, args: Any) -> None:
    """`'%Ns' % x` and `'%(name)Ns' % m`: refuse over-long widths and over-long results.

    `*` widths are checked in the arguments; a result is too long when the template plus its
    fields times the largest argument is.
    """
    specs = [m for m in _PERCENT_SPEC.finditer(template) if m.group(0) != "%%"]
    for spec in specs:
        for part in spec.groups():
            if part and part.isdigit() and int(part) > MAX_OUTPUT_CHARS:
                raise _too_large()
            if part == "*":
                _check_sizes(*(args if isinstance(args, tuple) else (args,)))
    values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
    widest = max((budget.size(v) for v in values), default=0)
    _estimate(budget, len(template) + len(specs) * widest)


#: Filters that read an attribute named by an argument: the argument's position (after the value).
_ATTRIBUTE_ARGS = {
    "attr": 0,
    "selectattr": 0,
    "rejectattr": 0,
    "groupby": 0,
    "sort": 2,
    "unique": 1,
    "min": 1,
    "max": 1,
    "sum": 0,
    "join": 1,
    "map": -1,
}


def _private(name: Any) -> str | None:
    """The `_`-part of an attribute path such as `'a.__class__'`, if it has one."""
    if not isinstance(name, str):
        return None
    return next((part for part in name.split(".") if part.startswith("_")), None)


def _check_attribute_names(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    for attribute in _attribute_args(name, args, kwargs):
        private = _private(attribute)
        if private is not None:
            # "unsafe", as Jinja's sandboxed environment says for the same access.
            raise ExpressionError(
                f"access to attribute {private!r} is unsafe (names starting with _ are private)"
            )


def _refuse_private(name: str) -> ExpressionError:
    return ExpressionError(f"access to {name!r} is not allowed (names starting with _ are private)")


def _attribute_args(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    """The arguments of filter `name` that name attributes (`map('attr', x)` names one too)."""
    position = _ATTRIBUTE_ARGS.get(name)
    if position is None:
        return []
    found = [kwargs["attribute"]] if "attribute" in kwargs else []
    if position >= 0 and len(args) > position:
        found.append(args[position])
    elif position < 0 and args and isinstance(args[0], str) and args[0] != "map":
        found.extend(_attribute_args(args[0], args[1:], kwargs))
    return found


def _check_width_filter(budget: _Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    """`center`/`truncate`: a width over the cap."""
    _check_sizes(*args, *kwargs.values())


def _check_indent(budget: _Budget, value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    step = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    text = str(value)
    _estimate(budget, len(text) + step * (text.count("\n") + 1))


def _check_wordwrap(budget: _Budget, value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    width = kwargs.get("width", width)
    text = str(value)
    lines = len(text) // max(width if _is_int(width) else 1, 1) + len(text.split()) + 1
    _estimate(budget, len(text) + lines * len(str(wrap)))


def _check_replace(
    budget: _Budget, value: Any, old: Any = "", new: Any = "", *args: Any, **kwargs: Any
) -> None:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    _estimate(budget, len(text) + hits * len(new))


def _check_count_filter(budget: _Budget, value: Any, count: Any = 1, *args: Any, **kwargs: Any) -> None:
    # `slice(n)` loops n times whatever the input: a CPU bomb, not just a memory one.
    if _is_int(count) and count > MAX_RANGE:
        raise ExpressionError(f"more than {MAX_RANGE} groups")


def _check_format_filter(budget: _Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent_format(budget, str(value), kwargs if kwargs else tuple(args))


def _indentation(value: Any, step: int, level: int = 1) -> int:
    """The characters indenting `value`'s lines when dumped with `indent=step` (a line per part)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list | tuple):
        return 0
    return sum(level * step + 1 + _indentation(item, step, level + 1) for item in value) + level * step


def _check_tojson(budget: _Budget, value: Any, indent: Any = None) -> None:
    size = budget.size(value)
    step = len(indent) if isinstance(indent, str) else indent if _is_int(indent) else 0
    if step > MAX_OUTPUT_CHARS:
        raise _too_large()
    budget.charge(size // 4)
    _estimate(budget, size + (_indentation(value, step) if step > 0 else 0))


def _check_pprint(budget: _Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    # pprint breaks long values into a line per part, indented one space per level.
    size = budget.size(value)
    # pprint is pure Python and re-measures nested parts: measured 1 ms per 1,000 numbers.
    budget.charge(20 * size)
    _estimate(budget, size + _indentation(value, 1))


def _check_urlize(budget: _Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    # Every link found (at most one per 4 characters) carries `target`/`rel` again.
    extra = sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, str))
    text = str(value)
    _estimate(budget, 3 * len(text) + (len(text) // 4 + 1) * extra)


# ---------------------------------------------------------------------------------------------
# Filters


def _guarded_filter(
    name: str, original: Callable[..., Any], check: Callable[..., None] | None = None
) -> Callable[..., Any]:
    """A filter that refuses `_`-attributes, runs `check` before the original, pays for its result.

    A `_`-attribute in its arguments (`attr('__class__')`) is refused at load time when constant;
    at run time, when it comes from an input, here (Jinja's sandboxed environment would only hand back an
    undefined value, which `sort`/`min` on one item never look at).
    """
    kind = getattr(original, "jinja_pass_arg", None)

    per_element = _FILTER_ELEMENT_COST if name in _ITERATING_FILTERS else 0
    per_kilochar = _TEXT_FILTER_COST.get(name, 1000 // _CHARS_PER_UNIT)

    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget_of(context)
        budget.charge(_OP_COST + _input_cost(value, per_element, per_kilochar))
        _check_attribute_names(name, args, kwargs)
        if check is not None:
            check(budget, value, *args, **kwargs)
        if kind is _PassArg.context:
            lead: tuple[Any, ...] = (context,)
        elif kind is _PassArg.eval_context:
            lead = (context.eval_ctx,)
        elif kind is _PassArg.environment:
            lead = (context.environment,)
        else:
            lead = ()
        return budget.result(original(*lead, value, *args, **kwargs))

    functools.update_wrapper(guarded, original)
    return pass_context(guarded)


def _input_cost(value: Any, per_element: int, per_kilochar: int) -> int:
    """What reading `value` costs a filter (an iterator pays as it is consumed)."""
    if isinstance(value, str):
        return len(value) * max(per_element * 1000, per_kilochar) // 1000
    if per_element and isinstance(value, list | tuple | dict | range):
        return len(value) * per_element
    return 0


def _materialized(budget: _Budget, value: Any) -> Any:
    if isinstance(value, Iterator) and not isinstance(value, Undefined):
        return list(budget.items(value))
    return value


@pass_context
def _join(context: Context, value: Any, d: str = "", attribute: Any = None) -> str:
    """`join`, measured first: the items and separators together must fit the cap."""
    budget = _budget_of(context)
    budget.charge(_OP_COST + _input_cost(value, _FILTER_ELEMENT_COST, 0))
    _check_attribute_names("join", (d, attribute), {})
    items = _materialized(budget, value)
    if isinstance(items, list | tuple):
        parts = items
        if attribute is not None:
            getter = _attribute_getter(context, attribute)
            parts = [getter(x) for x in items]
        _estimate(budget, sum(budget.size(x) for x in parts) + len(str(d)) * len(parts))
        return str(budget.result(str(d).join(budget.text(x) for x in parts)))
    return str(budget.result(_BUILTIN_FILTERS["join"](context.eval_ctx, items, d, attribute)))


def _attribute_getter(context: Context, attribute: Any) -> Callable[[Any], Any]:
    from jinja2.filters import make_attrgetter

    return make_attrgetter(context.environment, attribute)


@pass_context
def _sum(context: Context, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """`sum`, linear: `sum(start=[])` joins lists in one pass instead of copying at every item."""
    budget = _budget_of(context)
    budget.charge(_OP_COST + _input_cost(iterable, _FILTER_ELEMENT_COST, 0))
    _check_attribute_names("sum", (attribute,), {})
    items = _materialized(budget, iterable)
    if attribute is not None:
        getter = _attribute_getter(context, attribute)
        items = [getter(x) for x in items]
    if isinstance(start, str):
        raise TypeError("sum can't sum strings [use join instead]")
    if isinstance(start, list | tuple):
        total = list(start)
        for item in items:
            if not isinstance(item, type(start)):
                raise TypeError(f"can only concatenate {type(start).__name__} (not {type(item).__name__})")
            total.extend(item)
            budget.charge(len(item))
        return budget.result(type(start)(total))
    result = start
    for item in items:
        result = _binop(budget, "+", result, item)
    return result


@pass_context
def _string(context: Context, value: Any) -> str:
    """`string`: text as in output, so a list or mapping is JSON."""
    return _budget_of(context).text(value)


@pass_context
def _guard_each(context: Context, iterable: Any, cost: int) -> Iterator[Any]:
    return _budget_of(context).each(iterable, cost)


@pass_context
def _guard_result(context: Context, value: Any) -> Any:
    return _budget_of(context).result(value)


@pass_context
def _guard_seen(context: Context, value: Any) -> Any:
    # Comparing walks both sides: pay for their size (remembered, so the walk is once).
    budget = _budget_of(context)
    budget.charge(_OP_COST + budget.size(value) // _CHARS_PER_UNIT)
    return value


@pass_context
def _guard_text(context: Context, value: Any) -> str:
    return _budget_of(context).text(value)


@pass_context
def _guard_concat(context: Context, parts: list[Any]) -> str:
    budget = _budget_of(context)
    texts = []
    size = 0
    for part in parts:
        if isinstance(part, list | tuple | dict):
            _estimate(budget, size + budget.size(part))
        texts.append(budget.text(part))
        size += len(texts[-1])
        _estimate(budget, size)
    return str(budget.result("".join(texts)))


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


# ---------------------------------------------------------------------------------------------
# Operators and calls


#: str/bytes methods whose result is as long as one of their arguments says.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _binop(budget: _Budget, operator: str, left: Any, right: Any) -> Any:
    budget.charge(_OP_COST)
    if operator == "**":
        if isinstance(right, int | float) and isinstance(left, int | float):
            digits = _digits(int(abs(left))) if _is_int(left) else 1
            if abs(right) * digits > MAX_POWER_DIGITS and not (_is_int(left) and abs(left) <= 1):
                raise ExpressionError("exponent too large")
        result = left**right
    elif operator == "%":
        if isinstance(left, str):
            _check_percent_format(budget, left, right)
        result = left % right
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and _is_int(times) and times > 0:
                if isinstance(seq, str | bytes) and len(seq) * times > MAX_OUTPUT_CHARS:
                    raise _too_large()
                if isinstance(seq, list | tuple) and (budget.size(seq) - 2) * times > MAX_VALUE_SIZE:
                    raise _too_large_value()
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > _MAX_INT_BITS + 1:
            raise _too_many_digits()
        result = left * right
        if isinstance(result, list | tuple) and result:
            seq, times = (left, right) if isinstance(left, list | tuple) else (right, left)
            budget.known(result, (budget.size(seq) - 2) * times + 2)
    elif operator == "+":
        if isinstance(left, str | bytes) and isinstance(right, str | bytes):
            if len(left) + len(right) > MAX_OUTPUT_CHARS:
                raise _too_large()
        elif (
            isinstance(left, list | tuple)
            and isinstance(right, list | tuple)
            and budget.size(left) + budget.size(right) > MAX_VALUE_SIZE
        ):
            raise _too_large_value()
        result = left + right
    elif operator == "-":
        result = left - right
    elif operator == "/":
        result = left / right
    elif operator == "//":
        result = left // right
    else:  # pragma: no cover - every intercepted operator is handled above
        raise ExpressionError(f"operator {operator!r} is not supported")
    return budget.result(result)


def _check_method_call(
    budget: _Budget, owner: Any, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """Refuse a str/bytes/int method call whose result its arguments would make too large."""
    if isinstance(owner, str | bytes):
        if method in _WIDTH_METHODS:
            _check_sizes(*args, *kwargs.values())
        elif method == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            if _is_int(size):
                _estimate(budget, len(owner) + tabs * size)
        elif method == "replace" and len(args) >= 2 and isinstance(args[1], str | bytes):
            hits = owner.count(args[0]) if args[0] else len(owner) + 1
            _estimate(budget, len(owner) + hits * len(args[1]))
        elif method == "join" and args:
            items = args[0]
            if not isinstance(items, list | tuple):
                raise ExpressionError("join needs a list")
            _estimate(budget, len(owner) * len(items) + sum(budget.size(x) for x in items))
        elif method == "translate" and args and isinstance(args[0], Mapping):
            longest = max((budget.size(v) for v in args[0].values()), default=0)
            _estimate(budget, len(owner) * longest)
    elif _is_int(owner) and method == "to_bytes":
        _check_sizes(*(a for a in (*args, *kwargs.values()) if _is_int(a)))


class _RecipeEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's sandboxed environment as recipes get it: immutable, no side channels, bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "-", "/", "//"})

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja sandboxes `str.format` when the method is looked up, not when it is called.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            # A throwaway budget for the estimate; `call` pays the real one for the result.
            named = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            _check_brace_format(_Budget(), template, () if is_map else args, named)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        budget = _budget_of(__context)
        budget.charge(_MACRO_COST if isinstance(__obj, Macro) else _OP_COST)
        method = getattr(__obj, "__name__", "")
        if owner is not None:
            _check_method_call(budget, owner, method, args, kwargs)
            if isinstance(owner, str | bytes):
                # str methods run in C, a few ns per character.
                budget.charge(len(owner) // _CHARS_PER_UNIT)
        if isinstance(__obj, LoopContext) and args:
            # `loop(children)` in a recursive loop iterates outside the `{% for %}` we count.
            args = (budget.each(args[0], 1), *args[1:])
        return budget.result(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Results are plain dicts with keys like `items`; `steps.x.items` must mean the key,
        # not the dict method Jinja would find first.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _binop(_budget_of(context), operator, left, right)


#: Jinja's own filters, before we wrap them (the wrappers that replace one call these).
_BUILTIN_FILTERS: dict[str, Any] = {}

_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_width_filter,
    "truncate": _check_width_filter,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "slice": _check_count_filter,
    "batch": _check_count_filter,
    "format": _check_format_filter,
    "tojson": _check_tojson,
    "pprint": _check_pprint,
    "urlize": _check_urlize,
}


@functools.lru_cache(maxsize=1)
def _environment() -> _RecipeEnvironment:
    # cache_size=0: compiled templates are cached in `_compiled`; Jinja's own cache takes a
    # threading lock, which Temporal's workflow sandbox forbids. optimized=False: see the module doc.
    env = _RecipeEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        cache_size=0,
        optimized=False,
    )
    for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
        env.globals.pop(name, None)
    env.globals["range"] = _bounded_range
    env.filters.pop("random", None)
    env.filters["contains_any"] = _contains_any
    env.filters["combine"] = _combine
    env.filters["items2dict"] = _items2dict
    env.filters["dict2items"] = _dict2items
    _BUILTIN_FILTERS.update(env.filters)
    for name, original in list(env.filters.items()):
        env.filters[name] = _guarded_filter(name, original, _FILTER_CHECKS.get(name))
    for name, test in list(env.tests.items()):
        env.tests[name] = _guarded_test(test)
    env.filters["join"] = _join
    env.filters["sum"] = _sum
    env.filters["string"] = _string
    # The guards the compiler inserts (`_instrument`); recipes cannot name `_` filters.
    env.filters[_GUARD + "each"] = _guard_each
    env.filters[_GUARD + "result"] = _guard_result
    env.filters[_GUARD + "seen"] = _guard_seen
    env.filters[_GUARD + "text"] = _guard_text
    env.filters[_GUARD + "concat"] = _guard_concat
    return env


def _guarded_test(original: Any) -> Callable[..., Any]:
    """A test (`is eq(x)`, `is in(y)`) that pays for the size of what it compares."""
    kind = getattr(original, "jinja_pass_arg", None)

    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget_of(context)
        budget.charge(_OP_COST + sum(budget.size(v) for v in (value, *args)) // _CHARS_PER_UNIT)
        if kind is _PassArg.context:
            return original(context, value, *args, **kwargs)
        if kind is _PassArg.eval_context:
            return original(context.eval_ctx, value, *args, **kwargs)
        if kind is _PassArg.environment:
            return original(context.environment, value, *args, **kwargs)
        return original(value, *args, **kwargs)

    functools.update_wrapper(guarded, original)
    return pass_context(guarded)


# ---------------------------------------------------------------------------------------------
# Compiling


def is_template(value: Any) -> bool:
    """Whether a string contains template syntax."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(source: str) -> str | None:
    match = _SINGLE_EXPR.match(source)
    return match.group("expr") if match else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _compile_failure(exc: BaseException) -> ExpressionError:
    """Whatever Jinja or Python's compiler raised, as one line."""
    if isinstance(exc, ExpressionError):
        return exc
    if isinstance(exc, RecursionError):
        return ExpressionError("expression nested too deeply")
    if isinstance(exc, MemoryError):
        return ExpressionError("expression too large to compile")
    message = _one_line(exc)
    if "integer string conversion" in message:
        return ExpressionError(f"number literal too long (over {MAX_INT_DIGITS} digits)")
    if isinstance(exc, TemplateError):
        return ExpressionError(message)
    if isinstance(exc, SyntaxError) and "nested" in message:
        return ExpressionError(f"expression nested too deeply ({exc.msg})")
    return ExpressionError(f"expression cannot be compiled ({type(exc).__name__}: {message})")


_BLOCKS = (nodes.For, nodes.If, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With, nodes.Scope)


def _check_shape(tree: nodes.Node) -> None:
    """Refuse trees over `MAX_NODES` parts, `MAX_DEPTH` levels or `MAX_BLOCK_DEPTH` nested blocks."""
    count = 0
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 0)]
    while stack:
        node, depth, blocks = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression too large (over {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested too deeply (over {MAX_DEPTH} levels)")
        inner = blocks + 1 if isinstance(node, _BLOCKS) else blocks
        if inner > MAX_BLOCK_DEPTH:
            raise ExpressionError(f"expression nested too deeply (blocks over {MAX_BLOCK_DEPTH} levels)")
        stack.extend((child, depth + 1, inner) for child in node.iter_child_nodes())


def _parse(source: str) -> nodes.Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise ExpressionError(f"expression longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = _environment().parse(source)
    except Exception as exc:
        raise _compile_failure(exc) from None
    _check_shape(tree)
    return tree


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def _check_private(tree: nodes.Template) -> None:
    for node in _walk(tree):
        names: list[Any] = []
        if isinstance(node, nodes.Getattr):
            names.append(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            names.append(node.arg.value)
        elif isinstance(node, nodes.Name):
            names.append(node.name)
        elif isinstance(node, nodes.Filter | nodes.Test):
            names.append(node.name)
            if isinstance(node, nodes.Filter):
                args = [a.value if isinstance(a, nodes.Const) else None for a in node.args]
                kwargs = {str(k.key): k.value.value for k in node.kwargs if isinstance(k.value, nodes.Const)}
                names.extend(_private(a) for a in _attribute_args(node.name, args, kwargs))
        elif (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr in ("format", "format_map")
            and isinstance(node.node.node, nodes.Const)
            and isinstance(node.node.node.value, str)
        ):
            # `'{0.__class__}'.format(x)`: the field names are attribute paths too.
            for field, _ in _format_fields(node.node.node.value):
                names.extend(re.split(r"[.\[\]]", field or "")[1:])
        for name in names:
            if isinstance(name, str) and name.startswith("_"):
                raise _refuse_private(name)


@functools.lru_cache(maxsize=4096)
def _checked(source: str) -> nodes.Template:
    tree = _parse(source)
    _check_private(tree)
    return tree


@functools.lru_cache(maxsize=4096)
def check_source(source: str) -> nodes.Template:
    """Compile-check a template and reject access to Python internals; returns the parsed tree.

    Raises:
        ExpressionError: syntax error, a forbidden name/attribute, or an expression too large or
            too deeply nested to compile.
    """
    tree = _checked(source)
    _compiled(source)
    return tree


def check_constant(source: str) -> None:
    """Evaluate an expression that reads no names (at load time), with the run-time budgets.

    Raises:
        ExpressionError: as `evaluate` would at run time (`range(10**9)`, `'a' * 10**9`…).
    """
    problem = _constant_problem(source)
    if problem is not None:
        raise ExpressionError(problem)


@functools.lru_cache(maxsize=4096)
def _constant_problem(source: str) -> str | None:
    # The outcome is remembered, so a recipe repeating one bomb pays for it once.
    try:
        evaluate(source, {})
    except ExpressionError as exc:
        return str(exc)
    return None


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


def _guard(name: str, value: nodes.Node, *args: nodes.Expr) -> nodes.Expr:
    guarded = nodes.Filter(value, _GUARD + name, list(args), [], None, None)
    guarded.set_lineno(value.lineno or 1)
    return guarded


def _body_cost(body: Sequence[nodes.Node]) -> int:
    """Work units of one loop iteration: one per part of the body, plus its literal text."""
    cost = 1
    for statement in body:
        for node in _walk(statement):
            cost += 1 + (len(node.data) // _CHARS_PER_UNIT if isinstance(node, nodes.TemplateData) else 0)
    return cost


def _instrument(node: nodes.Node) -> nodes.Node:
    """The tree with a budget guard around every operation Python would run unchecked."""
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, nodes.Node):
            setattr(node, field, _instrument(value))
        elif isinstance(value, list):
            setattr(node, field, [_instrument(v) if isinstance(v, nodes.Node) else v for v in value])
    if isinstance(node, nodes.For):
        node.iter = _guard("each", node.iter, nodes.Const(_body_cost([*node.body, *node.else_])))
    elif isinstance(node, nodes.Output):
        node.nodes = [n if isinstance(n, nodes.TemplateData) else _guard("text", n) for n in node.nodes]
    elif isinstance(node, nodes.Concat):
        return _guard("concat", nodes.List(node.nodes, lineno=node.lineno))
    elif isinstance(node, nodes.Compare):
        node.expr = _guard("seen", node.expr)
        for operand in node.ops:
            operand.expr = _guard("seen", operand.expr)
    elif (
        isinstance(node, nodes.List | nodes.Dict)
        or (isinstance(node, nodes.Tuple) and node.ctx == "load")
        or (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice))
    ):
        # Literals and slices build new values Python does not bound.
        return _guard("result", node)
    return node


def _name_path(node: nodes.Node) -> tuple[str, ...] | None:
    """`inputs.hashtag`, `steps.scan.items`, `video`: the names of a plain lookup, else None."""
    names: list[str] = []
    while isinstance(node, nodes.Getattr):
        names.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    names.append(node.name)
    if any(name.startswith("_") for name in names):
        return None  # refused at load time; at run time the sandbox says why
    return tuple(reversed(names))


def _looked_up(path: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    """The value a plain lookup finds through mappings, as `_RecipeEnvironment.getattr` does first.

    `_MISSING` for anything else (a missing name or key, an attribute of a non-mapping): the
    compiled expression then evaluates it, so its result and its error are Jinja's own.
    """
    value = context.get(path[0], _MISSING)
    for name in path[1:]:
        if not isinstance(value, Mapping) or name not in value:
            return _MISSING
        value = value[name]
    return value


_MISSING: Any = object()


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    # The bounds, not the `_`-name check: at run time Jinja's sandboxed environment is the second wall
    # against those.
    env = _environment()
    expr = _single_expression(source)
    parsed = _parse(source) if expr is None else None
    if len(source) > MAX_SOURCE_CHARS:
        raise ExpressionError(f"expression longer than {MAX_SOURCE_CHARS} characters")
    try:
        if expr is not None:
            # As `env.compile_expression`, with the tree instrumented before it is compiled.
            parser = Parser(env, expr, state="variable")
            node = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno, None, None)
            _check_shape(node)
            path = _name_path(node)
            body = [nodes.Assign(nodes.Name("result", "store"), _instrument(node), lineno=1)]
            tree = nodes.Template(body, lineno=1)
            tree.set_environment(env)
            compiled = TemplateExpression(env.from_string(tree), undefined_to_none=False)
            if path is not None:
                return ("path", (path, compiled))
            return ("expr", compiled)
        assert parsed is not None
        _instrument(parsed)
        parsed.set_environment(env)
        return ("text", env.from_string(parsed))
    except Exception as exc:
        raise _compile_failure(exc) from None


# ---------------------------------------------------------------------------------------------
# Evaluating


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one template string against `context`.

    Raises:
        ExpressionError: the template fails (undefined name, forbidden access, too large, too
            much work…); never anything else, so a workflow fails the step, not its task.
    """
    budget = _Budget()
    try:
        kind, compiled = _compiled(source)
        if kind == "path":
            # Most expressions only read a value (`{{ steps.videos.items }}`): no operation to
            # bound, so no render is needed to find it (a render costs 10-30 µs).
            path, compiled = compiled
            result = _looked_up(path, context)
            if result is _MISSING:
                result = compiled(**context, **{_BUDGET: budget})
            if not _is_plain(result):
                result = _plain(budget, result)
        elif kind == "expr":
            result = compiled(**context, **{_BUDGET: budget})
            if not _is_plain(result):
                result = _plain(budget, result)
        else:
            result = _render(compiled, context, budget)
    except ExpressionError:
        raise
    except TemplateError as exc:
        raise ExpressionError(_one_line(exc)) from None
    except RecursionError:
        raise ExpressionError("recursion too deep (a macro that calls itself without end?)") from None
    except MemoryError:
        raise ExpressionError("out of memory (a result too large)") from None
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {_one_line(exc)}") from None
    if isinstance(result, str) and len(result) > MAX_OUTPUT_CHARS:
        raise _too_large()
    return result


def _render(template: Any, context: Mapping[str, Any], budget: _Budget) -> str:
    """Render text piece by piece, stopping as soon as it passes the cap (not after building it)."""
    pieces: list[str] = []
    size = 0
    for piece in template.generate(**context, **{_BUDGET: budget}):
        size += len(piece)
        if size > MAX_OUTPUT_CHARS:
            raise _too_large()
        pieces.append(piece)
    return "".join(pieces)


_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` is plain data already (the common case, checked without copying)."""
    kind = value.__class__
    if kind in _PLAIN_SCALARS:
        return True
    if depth >= MAX_VALUE_DEPTH:
        return False
    if kind is dict:
        return all(
            k.__class__ in _PLAIN_SCALARS and (v.__class__ in _PLAIN_SCALARS or _is_plain(v, depth + 1))
            for k, v in value.items()
        )
    if kind is list or kind is tuple:
        return all(v.__class__ in _PLAIN_SCALARS or _is_plain(v, depth + 1) for v in value)
    return False


def _plain(budget: _Budget, value: Any, depth: int = 0) -> Any:
    """A native result as plain data a workflow can store; iterators become lists.

    Anything else that is not text, a number, a list or a mapping (an undefined value inside a
    list, a complex number, a macro) is an error here rather than a workflow task failing on it.
    """
    if isinstance(value, str | int | float) or value is None:
        return value
    if isinstance(value, Undefined):
        # Jinja only complains about an undefined value when it is used.
        raise ExpressionError(value._undefined_message)
    if depth >= MAX_VALUE_DEPTH:
        raise ExpressionError(f"value nested more than {MAX_VALUE_DEPTH} deep")
    if isinstance(value, Iterator | range | MappingView):
        # `{{ items | map('upper') }}`, `{{ range(3) }}`, `{{ d.keys() }}`: the list they stand for.
        value = list(budget.items(iter(value)))  # type: ignore[arg-type]
    if isinstance(value, list | tuple):
        items = [_plain(budget, item, depth + 1) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ExpressionError(f"a mapping key must be text or a number, not {type(key).__name__}")
            plain[key] = _plain(budget, item, depth + 1)
        return value if all(plain[k] is value[k] for k in value) else plain
    raise ExpressionError(f"result is a {type(value).__name__}, not text, a number, a list or a mapping")


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


# Built at import (outside Temporal's workflow sandbox), so workflow code only ever uses it.
_environment()
