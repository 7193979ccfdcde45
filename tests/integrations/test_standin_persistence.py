"""The demo's stand-ins keep what Throughline wrote to them across a restart."""

from integrations.models import Connection
from integrations.polling import poll_closed_won
from integrations.standins.server import SnapshotKeeper, create_standin_app


def test_snapshots_bring_back_every_vendors_records(demo, tmp_path):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    for vendor, running in demo.items():
        keeper = SnapshotKeeper(running.state, tmp_path / f"{vendor}.json")
        keeper.save()
        restarted = create_standin_app(vendor).state.standin
        assert SnapshotKeeper(restarted, tmp_path / f"{vendor}.json").restore()
        assert restarted.collections == running.state.collections
        # new records continue the numbering instead of reusing an id
        assert restarted.next_number() == running.state.next_number()


def test_an_unreadable_snapshot_is_ignored(tmp_path):
    path = tmp_path / "netsuite.json"
    path.write_text("{not json")
    state = create_standin_app("netsuite").state.standin
    assert not SnapshotKeeper(state, path).restore()
    assert state.table("subsidiary")  # still the seed
