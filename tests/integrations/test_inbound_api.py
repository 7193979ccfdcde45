"""Outside systems hand work to Throughline: the composite service endpoint and the generic
inbound event endpoint start each deal's work once, reject bad events with reasons, and keep
every event received."""

from rest_framework.test import APIClient

from console.models import User
from integrations.choices import RunStatus
from integrations.models import Connection, InboundEvent, SyncRun
from integrations.polling import poll_closed_won

NORTHWIND = "0065g00000Tl001AAB"


def client_for(username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.get(username=username))
    return client


def test_an_ipaas_flow_hands_a_won_deal_over_once(demo):
    api = client_for("it")
    event = {
        "type": "opportunity.closed_won",
        "idempotency_key": "boomi-42",
        "source": "boomi",
        "data": {"opportunity_id": NORTHWIND},
    }
    first = api.post("/api/v1/events/", event, format="json")
    assert first.status_code == 202, first.content
    run = SyncRun.objects.get(pk=first.json()["run"])
    assert run.status == RunStatus.SUCCEEDED  # tasks run eagerly in this test
    assert run.trigger == "api"
    assert first.json()["run_url"] == f"/api/v1/runs/{run.pk}/"

    again = api.post("/api/v1/events/", event, format="json")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["run"] == run.pk

    # The same deal through the composite service, then through polling: still one run.
    service = api.post(
        "/api/v1/services/create-service-engagement/", {"opportunity_id": NORTHWIND}, format="json"
    )
    assert service.status_code == 202
    assert service.json()["run"] == run.pk
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    assert SyncRun.objects.filter(correlation_id=f"deal:{NORTHWIND}").count() == 1
    customers = demo["netsuite"].state.table("customer").values()
    assert sum(c["companyName"] == "Northwind Consulting Ltd" for c in customers) == 1


def test_bad_events_are_refused_with_reasons_and_kept(demo):
    api = client_for("it")
    bad = api.post(
        "/api/v1/events/",
        {
            "type": "opportunity.closed_won",
            "idempotency_key": "k1",
            "data": {"opportunity_id": "<script>"},
        },
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["field"] == "opportunity_id"
    unknown = api.post(
        "/api/v1/events/",
        {"type": "invoice.paid", "idempotency_key": "k2", "data": {}},
        format="json",
    )
    assert unknown.status_code == 400
    kept = InboundEvent.objects.get(idempotency_key="k1")
    assert kept.status == InboundEvent.Status.REJECTED
    assert kept.payload == {"opportunity_id": "<script>"}
    assert SyncRun.objects.count() == 0
    # a corrected resend may reuse the key
    fixed = api.post(
        "/api/v1/events/",
        {
            "type": "opportunity.closed_won",
            "idempotency_key": "k1",
            "data": {"opportunity_id": NORTHWIND},
        },
        format="json",
    )
    assert fixed.status_code == 202


def test_only_integration_clients_may_hand_work_over(demo):
    refused = client_for("finance").post(
        "/api/v1/services/create-service-engagement/", {"opportunity_id": NORTHWIND}, format="json"
    )
    assert refused.status_code == 403
    assert APIClient().post("/api/v1/events/", {}, format="json").status_code in (401, 403)


def test_every_composite_service_is_an_api(demo):
    import httpx

    from integrations.models import PostingBatch
    from integrations.reference_data import sync_people

    api = client_for("it")
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    handoff = SyncRun.objects.get(title__startswith="Northwind")
    workspace = handoff.context["provision_project"]["psa_project_id"]
    psa = Connection.objects.get(vendor="kantata")
    story = next(
        str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace and s.get("title") == "Kick-off"
    )
    httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/complete-milestone", json={"story_id": story}
    ).raise_for_status()
    billed = api.post(
        "/api/v1/services/release-milestone-billing/",
        {"psa_connection": psa.pk, "story_id": story},
        format="json",
    )
    assert billed.status_code == 202, billed.content
    run = SyncRun.objects.get(correlation_id=f"milestone:{psa.pk}:{story}")
    assert run.status == RunStatus.SUCCEEDED, run.error

    httpx.post(
        f"{demo['salesforce'].url}/__standin__/salesforce/approve-amendment",
        json={"id": "a015g00000Tl001AAB"},
    ).raise_for_status()
    replanned = api.post(
        "/api/v1/services/update-billing-plan/",
        {"amendment_id": "a015g00000Tl001AAB"},
        format="json",
    )
    assert replanned.status_code == 202, replanned.content
    assert SyncRun.objects.get(pk=replanned.json()["run"]).status == RunStatus.SUCCEEDED

    sync_people(Connection.objects.get(name="NetSuite (demo)"), psa)
    httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": 30, "approved": True, "user_ids": [2]},
    ).raise_for_status()
    posted = api.post(
        "/api/v1/services/post-time-and-expense/", {"psa_connection": psa.pk}, format="json"
    )
    assert posted.status_code == 202
    assert PostingBatch.objects.get().created_count == 30
