"""People's corrections of a run's input: a payload edited in the console and replayed.

The corrected payload replaces the run's input, and the corrected fields (dotted paths, e.g.
`Project_Template__c` or `Account.Name`) are kept on the run with their new values. The step
that reads the source record again (fetch_deal) lays them over what the source system says,
for this run only: the source system keeps its own value until someone changes it there.
"""

from __future__ import annotations

import copy
from typing import Any

from .models import SyncRun

#: where a run keeps its corrections (its context holds the steps' outputs by step name)
KEY = "_corrections"


def of(run: SyncRun) -> dict[str, Any]:
    """The run's corrections: {dotted path: corrected value}."""
    value = (run.context or {}).get(KEY)
    return dict(value) if isinstance(value, dict) else {}


def apply(record: dict[str, Any], corrections: dict[str, Any]) -> dict[str, Any]:
    """A copy of `record` with each corrected path set to its corrected value."""
    if not corrections:
        return record
    out = copy.deepcopy(record)
    for path, value in corrections.items():
        target = out
        *parents, leaf = path.split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[leaf] = value
    return out


def store(run: SyncRun, payload: dict[str, Any], changes: dict[str, Any]) -> None:
    """Save `payload` as the run's input and add `changes` to its corrections."""
    run.input = payload
    run.context = {**(run.context or {}), KEY: {**of(run), **changes}}
    run.save(update_fields=["input", "context"])
