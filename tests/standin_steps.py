"""Steps a person takes in a vendor stand-in during a test, through its control surface."""

from __future__ import annotations

from typing import Any

import httpx

from integrations.standins.server import RunningStandin


def complete_first_milestone(kantata: RunningStandin, workspace: str) -> dict[str, Any]:
    """Complete the first milestone (the lowest id) of a Kantata workspace; the story."""
    story = min(
        (
            s
            for s in kantata.state.table("stories").values()
            if str(s.get("workspace_id")) == workspace and s.get("story_type") == "milestone"
        ),
        key=lambda s: int(s["id"]),
    )
    httpx.post(
        f"{kantata.url}/__standin__/kantata/complete-milestone", json={"story_id": story["id"]}
    ).raise_for_status()
    return story
