"""The scheduled jobs beat runs: each fans out to every enabled connection it concerns."""

from integrations.models import Connection, SyncRun
from integrations.tasks import (
    collect_all_time_entries,
    poll_all_crm_connections,
    poll_all_psa_connections,
    sync_all_payments,
    sync_reference_data,
)


def test_every_schedule_reaches_its_connections(demo):
    assert poll_all_crm_connections() == 1
    assert SyncRun.objects.filter(workflow="create_service_engagement").count() == 4
    assert poll_all_psa_connections() == 1
    assert sync_all_payments() == 2  # the cloud and the legacy NetSuite
    result = sync_reference_data()
    assert result["people"] == 4 and result["rates"] > 0  # 2 people x 2 ERPs
    assert collect_all_time_entries() == 1
    Connection.objects.filter(vendor="kantata").update(enabled=False)
    assert poll_all_psa_connections() == 0  # a disabled connection is left alone
