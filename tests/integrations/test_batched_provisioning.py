"""Provisioning in batches: a poll hands its deals to workers RUN_BATCH_SIZE at a time and each
step serves a batch with bulk calls. What a user relies on: every deal still ends provisioned
exactly once or as its own exception, a bad or unlucky deal does not take its batch down, and
each deal's trace still shows the calls that served it."""

from __future__ import annotations

import httpx

from console.models import User
from exceptions import actions
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.connectors.errors import TransientError
from integrations.connectors.kantata.client import KantataClient
from integrations.models import ApiCall, Connection, OutboxMessage, SyncRun, SyncStep
from integrations.polling import poll_closed_won
from integrations.telemetry import calls_of_runs

NORTHWIND = "0015g00000Tl001AAB"  # UK01
GLOBEX = "0015g00000Tl002AAB"  # US01


def close_deals(salesforce_url: str, count: int, **overrides: str) -> None:
    with httpx.Client() as client:
        for i in range(count):
            uk = i % 2 == 0
            client.post(
                f"{salesforce_url}/__standin__/salesforce/close-deal",
                json={
                    "account_id": NORTHWIND if uk else GLOBEX,
                    "legal_entity": "UK01" if uk else "US01",
                    "template": "FIXED-3",
                    "amount": f"{30000 + i}.00",
                    **overrides,
                },
            ).raise_for_status()


def deal_workspaces(kantata, key: str) -> list[dict]:
    marker = f"[throughline {key}]"
    return [
        w for w in kantata.state.table("workspaces").values() if marker in (w["description"] or "")
    ]


def test_a_batch_of_deals_is_provisioned_with_a_few_bulk_calls(demo, settings):
    settings.RUN_BATCH_SIZE = 10
    close_deals(demo["salesforce"].url, 24)
    poll_closed_won(Connection.objects.get(vendor="salesforce"))

    runs = SyncRun.objects.filter(workflow="create_service_engagement")
    assert runs.count() == 28  # and the demo's four
    assert OutboxMessage.objects.filter(task="integrations.run_workflows").count() == 3
    provisioned = runs.filter(status=RunStatus.SUCCEEDED)
    assert provisioned.count() == 26  # the demo's two failures fail alone
    jobs = list(demo["netsuite"].state.table("job").values())
    for run in provisioned:
        assert len(deal_workspaces(demo["kantata"], run.correlation_id)) == 1
        deal = run.correlation_id.removeprefix("deal:")
        assert [j for j in jobs if j["externalId"] == f"TL-PRJ-{deal}"]
        opportunity = demo["salesforce"].state.table("Opportunity")[deal]
        assert (
            opportunity["Throughline_PSA_Project_Id__c"]
            == (run.context["provision_project"]["psa_project_id"])
        )
    # one vendor call per step and batch, not one per deal and step: 28 deals x 7 steps
    # one by one would be ~15 calls per deal
    assert ApiCall.objects.count() < 28 * 4
    shared = ApiCall.objects.exclude(batch_key="")
    assert shared.exists() and all(call.runs_served > 1 for call in shared)
    # each deal's trace shows the bulk calls that served it, in every system
    one = provisioned.first()
    vendors = {call.connection.vendor for call in calls_of_runs([one.pk])}
    assert vendors == {"salesforce", "netsuite", "kantata"}
    step = SyncStep.objects.get(run=one, name="provision_project")
    assert ApiCall.objects.filter(batch_key=step.batch_key, operation__contains="workspaces")


def test_a_refused_bulk_call_isolates_the_bad_deal_and_provisions_the_others(demo):
    # Kantata refuses a whole bulk create for one invalid workspace (all-or-nothing)
    demo["kantata"].state.add_fault(
        method="POST",
        path="/api/v1/workspaces",
        status=422,
        times=1,
        body={"errors": [{"type": "validation", "message": "Title is too long"}]},
    )
    close_deals(demo["salesforce"].url, 6)
    poll_closed_won(Connection.objects.get(vendor="salesforce"))

    provisioned = SyncRun.objects.filter(status=RunStatus.SUCCEEDED)
    assert provisioned.count() == 8
    for run in provisioned:
        assert len(deal_workspaces(demo["kantata"], run.correlation_id)) == 1


def test_a_bulk_create_whose_answer_was_lost_creates_no_second_workspace(demo, monkeypatch):
    real = KantataClient.create_workspaces
    lost = []

    def applied_but_answer_lost(self, items):
        if not lost:
            lost.append(real(self, items))  # Kantata created them ...
            raise TransientError("read timeout", operation="kantata.workspaces.bulk_create")
        return real(self, items)

    monkeypatch.setattr(KantataClient, "create_workspaces", applied_but_answer_lost)
    close_deals(demo["salesforce"].url, 6)
    poll_closed_won(Connection.objects.get(vendor="salesforce"))

    assert lost, "the bulk call was made"
    provisioned = SyncRun.objects.filter(status=RunStatus.SUCCEEDED)
    assert provisioned.count() == 8
    for run in provisioned:  # ... and each deal found its workspace instead of a second one
        assert len(deal_workspaces(demo["kantata"], run.correlation_id)) == 1, run


def test_a_crm_outage_at_write_back_leaves_each_deal_its_own_exception(demo):
    sf = demo["salesforce"]
    close_deals(sf.url, 3)
    rule = sf.state.add_fault(
        method="PATCH", path="/services/data/.*/composite/sobjects", status=503
    )
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    failed = SyncRun.objects.filter(status=RunStatus.FAILED, error__step="write_back_crm")
    assert failed.count() == 5  # the three, and the demo's two good deals in the same batch
    exceptions = IntegrationException.objects.filter(
        run__in=failed, code=ExceptionCode.VENDOR_UNAVAILABLE
    )
    assert exceptions.count() == 5
    assert {e.queue.team.kind for e in exceptions} == {"it"}

    # the CRM is back: IT retries one, which finishes from its failed step and resolves
    sf.state.clear_faults()
    assert rule.hits >= 1
    it = User.objects.get(username="it")
    first = exceptions.order_by("pk").first()
    assert actions.retry(first, it).ok
    first.refresh_from_db()
    assert first.status == ExceptionStatus.RESOLVED
    assert first.run.steps.get(name="provision_project").attempts == 1  # not redone
