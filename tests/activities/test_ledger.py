"""The effect ledger (`activities.ledger`): what was done, remembered across retries and processes."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import httpx
import pytest

from activities.credentials import CredentialStore
from activities.ledger import (
    SUPERSEDED_KEEP_S,
    EffectLedger,
    EffectLedgerError,
    default_ledger_path,
    ledger_for,
)
from activities.ratelimit import RateLimiter
from activities.registry import Services
from activities.settings import Settings


def test_a_recorded_effect_is_found_by_a_fresh_instance(tmp_path: Path) -> None:
    path = tmp_path / "state" / "effects.json"
    ledger = EffectLedger(path)
    assert ledger.get("tiktok.direct:wf/1") is None

    ledger.put("tiktok.direct:wf/1", {"publish_id": "v_pub_1", "next_chunk": 0})
    ledger.put("tiktok.direct:wf/1", {"publish_id": "v_pub_1", "next_chunk": 1})

    assert EffectLedger(path).get("tiktok.direct:wf/1") == {"publish_id": "v_pub_1", "next_chunk": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_old_entries_are_dropped_on_write(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ledger = EffectLedger(tmp_path / "effects.json", keep_s=100, clock=lambda: now[0])
    ledger.put("old", {"post_id": "1"})
    now[0] += 101
    ledger.put("new", {"post_id": "2"})
    assert ledger.get("old") is None
    assert ledger.get("new") == {"post_id": "2"}


def test_a_newer_run_of_a_workflow_drops_the_older_runs_entries_after_a_week(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ledger = EffectLedger(tmp_path / "effects.json", clock=lambda: now[0])
    ledger.put("a:wf-1@run-1:0:steps.0", {"post_id": "1"}, run=("wf-1", "run-1"))
    ledger.put("a:wf-1@run-1:1:steps.0", {"post_id": "2"}, run=("wf-1", "run-1"))
    ledger.put("a:wf-2@run-9:0:steps.0", {"post_id": "3"}, run=("wf-2", "run-9"))
    ledger.put("a:wf-1:0:steps.0", {"post_id": "old-format"})

    # A restart (a new chain) soon after: the old chain's entries stay, for its unfinished items.
    now[0] += 3600
    ledger.put("a:wf-1@run-2:0:steps.0", {"post_id": "4"}, run=("wf-1", "run-2"))
    assert ledger.get("a:wf-1@run-1:1:steps.0") == {"post_id": "2"}
    # The restart redoing an unfinished item under the old chain's key drops none of its own.
    ledger.put("a:wf-1@run-1:2:steps.0", {"post_id": "5"}, run=("wf-1", "run-1"))
    assert ledger.get("a:wf-1@run-2:0:steps.0") == {"post_id": "4"}

    now[0] += SUPERSEDED_KEEP_S + 1
    ledger.put("a:wf-1@run-2:1:steps.0", {"post_id": "6"}, run=("wf-1", "run-2"))
    effects = json.loads((tmp_path / "effects.json").read_text())["effects"]
    # A week on, wf-1's first chain is closed for good; wf-2, unscoped keys and the new chain stay.
    assert sorted(effects) == [
        "a:wf-1:0:steps.0",
        "a:wf-1@run-2:0:steps.0",
        "a:wf-1@run-2:1:steps.0",
        "a:wf-2@run-9:0:steps.0",
    ]
    assert effects["a:wf-1@run-2:0:steps.0"]["run"] == ["wf-1", "run-2"]


def test_the_ledger_keeps_at_most_max_entries_dropping_the_oldest(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ledger = EffectLedger(tmp_path / "effects.json", max_entries=3, clock=lambda: now[0])
    for n in range(5):
        now[0] += 1
        ledger.put(f"k{n}", {"n": n})
    now[0] += 1
    ledger.put("k1", {"n": 1})  # rewritten: now the newest
    kept = json.loads((tmp_path / "effects.json").read_text())["effects"]
    assert sorted(kept) == ["k1", "k3", "k4"]


def test_a_returned_value_is_a_copy(tmp_path: Path) -> None:
    ledger = EffectLedger(tmp_path / "effects.json")
    ledger.put("k", {"post_id": "1"})
    value = ledger.get("k")
    assert value is not None
    value["post_id"] = "changed"
    assert ledger.get("k") == {"post_id": "1"}


@pytest.mark.parametrize("content", ["{not json", json.dumps({"effects": {"k": {"value": 1}}}), "[]"])
def test_an_unreadable_ledger_is_an_error_not_an_empty_one(tmp_path: Path, content: str) -> None:
    path = tmp_path / "effects.json"
    path.write_text(content)
    with pytest.raises(EffectLedgerError, match=str(path)):
        EffectLedger(path).get("k")
    with pytest.raises(EffectLedgerError):
        EffectLedger(path).put("k", {"post_id": "1"})


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    path = tmp_path / "effects.json"

    def write(n: int) -> None:
        # One instance per thread, as separate worker processes would have.
        ledger = EffectLedger(path)
        for i in range(10):
            ledger.put(f"k{n}-{i}", {"n": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ledger = EffectLedger(path)
    assert all(ledger.get(f"k{n}-{i}") == {"n": n, "i": i} for n in range(8) for i in range(10))


def test_the_default_path_sits_beside_the_credentials_unless_overridden(tmp_path: Path) -> None:
    credentials = tmp_path / "config" / "credentials.json"
    assert default_ledger_path(credentials, env={}) == tmp_path / "config" / "effects.json"
    assert default_ledger_path(credentials, env={"TIKFLOW_LEDGER": "/srv/tikflow/fx.json"}) == Path(
        "/srv/tikflow/fx.json"
    )


async def test_services_share_one_ledger_beside_their_credential_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKFLOW_LEDGER", raising=False)
    async with httpx.AsyncClient() as http:
        services = Services(
            http=http,
            credentials=CredentialStore(tmp_path / "credentials.json", env={}),
            settings=Settings(),
            limiter=RateLimiter(),
        )
        ledger = ledger_for(services)
        assert ledger.path == tmp_path / "effects.json"
        assert ledger_for(services) is ledger
        assert services.ledger is ledger
