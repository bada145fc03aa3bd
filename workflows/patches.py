"""The `workflow.patched` ids of `RecipeWorkflow`, each with the change it guards.

A run started before a change replays its history without the change's marker, so the old branch
runs again; a run started after records the marker and takes the new one. An id is forever: it is
in the histories of running workflows. Remove an old branch (with `workflow.deprecate_patch`) only
once no run started before its patch is open.
"""

from __future__ import annotations

__all__ = [
    "ACTIVITY_SUMMARY_PATCH",
    "ALERT_RETRY_PATCH",
    "APPROVAL_TAG_PATCH",
    "AUTH_WATCH_PATCH",
    "CANCELLED_RUN_PATCH",
    "FAILURE_MEMORY_PATCH",
    "ITEM_KEY_PATCH",
    "LOCAL_READS_PATCH",
    "NOTIFY_PATCH",
    "ON_FAILURE_PATCH",
    "PACER_QUEUE_PATCH",
    "PACE_PER_ATTEMPT_PATCH",
    "QUIET_PHASE_PATCH",
    "RUN_SCOPED_KEYS_PATCH",
    "SCHEDULE_MEMORY_PATCH",
    "SLIDING_WINDOW_PATCH",
    "STOP_PATCH",
]

#: `for_each`'s sliding window (runs started before it used fixed batches of `concurrency` items
#: and keep doing so on replay).
SLIDING_WINDOW_PATCH = "for-each-sliding-window"
#: The quieter `TikflowPhase`: a monitor between polls keeps showing `running` there (`status`
#: still says `sleeping`), instead of two search-attribute updates per poll. Those updates cost a
#: quarter of a dev server's throughput at 1,000 monitors (bench/).
QUIET_PHASE_PATCH = "phase-not-upserted-per-poll"
#: A `stop` that ends the run promptly: calls in flight get no further attempts (one already
#: running finishes and its result is kept), no new call starts, and a re-authorization or
#: rate-limit wait ends. Runs started before it finished the current poll first, however long its
#: retries or waits took, and keep doing so on replay.
STOP_PATCH = "stop-interrupts-calls-and-waits"
#: A `notify` step whose delivery fails: logged and counted, the run goes on (before it, the step
#: failed, and with it the poll or the run).
NOTIFY_PATCH = "notify-failure-continues"
#: Idempotency keys that name the run (`activities.contracts.idempotency_key`): before it, a second
#: run with the same inputs (the same workflow id) found the first run's side effects under its
#: keys and did nothing. Runs started before it keep the keys their history holds.
RUN_SCOPED_KEYS_PATCH = "idempotency-keys-name-the-run"
#: A `for_each` item's key in its step path (`steps.replies[KEY].0`, part of its calls'
#: idempotency keys) is the item's value at the step's own `new_only` key, else its `id`, else its
#: position. Before it, the key was the first of `id`, `cid`, `publish_id`, `conversation_id`,
#: `post_id`, `key` the item had (provider field names guessed by the engine); runs started before
#: it keep those keys on replay.
ITEM_KEY_PATCH = "item-key-from-new-only"
#: A run subscribes to the `account:<name>` mailbox of each TikTok account it calls with (at its
#: first call with it), so TikTok's `authorization.removed` moves it to `awaiting_reauth` at once,
#: with the notification, instead of failing at its next call. Runs started before it made no
#: such subscription (one child start or signal per account) and keep making none on replay.
AUTH_WATCH_PATCH = "tiktok-authorization-watch"
#: Every call's activity carries a summary naming its step and subject
#: (`comments[7300…].0 tikapi.reply → 7301…`), shown in the Temporal UI's timeline. The summary is
#: part of the recorded command; runs started before it schedule their calls without one.
ACTIVITY_SUMMARY_PATCH = "activity-summary"
#: Read-only provider calls of a monitor (`poll: {reads: local}`, the default) run as Temporal
#: local activities: the poll's calls run inside the workflow task that the timer woke, so an idle
#: poll is one workflow task and a timer (a marker per call) instead of three workflow tasks and
#: two activity tasks. Runs started before it schedule every call as a regular activity.
LOCAL_READS_PATCH = "read-calls-as-local-activities"
#: A run a Temporal Schedule starts takes its `new_only` memory from the previous run's result
#: (Temporal's last-completion result, `workflows.memory`), so a schedule's runs share it. Before
#: it each run started empty (and acted on every item again); runs started before it keep doing so.
SCHEDULE_MEMORY_PATCH = "schedule-runs-share-memory"

#: An approval's id is tagged with the last 8 characters of the run's first run id, not the first
#: 8: run ids are UUIDv7 on current Temporal servers, whose first characters are a timestamp shared
#: by runs started within about a minute; a second run under the same workflow id found its
#: approval already decided (the one-decision record is per workflow id and approval id). Runs
#: started before it keep the id their links and decisions carry.
APPROVAL_TAG_PATCH = "approval-id-random-tag"

#: A run that fails, or a monitor that gives up after its failed polls, first sends one alert
#: through `notify.send` (to `on_failure`, else `notify`, else the worker's
#: `TIKFLOW_NOTIFY_WEBHOOK`) with the reason and the command that restarts it. Runs started before
#: it failed without the activity and keep doing so on replay.
ON_FAILURE_PATCH = "failure-alert"

#: A monitor that gives up after its failed polls carries its `new_only` memory in its failure's
#: details (`{"memory": {...}}`), so `tikflow run` restarts it from that memory without replaying
#: its history (`tikflow.kept_memory`). Runs started before it failed without details and keep
#: doing so on replay (their memory is then recovered by replaying their history).
FAILURE_MEMORY_PATCH = "failure-carries-memory"

#: A run cancelled (`temporal workflow cancel`, the UI) while a call is out ends `cancelled` once
#: the call's attempt ends, giving its pacing slot back on the way. Before it, the cancelled call
#: was a failed step: the run sent a failure alert and ended failed; runs started before it keep
#: doing so on replay.
CANCELLED_RUN_PATCH = "cancelled-run-ends-cancelled"

#: A paced call takes its account's slot per attempt, not for the whole call: its activity runs
#: one attempt at a time (`maximum_attempts=1`) and the workflow retries it with timers outside the
#: slot, and the slot is given back before a rate-limit or re-authorization wait, so a call waiting
#: out an outage blocks no other recipe of the account. Runs started before it held the slot for
#: the whole call (server-side retries) and keep doing so on replay.
PACE_PER_ATTEMPT_PATCH = "pace-slot-per-attempt"

#: A failure alert retries under its own bounded policy (`workflows.recipe.ALERT_RETRY`: four
#: attempts, 90 s at most) instead of the recipe's `retry:` (20 attempts over about an hour by
#: default), so a dead webhook cannot hold a failed run open. Runs started before it schedule the
#: alert with the recipe's policy and keep doing so on replay.
ALERT_RETRY_PATCH = "failure-alert-own-retry"

#: An account pacer starts on the namespace's pacer queue (`RecipeRun.pacer_queue`, default
#: `activities.contracts.DEFAULT_PACER_QUEUE`), which every worker serves, instead of the queue of
#: the run that happened to start it: a pacer started by a recipe on queue A kept every later
#: recipe of the account, on any queue, waiting for a slot once A's workers were gone. Runs
#: started before it start the pacer on their own queue and keep doing so on replay.
PACER_QUEUE_PATCH = "pacer-on-shared-queue"
