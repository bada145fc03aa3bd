"""Temporal's workflow sandbox without two per-activation costs that buy nothing (issue 20).

Profiled with py-spy on `bench/monitors.py` (300 monitors polling every 10 s, reads as local
activities), about a fifth of the worker's CPU went to two pieces of the SDK's sandbox plumbing,
not to running workflow code (`RecipeWorkflow` itself: 2.4%):

- `_Instance._run_code` hands `exec` a *source string* for every activation and for every
  payload the worker encodes or decodes, so CPython compiles the same few lines again each time
  (~8% of the worker's CPU). Here each distinct string is compiled once; `exec` of the code
  object runs exactly what `exec` of the string ran (same file name, same globals).
- Before it encodes a completion or decodes an activation the worker asks the instance, once per
  payload sequence and per pass (five passes), which serialization context the payload belongs
  to. The sandbox answers by compiling and running that code string inside its import
  machinery (~14% with the above). The answer is computed by the workflow instance's own
  `get_serialization_context`, which only reads the run's info and its pending activities and
  builds frozen dataclasses of `temporalio.converter` (passed through, so the same classes inside
  and outside): it is called directly here, with the same argument, so the answer is the same
  object graph, whatever codec or external storage a deployment configures.

Nothing about what workflow code may do changes: activations still run inside the sandbox, with
its import restrictions and its passed-through modules.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any

import temporalio.converter
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker._workflow_instance import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

__all__ = ["LeanSandboxedWorkflowRunner"]


@functools.lru_cache(maxsize=64)
def _code(source: str) -> CodeType:
    # "<string>": the file name `exec(source)` gives the code, so tracebacks read the same.
    return compile(source, "<string>", "exec")


class _LeanInstance(_Instance):
    """The SDK's sandboxed instance, its code strings compiled once, its context answers direct."""

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # The SDK's `_run_code` with `exec(code_object)` for `exec(code_string)`: the same steps.
        super()._run_code(_code(code), **extra_globals)  # type: ignore[arg-type]

    def _in_sandbox(self) -> Any:
        return self.globals_and_locals["__temporal_in_sandbox"]

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> temporalio.converter.SerializationContext | None:
        """The run's serialization context for a command's payloads, as the sandbox would answer."""
        result: temporalio.converter.SerializationContext | None = (
            self._in_sandbox().instance.get_serialization_context(command_info)
        )
        return result

    def get_external_store_context(self, command_info: CommandInfo | None) -> Any:
        """The run's external-storage context for a command's payloads, as the sandbox would answer."""
        return self._in_sandbox().instance.get_external_store_context(command_info)


class LeanSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances skip the recompiling and the context round trip."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed instance (`_LeanInstance`) for one run."""
        return _LeanInstance(det, self.runner_class, self.restrictions)
