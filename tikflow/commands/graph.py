"""`tikflow graph FILE`: a recipe's steps as a Mermaid flowchart (paste into any Markdown)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from itertools import count
from typing import Any

from workflows.models import (
    ApprovalStep,
    CallStep,
    ErrorMatch,
    FailStep,
    ForEachStep,
    IfStep,
    NotifyStep,
    Pace,
    ParallelStep,
    Recipe,
    RunRecipeStep,
    SetStep,
    Step,
    TryStep,
    UntilStep,
    WaitForStep,
    WaitStep,
)
from workflows.steps import nested_steps, step_kind

__all__ = ["add_parser", "mermaid"]


def add_parser(subparsers: Any) -> None:
    """Add `graph` to the `tikflow` command line."""
    p = subparsers.add_parser("graph", help="print a recipe's steps as a Mermaid diagram")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    """Validate the recipe, then print its diagram."""
    from tikflow.loader import load_recipe

    loaded = load_recipe(args.file)  # a RecipeError is reported by `tikflow.cli.main`
    print(mermaid(loaded.recipe))
    return 0


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ")[:80] + '"'


class _Graph:
    def __init__(self, recipes: dict[str, Recipe]) -> None:
        self.lines: list[str] = []
        self.ids = count(1)
        # The sub-recipes the steps being drawn can run (a sub-recipe's own, inside it).
        self.recipes = recipes

    def node(self, label: str, shape: str = "[]") -> str:
        node_id = f"n{next(self.ids)}"
        half = len(shape) // 2
        self.lines.append(f"  {node_id}{shape[:half]}{_quote(label)}{shape[half:]}")
        return node_id

    def edge(self, src: str, dst: str, label: str | None = None) -> None:
        arrow = f" -->|{_quote(label)}| " if label else " --> "
        self.lines.append(f"  {src}{arrow}{dst}")

    def steps(self, steps: Sequence[Step], entry: str, label: str | None = None) -> str:
        """Chain `steps` after `entry`; returns the last node."""
        last = entry
        for index, step in enumerate(steps):
            head, tail = self.step(step)
            self.edge(last, head, label if index == 0 else None)
            last = tail
        return last

    def step(self, step: Step) -> tuple[str, str]:
        """Draw one step; its entry node and the node the next step follows."""
        name = step.id or step.name
        prefix = f"{name}: " if name else ""
        match step:
            case IfStep():
                # A head node, the branches, a join node.
                head = self.node(f"{prefix}if {step.when}", "{}")
                join = self.node("", "(())")
                self.edge(self.steps(step.then, head, "yes"), join)
                self.edge(
                    self.steps(step.else_, head, "no") if step.else_ else head,
                    join,
                    None if step.else_ else "no",
                )
                return head, join
            case ParallelStep():
                head = self.node(f"{prefix}parallel", "[[]]")
                join = self.node("", "(())")
                for _, branch in nested_steps(step):
                    self.edge(self.steps(branch, head), join)
                return head, join
            case TryStep():
                # The tried steps, one edge per `catch` from the head (any tried step may fail
                # into it), a join, then `finally`.
                head = self.node(f"{prefix}try", "[[]]")
                join = self.node("", "(())")
                self.edge(self.steps(step.try_, head, "ok"), join)
                for clause in step.catch:
                    self.edge(self.steps(clause.steps, head, _catch_label(clause.match)), join)
                return head, self.steps(step.finally_, join, "finally")
            case ForEachStep():
                # The body loops back to the head.
                head = self.node(
                    f"{prefix}for each {step.as_}"
                    + (f" ×{step.concurrency}" if step.concurrency > 1 else ""),
                    "[[]]",
                )
                self.edge(self.steps(step.steps, head), head, "next")
                return head, head
            case UntilStep():
                node = self.node(f"{prefix}{step.call} every {step.every} until …", "{}")
                self.edge(node, node, "not yet")
                return node, node
            case WaitForStep():
                # A wait with two ways out: the event, or the timeout (which fails the step).
                node = self.node(f"{prefix}wait for {step.wait_for} event", "{{}}")
                if step.on_timeout == "fail":
                    failed = self.node("fail", "[//]")
                    self.edge(node, failed, f"no event in {step.timeout}")
                return node, node
            case ApprovalStep():
                # A person's decision: approve or reject go on to the next step (the recipe's
                # `if` on the decision branches); nobody deciding fails the step unless continued.
                node = self.node(f"{prefix}ask approval: {', '.join(step.approval)}", "{{}}")
                if step.on_timeout == "fail":
                    failed = self.node("fail", "[//]")
                    self.edge(node, failed, f"no decision in {step.timeout}")
                return node, node
            case RunRecipeStep() if step.run in self.recipes:
                # The sub-recipe's steps drawn inside a box named after it, after the call.
                child = self.recipes[step.run]
                head = self.node(f"{prefix}run {child.recipe}", "[[]]")
                self.lines.append(f"  subgraph s{next(self.ids)} [{_quote(f'{child.recipe} ({step.run})')}]")
                outer, self.recipes = self.recipes, child.recipes
                tail = self.steps(child.steps, head)
                self.recipes = outer
                self.lines.append("  end")
                return head, tail
        node = self.node(self.label(step, prefix), _SHAPES.get(step_kind(step), "[]"))
        return node, node

    @staticmethod
    def label(step: Step, prefix: str) -> str:
        """The text of a step drawn as one node."""
        match step:
            case CallStep():
                return (
                    f"{prefix}{step.call}"
                    + (f" (new {getattr(step.new_only, 'key', step.new_only)})" if step.new_only else "")
                    + (f" (pace {_pace(step.pace)})" if step.pace else "")
                )
            case WaitStep():
                return f"{prefix}wait {step.wait}"
            case SetStep():
                return f"{prefix}set {', '.join(step.set)}"
            case FailStep():
                return f"{prefix}fail"
            case NotifyStep():
                return f"{prefix}notify"
        return type(step).__name__


def _catch_label(match: ErrorMatch) -> str:
    """What a `catch` takes, as its edge says it: `catch ProviderRejected tikapi 10202`."""
    parts = [*(match.type or []), match.provider or "", "" if match.code is None else str(match.code)]
    return " ".join(["catch", *(part for part in parts if part)])


def _pace(pace: Pace) -> str:
    """`every 8s, 200/day`: a call's pacing as its node says it."""
    every = f"every {pace.every}" if pace.every else ""
    return ", ".join(part for part in (every, f"{pace.per_day}/day" if pace.per_day else "") if part)


#: The Mermaid shape of each kind drawn as one node (the others: a rectangle).
_SHAPES = {"wait": "([])", "fail": "[//]", "notify": ">]"}


def mermaid(recipe: Recipe) -> str:
    """The recipe as a Mermaid `flowchart TD`; a monitor's loop is drawn back to its start."""
    graph = _Graph(recipe.recipes)
    trigger = "run once"
    if recipe.trigger and recipe.trigger.poll:
        trigger = f"every {recipe.trigger.poll.every}"
    elif recipe.trigger and recipe.trigger.schedule:
        trigger = f"cron {recipe.trigger.schedule.cron}"
    elif recipe.trigger and recipe.trigger.webhook:
        hook = recipe.trigger.webhook
        trigger = f"per event at /hooks/{hook.route}, {hook.auth}"
    if recipe.trigger and recipe.trigger.webhook:
        # The sender is drawn as its own node: a run starts per (filtered, de-duplicated) event.
        sender = graph.node(f"POST /hooks/{recipe.trigger.webhook.route}", ">]")
        start = graph.node(f"{recipe.recipe} ({trigger})", "([])")
        graph.edge(
            sender, start, f"if {recipe.trigger.webhook.filter}" if recipe.trigger.webhook.filter else "event"
        )
    else:
        start = graph.node(f"{recipe.recipe} ({trigger})", "([])")
    last = graph.steps(recipe.steps, start)
    if recipe.trigger and recipe.trigger.poll:
        graph.edge(last, start, f"sleep {recipe.trigger.poll.every}")
    if recipe.on_failure and recipe.on_failure.steps:
        # Reached from any step that fails the run (or from a monitor giving up): drawn on its own.
        failed = graph.node(f"{recipe.recipe} failed", "{{}}")
        graph.edge(start, failed, "a step fails the run")
        graph.steps(recipe.on_failure.steps, failed, "on_failure")
    return "\n".join(["flowchart TD", *graph.lines])
