"""Recipe expressions: native values, text rendering, and a sandbox that fails safely."""

from __future__ import annotations

import pytest

from workflows.expressions import (
    MAX_OUTPUT_CHARS,
    ExpressionError,
    check_source,
    evaluate,
    evaluate_value,
    referenced_names,
    referenced_steps,
    truthy,
)

CONTEXT = {
    "inputs": {"hashtag": "cats", "limit": 3, "huge": 10**10},
    "steps": {"videos": {"items": [{"id": "1"}, {"id": "2"}], "count": 2}},
    "vars": {},
}


def test_single_expression_evaluates_to_its_native_value():
    assert evaluate("{{ steps.videos.items }}", CONTEXT) == [{"id": "1"}, {"id": "2"}]
    assert evaluate("  {{ inputs.limit + 1 }}  ", CONTEXT) == 4
    assert evaluate("{{ inputs.limit > 2 }}", CONTEXT) is True
    assert evaluate("{{ none }}", CONTEXT) is None


@pytest.mark.parametrize(
    "source",
    [
        "{{ steps.videos.items }}",
        "{{ steps.videos.count }}",
        "{{ inputs }}",
        "{{ steps.videos.items.real }}",  # a list has no such key: Jinja decides
        "{{ inputs.hashtag.upper }}",  # an attribute of text, not a key: Jinja decides
        "{{ range }}",  # a global, not in the context
        "{{ steps.missing.items }}",
        "{{ nothing }}",
        "{{ inputs.hashtag.nothing }}",
    ],
)
def test_a_plain_lookup_finds_what_the_full_expression_finds(source):
    """A lookup (`{{ a.b.c }}`) skips the render only where a mapping has the key; its value, or
    its error, is the same as the rendered expression's (a parenthesized copy is not a lookup)."""
    rendered = source.replace("{{ ", "{{ (").replace(" }}", ") if true else none }}")

    def outcome(text):
        try:
            return ("value", evaluate(text, CONTEXT))
        except ExpressionError as exc:
            return ("error", str(exc))

    assert outcome(source) == outcome(rendered)


def test_a_plain_lookup_returns_the_value_itself():
    assert evaluate("{{ steps.videos.items }}", CONTEXT) is CONTEXT["steps"]["videos"]["items"]


def test_mixed_text_renders_to_a_string():
    assert evaluate("#{{ inputs.hashtag }} x{{ inputs.limit }}", CONTEXT) == "#cats x3"
    assert evaluate("{{ inputs.limit }}{{ inputs.limit }}", CONTEXT) == "33"


def test_items_key_of_a_result_is_the_key_not_the_dict_method():
    assert evaluate("{{ steps.videos.items | length }}", CONTEXT) == 2
    assert evaluate("{{ steps.videos['items'][1].id }}", CONTEXT) == "2"


def test_evaluate_value_walks_nested_mappings_and_lists():
    value = {"name": "{{ inputs.hashtag }}", "ids": ["{{ steps.videos.items[0].id }}", 7], "plain": "x"}
    assert evaluate_value(value, CONTEXT) == {"name": "cats", "ids": ["1", 7], "plain": "x"}


def test_undefined_name_is_an_expression_error():
    with pytest.raises(ExpressionError, match="'secrets' is undefined"):
        evaluate("{{ secrets.key }}", CONTEXT)
    with pytest.raises(ExpressionError, match="has no attribute 'missing'"):
        evaluate("{{ inputs.missing }}", CONTEXT)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ ''['__class__'] }}", "__class__"),
        ("{{ cycler.__init__.__globals__ }}", "__globals__"),
        ("{{ lipsum.__globals__ }}", "__globals__"),
    ],
)
def test_private_attributes_are_rejected_at_load_time(source: str, message: str):
    with pytest.raises(ExpressionError, match=f"access to '{message}' is not allowed"):
        check_source(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__ }}", "unsafe"),
        ("{{ '' | attr('__class__') }}", "unsafe"),
        ("{{ '{0.__class__}'.format(1) }}", "unsafe"),
        ("{{ steps.videos.items.append(3) }}", "unsafe"),
        ("{{ range(10**9) | length }}", "range\\(\\) of more than"),
        ("{{ 'a' * 10**9 }}", "result too large"),
        ("{{ [0] * 10**9 }}", "result too large"),
        ("{{ 10 ** 100000 }}", "exponent too large"),
        # Size set by an argument: refused before anything is allocated.
        ("{{ 'a'.ljust(10**10) }}", "result too large"),
        ("{{ 'a'.center(inputs.huge) }}", "result too large"),
        ("{{ 'a'.zfill(10**10) }}", "result too large"),
        ("{{ 'a\tb'.expandtabs(10**10) }}", "result too large"),
        ("{{ '{:>9999999999}'.format(1) }}", "result too large"),
        ("{{ '{:>{w}}'.format(1, w=inputs.huge) }}", "result too large"),
        ("{{ '%9999999999s' % 'a' }}", "result too large"),
        ("{{ '%*s' % (inputs.huge, 'a') }}", "result too large"),
        ("{{ '%9999999999d' | format(1) }}", "result too large"),
        ("{{ 'a' | center(inputs.huge) }}", "result too large"),
        ("{{ 'a\nb' | indent(inputs.huge) }}", "result too large"),
        ("{{ ('a' * 1000000).replace('a', 'bb') }}", "result too large"),
        ("{{ 'x'.join(['a'] * 600000) }}", "result too large"),
        ("{{ [1] | slice(10**9) | list }}", "more than 10000 groups"),
        ("{{ lipsum() }}", "'lipsum' is undefined"),
        ("{{ cycler(1, 2) }}", "'cycler' is undefined"),
        ("{{ namespace() }}", "'namespace' is undefined"),
        ("{{ [1, 2] | random }}", "No filter named 'random'"),
        # CPU without output: nested loops share one budget; recursion ends in an error.
        (
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            "loops ran more than 1000000 iterations",
        ),
        (
            "{% for a in range(1000) %}{% for b in steps.videos.items * 600 %}{% endfor %}{% endfor %}",
            "loops ran more than",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"),
    ],
)
def test_sandbox_escapes_and_bombs_fail_with_an_expression_error(source: str, message: str):
    with pytest.raises(ExpressionError, match=message):
        evaluate(source, CONTEXT)


def test_evaluation_cannot_mutate_the_context():
    with pytest.raises(ExpressionError):
        evaluate("{{ inputs.update({'hashtag': 'dogs'}) }}", CONTEXT)
    assert CONTEXT["inputs"]["hashtag"] == "cats"


def test_rendered_output_is_capped():
    loop = "{% for i in range(10000) %}" + "x" * 200 + "{% endfor %}"
    with pytest.raises(ExpressionError, match=f"over {MAX_OUTPUT_CHARS} characters"):
        evaluate(loop, CONTEXT)
    with pytest.raises(ExpressionError, match="result too large"):
        evaluate("{{ 'a'.center(" + str(MAX_OUTPUT_CHARS + 1) + ") }}", CONTEXT)


def test_output_at_the_cap_is_allowed():
    assert len(evaluate("{{ 'a' * " + str(MAX_OUTPUT_CHARS) + " }}", CONTEXT)) == MAX_OUTPUT_CHARS


def test_syntax_error_is_reported_in_one_line():
    with pytest.raises(ExpressionError) as caught:
        check_source("{{ inputs. }}")
    assert "\n" not in str(caught.value)


def test_contains_any_matches_keywords_case_insensitively():
    context = {"text": "What's the PRICE?"}
    assert evaluate("{{ text | contains_any(['price', 'cost']) }}", context) is True
    assert evaluate("{{ text | contains_any(['cost']) }}", context) is False
    assert evaluate("{{ text | contains_any('price') }}", context) is True
    assert evaluate("{{ text | contains_any([]) }}", context) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 1 }}", True),
        ("{{ 0 }}", False),
        ("{{ [] }}", False),
        ("{{ [0] }}", True),
        ("{{ none }}", False),
        ("false", False),
        ("No", False),
        ("0", False),
        ("", False),
        ("None", False),
        ("yes", True),
        ("{{ inputs.hashtag }}", True),
        ("{{ inputs.hashtag == 'dogs' }}", False),
        ("x{{ '' }}", True),
        ("{{ 'false' }}", False),
    ],
)
def test_truthy_reads_conditions_like_a_person_would(source: str, expected: bool):
    assert truthy(source, CONTEXT) is expected


def test_combine_items2dict_dict2items_filters():
    assert evaluate("{{ {'a': 1} | combine({'b': 2}, {'a': 3}) }}", {}) == {"a": 3, "b": 2}
    rows = [{"handle": "x", "n": 1}, {"handle": "y", "n": 2}]
    assert evaluate("{{ rows | items2dict(key_name='handle', value_name='n') }}", {"rows": rows}) == {
        "x": 1,
        "y": 2,
    }
    assert evaluate("{{ {'b': 2, 'a': 1} | dict2items }}", {}) == [
        {"key": "a", "value": 1},
        {"key": "b", "value": 2},
    ]
    with pytest.raises(ExpressionError, match="combine needs mappings"):
        evaluate("{{ {'a': 1} | combine([1]) }}", {})


def test_referenced_names_and_steps_for_load_time_checks():
    tree = check_source("{% for v in steps.videos.items %}{{ v.id }}{{ inputs['limit'] }}{% endfor %}")
    assert referenced_names(tree) == {"steps", "inputs"}
    assert referenced_steps(tree) == {"videos"}
    assert referenced_steps(tree, root="inputs") == {"limit"}


def test_evaluation_is_deterministic():
    source = "{{ steps.videos.items | map(attribute='id') | join(',') }}-{{ range(5) | sum }}"
    assert {evaluate(source, CONTEXT) for _ in range(5)} == {"1,2-10"}


def test_loops_within_the_budget_keep_every_loop_feature():
    source = (
        "{% for v in steps.videos.items %}{{ loop.index }}/{{ loop.length }}:{{ v.id }}"
        "{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}"
    )
    assert evaluate(source, CONTEXT) == "1/2:1, 2/2:2"
    assert evaluate("{% for v in [] %}x{% else %}none{% endfor %}", CONTEXT) == "none"
    # 999 x 1,000 iterations: just under the budget, and each render gets a fresh one.
    nested = "{% for a in range(999) %}{% for b in range(1000) %}{% endfor %}{% endfor %}ok"
    assert [evaluate(nested, CONTEXT) for _ in range(2)] == ["ok", "ok"]


def test_a_deeply_nested_expression_is_refused_at_load_time():
    with pytest.raises(ExpressionError, match="nested too deeply"):
        check_source("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_a_list_or_mapping_inside_text_renders_as_json_not_a_python_repr():
    context = {"steps": {"x": {"a": [1, "é", None, True]}, "y": ["q"]}}
    assert (
        evaluate("got {{ steps.x }} and {{ steps.y }}", context)
        == 'got {"a": [1, "é", null, true]} and ["q"]'
    )
    assert evaluate("{{ 'v=' ~ steps.y }}", context) == 'v=["q"]'
    assert evaluate("{{ steps.x | string }}", context) == '{"a": [1, "é", null, true]}'
    # The whole value stays native.
    assert evaluate("{{ steps.x }}", context) == {"a": [1, "é", None, True]}
    assert evaluate("{{ none }} {{ 1 }} {{ 'a' }}", context) == "None 1 a"
