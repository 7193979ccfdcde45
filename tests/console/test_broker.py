"""The embedded broker never shows a consumer a message that is still being written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kombu import Connection
from kombu.transport.virtual.base import Empty

from console import broker


@pytest.fixture
def channel(tmp_path: Path):
    broker.register()
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "processed_folder": str(tmp_path / "processed"),
        "store_processed": False,
    }
    (tmp_path / "processed").mkdir()
    with Connection("filesystem://", transport_options=options) as connection:
        yield connection.default_channel


def test_a_message_appears_whole_under_its_queue_name(channel, tmp_path: Path):
    assert isinstance(channel, broker.Channel)
    channel._put("work", {"body": "x" * 10_000})
    names = os.listdir(tmp_path)
    assert [n for n in names if n.endswith(".work.msg")] and not [
        n for n in names if n.endswith(".writing")
    ]
    assert channel._get("work") == {"body": "x" * 10_000}


def test_a_message_being_written_is_passed_over(channel, tmp_path: Path):
    (tmp_path / ".0123.writing").write_bytes(b"")  # a writer mid-way
    with pytest.raises(Empty):
        channel._get("work")
