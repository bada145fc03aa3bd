"""`tikflow actions`: every action a recipe can `call:`, with its endpoint and its `with:` fields."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from activities.registry import Action, load_actions

__all__ = ["action_summary", "add_parser", "cmd_actions"]


def add_parser(subparsers: Any) -> None:
    """Add `actions [--json] [PROVIDER]` to the `tikflow` command line."""
    p = subparsers.add_parser("actions", help="list the actions recipes can call, with their inputs")
    p.add_argument("provider", nargs="?", metavar="PROVIDER", help="only this provider's actions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_actions)


def _type_name(annotation: Any) -> str:
    """A readable type: `str`, `int | None`, `'all' | 'likes'`."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(value) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type) and origin is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _field_summary(name: str, info: FieldInfo) -> dict[str, Any]:
    required = info.is_required()
    default: Any = None
    if not required:
        default = (
            info.get_default(call_default_factory=True) if info.default is PydanticUndefined else info.default
        )
    return {
        "name": info.alias or name,
        "type": _type_name(info.annotation),
        "required": required,
        "default": default,
        "description": info.description or "",
    }


def action_summary(act: Action[Any]) -> dict[str, Any]:
    """What `tikflow actions --json` prints for one action."""
    return {
        "name": act.name,
        "provider": act.provider,
        "endpoint": act.endpoint,
        "side_effect": act.side_effect,
        "sandbox": act.sandbox,
        "description": act.description,
        "inputs": [_field_summary(name, info) for name, info in act.input_model.model_fields.items()],
    }


def cmd_actions(args: argparse.Namespace) -> int:
    """`tikflow actions [--json] [PROVIDER]`: list registered actions."""
    registry = load_actions()
    chosen = [act for name, act in sorted(registry.items()) if args.provider in (None, act.provider)]
    if args.provider is not None and not chosen:
        providers = sorted({act.provider for act in registry.values()})
        print(
            f"tikflow actions: no actions for {args.provider!r}; providers: {', '.join(providers)}",
            file=sys.stderr,
        )
        return 1
    summaries = [action_summary(act) for act in chosen]
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
        return 0
    for summary in summaries:
        marks = " [side effect]" if summary["side_effect"] else ""
        print(f"{summary['name']}  {summary['endpoint']}{marks}")
        if summary["description"]:
            print(f"    {summary['description']}")
        for field in summary["inputs"]:
            default = "required" if field["required"] else f"default {field['default']!r}"
            print(f"    {field['name']}: {field['type']} ({default})  {field['description']}".rstrip())
    return 0
