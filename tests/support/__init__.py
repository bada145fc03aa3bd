"""What the tests and the benchmarks share, so that no folder keeps its own copy.

- `transport`: `FakeProvider`, a provider stand-in behind `httpx.MockTransport` (route table,
  answers in order, every request recorded).
- `actions`: services and contexts around a fake transport, and `run_action`, the one way to run
  an action's handler as the worker does.
- `emulator`: the provider emulator's admin API (sync and async), the emulator served in a thread
  with its state at hand, services and credentials pointed at a running emulator.
- `waiting`: `eventually`, polling a probe until its result passes a check.

Workers in this process are `tikflow.devstack.running_workers`; credentials are stored with
`tikflow.devstack.store_credentials`.
"""
