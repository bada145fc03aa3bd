"""The interpreter: walks a recipe's steps in a scope of values, as Temporal's DSL sample does.

Steps run in order; `for_each` runs its steps per item (a sliding window of `concurrency`),
`parallel` its branches at once, `if` one branch. Expressions are evaluated here, in the
sandboxed template engine, which is deterministic. A step's path (`steps.videos`,
`steps.1[v7].comments`) names it in `status`, in errors and in its calls' idempotency keys.
Calls go through the call policy (`workflows.policy.CallPolicy`), the base of this class.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import ActionRequest
    from workflows.events import Event, mailbox_id, subscribe_mailbox
    from workflows.expressions import ExpressionError, evaluate_value, is_template, truthy
    from workflows.models import (
        ApprovalStep,
        CallStep,
        FailStep,
        ForEachStep,
        IfStep,
        NewOnly,
        NotifyStep,
        ParallelStep,
        RunRecipeStep,
        SetStep,
        Step,
        TryStep,
        UntilStep,
        WaitForStep,
        WaitStep,
        WebhookCredential,
        parse_duration,
    )
    from workflows.patches import APPROVAL_TAG_PATCH, ITEM_KEY_PATCH, NOTIFY_PATCH, SLIDING_WINDOW_PATCH
    from workflows.policy import CallPolicy, RunStopped, StepFailed, failure_message
    from workflows.state import RecipeRun, RunResult, SeenIds
    from workflows.steps import run_condition

__all__ = ["Interpreter", "Scope"]


@dataclass
class Scope:
    """What expressions see: inputs, step results, vars, loop variables, run info."""

    values: dict[str, Any]

    def child(self, **extra: Any) -> Scope:
        """A scope for nested steps: their results and vars are their own, `extra` added."""
        values = dict(self.values)
        values["steps"] = dict(self.values["steps"])
        values["vars"] = dict(self.values["vars"])
        values.update(extra)
        return Scope(values)


class Interpreter(CallPolicy):
    """Runs steps (a base of `RecipeWorkflow`, which sets `_seen` with the rest of the state)."""

    # new_only: the ids seen so far, per step.
    _seen: SeenIds
    # wait_for: the events mailboxes sent this run (oldest first, bounded), their ids, the ids a
    # wait_for already took, the mailboxes subscribed to, and what each wait waits for (`status`).
    _inbox: list[Event]
    _inbox_ids: set[str]
    _inbox_count: int
    _consumed: set[str]
    _subscribed: set[str]
    _event_waits: dict[int, str]
    # approval: what each pending approval shows (its query), what each waits for (`status`),
    # and the first decision each received (the signal; a later one is ignored).
    _approvals: dict[str, dict[str, str]]
    _approval_waits: dict[str, str]
    _decisions: dict[str, dict[str, str]]

    def _new_scope(self) -> Scope:
        assert self._run is not None
        info = workflow.info()
        return Scope(
            {
                "inputs": dict(self._run.inputs),
                "steps": {},
                "vars": dict(self._state.vars),
                "now": workflow.now().isoformat(),
                "run": {
                    "workflow_id": info.workflow_id,
                    "recipe": self._recipe_name,
                    "iteration": self._state.iteration,
                    # The recipe's default account, for what it hands on (a sub-recipe's `account`).
                    "account": self._run.recipe.account,
                },
            }
        )

    async def _steps(self, steps: Sequence[Step], scope: Scope, path: str) -> None:
        for index, step in enumerate(steps):
            here = f"{path}.{step.id or index}"
            result = await self._step(step, scope, here)
            if step.id is not None and result is not _SKIPPED:
                scope.values["steps"][step.id] = result

    async def _step(self, step: Step, scope: Scope, path: str) -> Any:
        condition = run_condition(step)
        if condition is not None and not self._condition(condition, scope, path):
            return _SKIPPED
        try:
            return await self._dispatch(step, scope, path)
        except StepFailed as exc:
            if exc.step is None:  # the innermost step that sees the failure is the one that failed
                exc.step = path
            if not step.continue_on_error:
                raise
            self._state.counters.errors += 1
            self._state.last_error = str(exc)
            return exc.fields()

    async def _dispatch(self, step: Step, scope: Scope, path: str) -> Any:
        match step:
            case UntilStep():
                return await self._until(step, scope, path)
            case CallStep():
                return await self._call_step(step, scope, path)
            case ForEachStep():
                return await self._for_each(step, scope, path)
            case IfStep():
                branch = step.then if self._condition(step.when, scope, path) else step.else_
                await self._steps(branch, scope, f"{path}.{'then' if branch is step.then else 'else'}")
                return {"branch": "then" if branch is step.then else "else"}
            case WaitStep():
                await workflow.sleep(parse_duration(step.wait))
                return {"waited": step.wait}
            case SetStep():
                values = self._eval(step.set, scope, path)
                scope.values["vars"].update(values)
                return values
            case ParallelStep():
                branches = [scope.child() for _ in step.parallel]
                await asyncio.gather(
                    *(
                        self._steps(branch, branch_scope, f"{path}.parallel{i}")
                        for i, (branch, branch_scope) in enumerate(zip(step.parallel, branches, strict=True))
                    )
                )
                for branch_scope in branches:
                    scope.values["steps"].update(branch_scope.values["steps"])
                return {"branches": len(branches)}
            case FailStep():
                reason = str(self._eval(step.fail, scope, path))
                raise StepFailed(f"{path}: {reason}", reason=reason, step=path)
            case NotifyStep():
                return await self._notify(step, scope, path)
            case WaitForStep():
                return await self._wait_for(step, scope, path)
            case TryStep():
                return await self._try(step, scope, path)
            case ApprovalStep():
                return await self._approval(step, scope, path)
            case RunRecipeStep():
                return await self._run_recipe(step, scope, path)
        raise StepFailed(f"{path}: unsupported step {type(step).__name__}")

    async def _try(self, step: TryStep, scope: Scope, path: str) -> Any:
        """`try`, then the first `catch` matching its error, then `finally` (not on a `stop`)."""
        try:
            await self._steps(step.try_, scope, f"{path}.try")
        except StepFailed as exc:
            error = exc.fields()
            chosen = next((i for i, c in enumerate(step.catch) if c.match.matches(error)), None)
            if chosen is None:
                await self._steps(step.finally_, scope, f"{path}.finally")
                raise
            try:
                catch = step.catch[chosen]
                await self._steps(catch.steps, scope.child(error=error), f"{path}.catch{chosen}")
            except StepFailed:
                await self._steps(step.finally_, scope, f"{path}.finally")
                raise
            await self._steps(step.finally_, scope, f"{path}.finally")
            return {"failed": True, "caught": chosen, "error": error}
        await self._steps(step.finally_, scope, f"{path}.finally")
        return {"failed": False, "caught": None, "error": None}

    async def _call_step(self, step: CallStep, scope: Scope, path: str) -> Any:
        result = await self._call(step.call, step.with_, step.account, step, scope, path)
        field = _new_only_key(step.new_only)
        if field and isinstance(result, dict) and isinstance(result.get("items"), list):
            items = result["items"]
            keys = [str(item.get(field, "")) if isinstance(item, dict) else str(item) for item in items]
            seen_key = step.id or _static(path)
            first = seen_key not in self._seen.ids
            fresh = self._seen.filter_new(seen_key, keys)
            if isinstance(step.new_only, NewOnly):
                if step.new_only.after is not None:
                    marks = [self._eval(step.new_only.after, scope.child(item=item), path) for item in items]
                    past = self._past_watermark(seen_key, marks)
                    fresh = [is_new and is_past for is_new, is_past in zip(fresh, past, strict=True)]
                    self._raise_watermark(seen_key, marks)
                if first and step.new_only.from_ == "now":
                    # `from: now`: the first poll only records what already exists.
                    fresh = [False] * len(items)
            new_items = [item for item, is_new in zip(items, fresh, strict=True) if is_new]
            self._state.counters.items_seen += len(items)
            self._state.counters.new_items += len(new_items)
            result = {**result, "items": new_items, "seen": len(items)}
        return result

    def _past_watermark(self, seen_key: str, marks: list[Any]) -> list[bool]:
        """Which of `marks` are greater than the watermark of `seen_key` (all, when it has none)."""
        stored = self._seen.ids.get(f"{seen_key}#after")
        if not stored:
            return [_mark_value(mark) is not None for mark in marks]
        mark_now = json.loads(next(iter(stored)))
        return [_greater(mark, mark_now) for mark in marks]

    def _raise_watermark(self, seen_key: str, marks: list[Any]) -> None:
        """Raise the watermark of `seen_key` to the greatest of `marks`.

        Kept in `SeenIds` under a reserved `#after` key (as JSON, so a number stays a number), so
        continue-as-new carries it without a new field in `MonitorState`.
        """
        stored = self._seen.ids.get(f"{seen_key}#after")
        best = json.loads(next(iter(stored))) if stored else None
        for mark in marks:
            value = _mark_value(mark)
            if value is not None and (best is None or _greater(value, best)):
                best = value
        if best is not None:
            self._seen.ids[f"{seen_key}#after"] = {json.dumps(best): None}

    async def _until(self, step: UntilStep, scope: Scope, path: str) -> Any:
        deadline = workflow.now() + parse_duration(step.deadline)
        every = parse_duration(step.every)
        attempt = 0
        while True:
            result = await self._call(step.call, step.with_, step.account, step, scope, f"{path}#{attempt}")
            if step.id is not None:
                scope.values["steps"][step.id] = result
            if self._condition(step.until, scope.child(result=result), path):
                return result
            if workflow.now() + every > deadline:
                raise StepFailed(f"{path}: `until` condition still false after {step.deadline}")
            attempt += 1
            await workflow.sleep(every)

    async def _wait_for(self, step: WaitForStep, scope: Scope, path: str) -> Any:
        """Wait for the first event of `step.wait_for` with the step's key that `match` accepts.

        The run subscribes to the key's mailbox (once per key), which sends it every event it
        kept and every later one; an event taken by one `wait_for` is not taken by another.
        """
        key = self._eval(step.key, scope, path)
        if isinstance(key, bool) or not isinstance(key, str | int) or str(key) == "":
            raise StepFailed(f"{path}: wait_for key must be text or a number, got {key!r}")
        key = str(key)
        said = str(self._eval(step.timeout, scope, path)) if is_template(step.timeout) else step.timeout
        try:
            timeout = parse_duration(said)
        except ValueError as exc:
            raise StepFailed(f"{path}: wait_for timeout: {exc}") from None
        provider = step.wait_for
        what = f"{provider} event for {key!r}" + (f" where {step.match}" if step.match else "")
        if timeout > timedelta(0):
            mailbox = mailbox_id(provider, key)
            if mailbox not in self._subscribed:
                self._subscribed.add(mailbox)
                await subscribe_mailbox(provider, key)
        deadline = workflow.now() + timeout
        number = max(self._event_waits, default=0) + 1
        self._event_waits[number] = f"a {what}"
        try:
            while True:
                event = self._take_event(provider, key, step.match, scope, path)
                if event is not None:
                    return {**event.model_dump(mode="json"), "timed_out": False}
                remaining = (deadline - workflow.now()).total_seconds()
                if remaining <= 0 or self._stop:
                    break
                arrived = self._inbox_count
                try:
                    await workflow.wait_condition(
                        lambda arrived=arrived: self._inbox_count > arrived or self._stop,  # type: ignore[misc]
                        timeout=timedelta(seconds=remaining),
                    )
                except TimeoutError:
                    # One last look: an event and the timer may land in the same workflow task.
                    event = self._take_event(provider, key, step.match, scope, path)
                    if event is not None:
                        return {**event.model_dump(mode="json"), "timed_out": False}
                    break
        finally:
            del self._event_waits[number]
        if self._stop:
            raise RunStopped
        if step.on_timeout == "continue":
            return {"timed_out": True, "key": key}
        raise StepFailed(f"{path}: no {what} within {said}")

    async def _approval(self, step: ApprovalStep, scope: Scope, path: str) -> Any:
        """Ask for a decision (a notification with the approval link), then wait for it.

        The approval's id is the step path and a tag of this run and poll
        (`steps.ask@1a2b3c4d.0`): the one-decision record is kept per (workflow id, approval id)
        long after the run, so a later run under the same workflow id (`tikflow run` again), or
        the next poll of a monitor, asks anew instead of finding the old decision spent.
        """
        assert self._run is not None
        info = workflow.info()
        run_id = info.first_execution_run_id
        tag = run_id[-8:] if workflow.patched(APPROVAL_TAG_PATCH) else run_id[:8]
        approval_id = f"{path}@{tag}.{self._state.iteration}"
        summary = {
            label: _shown(self._eval(template, scope, path)) for label, template in step.approval.items()
        }
        timeout = parse_duration(step.timeout)
        expires_at = workflow.now() + timeout
        name = step.name or step.id or path
        self._approvals[approval_id] = summary
        self._approval_waits[approval_id] = f"approval {approval_id!r} ({name})"
        self._resume_phase()
        target = step.webhook or (self._run.recipe.notify.webhook if self._run.recipe.notify else None)
        message = self._eval(step.message, scope, path) if step.message else f"Approval needed: {name}"
        try:
            await workflow.execute_activity(
                "notify.send",
                ActionRequest(
                    action="notify.send",
                    params={
                        "message": f"tikflow ({self._recipe_name}): {message}",
                        "webhook": self._webhook(target, scope, path) if target else None,
                        "data": {
                            "event": "awaiting_approval",
                            "approval_id": approval_id,
                            "expires_at": expires_at.timestamp(),
                            "approval": summary,
                        },
                        "recipe": self._recipe_name,
                        "workflow_id": info.workflow_id,
                    },
                    idempotency_key=self._effect_key(f"{path}:approval"),
                    recipe=self._recipe_name,
                ),
                task_queue=info.task_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TemporalRetryPolicy(maximum_attempts=5),
                result_type=dict,
            )
        except ActivityError as exc:
            # The run waits all the same: `tikflow status` shows the approval, `tikflow approve`
            # decides it.
            reason = failure_message(exc)
            self._notification_failed(reason, path=path)
            self._approval_waits[approval_id] += f" (the notification failed: {reason})"
        try:
            await workflow.wait_condition(
                lambda: approval_id in self._decisions or self._stop, timeout=timeout
            )
        except TimeoutError:
            pass
        finally:
            # No longer pending: the page and `tikflow approve` refuse from now on.
            del self._approvals[approval_id]
            del self._approval_waits[approval_id]
            self._resume_phase()
        decided = self._decisions.get(approval_id)
        if decided is not None:
            return {
                "decision": decided["decision"],
                "comment": decided.get("comment", ""),
                "via": decided.get("via", ""),
                "timed_out": False,
                "id": approval_id,
            }
        if self._stop:
            raise RunStopped
        if step.on_timeout == "continue":
            return {"decision": None, "comment": "", "via": None, "timed_out": True, "id": approval_id}
        raise StepFailed(f"{path}: nobody approved or rejected within {step.timeout}")

    async def _run_recipe(self, step: RunRecipeStep, scope: Scope, path: str) -> Any:
        """Run the sub-recipe of `step` from this run's snapshot as a child workflow; its outputs.

        The child's id is this run's id and the step path, so a replay (or a retried workflow
        task) finds the same child; a stop cancels it, a failure fails this step. The child's
        counters (but its polls) are added to this run's.
        """
        assert self._run is not None
        child = self._run.recipe.recipes.get(step.run)
        if child is None:
            raise StepFailed(f"{path}: the sub-recipe {step.run!r} is not in this run's snapshot")
        given = self._eval(step.with_, scope, path)
        inputs = {name: spec.default for name, spec in child.inputs.items() if spec.default is not None}
        inputs.update(given)
        for name, spec in child.inputs.items():
            value = inputs.get(name)
            if value is None:
                if spec.is_required:
                    raise StepFailed(f"{path}: the sub-recipe {child.recipe!r} needs the input {name!r}")
            elif not spec.accepts(value):
                raise StepFailed(
                    f"{path}: input {name!r} of the sub-recipe {child.recipe!r} is not {spec.type}"
                )
        run = RecipeRun(
            inputs=inputs,
            recipe=child,
            source=step.run,
            side_effects=self._run.side_effects,
            pacer_queue=self._run.pacer_queue,
        )
        handle = await workflow.start_child_workflow(
            "RecipeWorkflow",
            run,
            id=f"{workflow.info().workflow_id}/{path}",
            task_queue=workflow.info().task_queue,
            result_type=RunResult,
            parent_close_policy=ParentClosePolicy.TERMINATE,
            cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: handle.done() or self._stop)
        if not handle.done():
            handle.cancel()
        try:
            result = await handle
        except ChildWorkflowError as exc:
            if self._stop:
                raise RunStopped from None
            reason = exc.cause.message if isinstance(exc.cause, FailureError) else str(exc)
            raise StepFailed(f"{path}: sub-recipe {child.recipe!r} failed: {reason}") from None
        # What the child did counts as this run's work: `status` and the result of a parent
        # whose replies are all made by sub-recipes still show them (effects, calls, waits).
        counters = self._state.counters
        for name, value in result.counters:
            if name != "polls":
                setattr(counters, name, getattr(counters, name) + value)
        if self._stop and result.outcome == "stopped":
            raise RunStopped
        return result.outputs

    def _take_event(
        self, provider: str, key: str, match: str | None, scope: Scope, path: str
    ) -> Event | None:
        """The oldest event not yet taken for (`provider`, `key`) that `match` accepts (then taken)."""
        for event in self._inbox:
            if event.id in self._consumed or event.source != provider or event.key != key:
                continue
            if match is not None and not self._condition(
                match, scope.child(event=event.model_dump(mode="json")), path
            ):
                continue
            self._consumed.add(event.id)
            return event
        return None

    async def _for_each(self, step: ForEachStep, scope: Scope, path: str) -> Any:
        items = self._eval(step.for_each, scope, path)
        if items is None:
            items = []
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            raise StepFailed(f"{path}: for_each needs a list, got {type(items).__name__}")
        limit = self._eval(step.limit, scope, path) if step.limit is not None else None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise StepFailed(f"{path}: for_each limit must be a whole number, got {limit!r}")
        seen_key = f"{step.id or _static(path)}#each"
        by_new_only = workflow.patched(ITEM_KEY_PATCH)
        field = _new_only_key(step.new_only)
        spec = step.new_only if isinstance(step.new_only, NewOnly) else None
        # `from: now`: the step's first run only records the items already there.
        record_only = spec is not None and spec.from_ == "now" and seen_key not in self._seen.ids
        chosen: list[tuple[str, Scope]] = []
        chosen_keys: list[str] = []
        chosen_marks: list[Any] = []
        if field is not None:
            self._state.counters.items_seen += len(items)
        for index, item in enumerate(items):
            if limit is not None and len(chosen) >= limit:
                break
            if field is not None:
                item_key = str(item.get(field, "")) if isinstance(item, dict) else str(item)
                if self._seen.has(seen_key, item_key):
                    continue
            child = scope.child(**{step.as_: item})
            mark: Any = None
            if spec is not None and spec.after is not None:
                mark = self._eval(spec.after, child, path)
                if record_only:
                    chosen_marks.append(mark)
                elif not self._past_watermark(seen_key, [mark])[0]:
                    continue
            if record_only:
                chosen_keys.append(item_key)
                continue
            if field is not None:
                self._state.counters.new_items += 1
            if step.when is not None and not self._condition(step.when, child, path):
                continue
            key = _item_key(item, index, field) if by_new_only else _guessed_item_key(item, index)
            chosen.append((f"{path}[{key}]", child))
            if field is not None:
                chosen_keys.append(item_key)
                chosen_marks.append(mark)
        # Remembered before the items run: a failed item is not retried by the next poll either,
        # exactly as with a call step's `new_only` (Temporal already retried it durably).
        self._seen.add(seen_key, chosen_keys)
        if spec is not None and spec.after is not None:
            self._raise_watermark(seen_key, chosen_marks)
        failures: list[dict[str, Any]] = []
        collected: list[Any] = [None] * len(chosen)

        # Chosen and not finished: left out of `remembered`, so the restart of a run terminated (or
        # timed out) mid-poll acts on them. Workflow state only: no recorded command changes.
        in_flight = self._state.in_flight.setdefault(seen_key, {}) if field is not None else None
        item_keys = chosen_keys if field is not None and not record_only else []
        if in_flight is not None:
            # Each item's effects are keyed by this poll, or, for an item a closed earlier run of
            # this id had started (`MonitorState.unfinished`), by that run's poll: its effect
            # ledger entries are found, not done again.
            earlier = self._state.unfinished.get(seen_key, {})
            here = self._effect_base()
            for (item_path, _), item_key in zip(chosen, item_keys, strict=True):
                base = earlier.pop(item_key, None)
                if base is not None:
                    self._effect_bases[item_path] = base
                in_flight[item_key] = base or here

        async def one_item(position: int, item_path: str, child: Scope) -> None:
            try:
                await self._steps(step.steps, child, item_path)
            except (StepFailed, RunStopped):
                # Failed (after Temporal's retries) or stopped: finished as far as memory goes.
                if in_flight is not None:
                    in_flight.pop(item_keys[position], None)
                    self._effect_bases.pop(item_path, None)
                raise
            if in_flight is not None:
                in_flight.pop(item_keys[position], None)
                self._effect_bases.pop(item_path, None)

        async def one(position: int, item_path: str, child: Scope) -> None:
            try:
                await one_item(position, item_path, child)
            except StepFailed as exc:
                if not step.continue_on_error:
                    raise
                if exc.step is None:
                    exc.step = item_path
                failures.append(exc.fields())
                return
            if step.collect is not None:
                collected[position] = self._eval(step.collect, child, item_path)

        try:
            if workflow.patched(SLIDING_WINDOW_PATCH):
                # A sliding window: an item starts as soon as any running one finishes, so one slow
                # item (a 429 waited out, a long upload) does not hold up `concurrency - 1` others.
                gate = asyncio.Semaphore(step.concurrency)
                stopped = False

                async def windowed(position: int, item_path: str, child: Scope) -> None:
                    nonlocal stopped
                    async with gate:
                        if stopped:  # an earlier item failed the step: start no more
                            return
                        try:
                            await one(position, item_path, child)
                        except BaseException:
                            stopped = True
                            raise

                await asyncio.gather(*(windowed(i, p, c) for i, (p, c) in enumerate(chosen)))
            else:
                # Runs started before the sliding window went in replay with fixed batches.
                for start in range(0, len(chosen), step.concurrency):
                    batch = chosen[start : start + step.concurrency]
                    await asyncio.gather(*(one(start + i, p, c) for i, (p, c) in enumerate(batch)))
        except (StepFailed, RunStopped):
            # The step failed (or the run stopped): the items it did not start are remembered too,
            # as before (a failed poll's items are not retried by the next).
            if in_flight is not None:
                for (item_path, _), item_key in zip(chosen, item_keys, strict=True):
                    in_flight.pop(item_key, None)
                    self._effect_bases.pop(item_path, None)
            raise
        self._state.counters.errors += len(failures)
        result: dict[str, Any] = {
            "count": len(items),
            "processed": len(chosen),
            "failed": len(failures),
            "errors": failures[:10],
        }
        if step.collect is not None:
            gathered: list[Any] = []
            for value in collected:
                if isinstance(value, list):
                    gathered.extend(value)
                elif value is not None:
                    gathered.append(value)
            result["items"] = gathered
        return result

    async def _notify(self, step: NotifyStep, scope: Scope, path: str) -> Any:
        assert self._run is not None
        target = step.webhook or (self._run.recipe.notify.webhook if self._run.recipe.notify else None)
        params = {
            "message": self._eval(step.notify, scope, path),
            "webhook": self._webhook(target, scope, path) if target else None,
            "data": self._eval(step.data, scope, path),
            "recipe": self._recipe_name,
            "workflow_id": workflow.info().workflow_id,
        }
        try:
            return await self._call("notify.send", params, None, step, scope, path, rendered=True)
        except StepFailed as exc:
            # A notification that cannot be delivered (a webhook down) must not take the run with
            # it: the run's own work goes on, the failure is logged and shown by `status`.
            if not workflow.patched(NOTIFY_PATCH):
                raise
            self._notification_failed(str(exc), path=path)
            return {"sent": False, "failed": True, "error": str(exc)}

    def _eval(self, value: Any, scope: Scope, path: str) -> Any:
        try:
            return evaluate_value(value, scope.values)
        except ExpressionError as exc:
            raise StepFailed(f"{path}: expression failed: {exc}") from None

    def _webhook(self, target: str | WebhookCredential, scope: Scope, path: str) -> Any:
        """A notification's target: a rendered URL, or the name of the credential holding one."""
        if isinstance(target, WebhookCredential):
            return {"credential": target.credential}
        return self._eval(target, scope, path)

    def _condition(self, source: str, scope: Scope, path: str) -> bool:
        try:
            return truthy(source, scope.values)
        except ExpressionError as exc:
            raise StepFailed(f"{path}: condition failed: {exc}") from None


_SKIPPED = object()
#: The longest text one approval label shows (the page, the notification, the run's query).
_MAX_SHOWN = 2000


def _shown(value: Any) -> str:
    """An approval label's rendered value as the page shows it: text, bounded."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _static(path: str) -> str:
    """A step path without item keys: the same step in every loop iteration."""
    out = []
    depth = 0
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out).split("#")[0]


def _new_only_key(new_only: str | NewOnly | None) -> str | None:
    """The item field a step's `new_only` names, in either form (None: the step keeps everything)."""
    if isinstance(new_only, NewOnly):
        return new_only.key
    return new_only or None


def _mark_value(mark: Any) -> int | float | str | None:
    """A rendered watermark as a comparable value: a number stays one, else text (None when empty)."""
    if isinstance(mark, int | float) and not isinstance(mark, bool):
        return mark
    if mark is None or mark == "":
        return None
    return str(mark)


def _greater(mark: Any, than: Any) -> bool:
    """Whether watermark `mark` is past `than`: numbers as numbers, otherwise as text."""
    value, other = _mark_value(mark), _mark_value(than)
    if value is None:
        return False
    if other is None:
        return True
    if isinstance(value, str) or isinstance(other, str):
        return str(value) > str(other)
    return value > other


def _item_key(item: Any, index: int, new_only: str | None) -> str:
    """A `for_each` item's key in its step path (`ITEM_KEY_PATCH`).

    Its value at the step's own `new_only` key, else its `id`, else its position.
    """
    if isinstance(item, dict):
        for key in (new_only, "id") if new_only else ("id",):
            value = item.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return str(index)


def _guessed_item_key(item: Any, index: int) -> str:
    """A `for_each` item's key before `ITEM_KEY_PATCH` (runs started before it replay with it).

    The first of the id fields providers use that the item has, else its position.
    """
    if isinstance(item, dict):
        for key in ("id", "cid", "publish_id", "conversation_id", "post_id", "key"):
            value = item.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return str(index)
