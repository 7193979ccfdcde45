"""Reporting extracts after a realistic demo flow: closed-won deals polled from the CRM,
a milestone invoiced, time posted to the ERP. Each extract writes the changed rows, the next
run only what changed since, the watermark moves only with a successful run."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from console.models import AuditEvent, User
from exceptions.models import IntegrationException
from integrations.models import Connection, PostingBatch, SyncRun
from integrations.polling import poll_closed_won
from integrations.postings import collect_time_entries
from integrations.psa_feed import read_psa_events
from integrations.reference_data import sync_people
from reporting import datasets, extracts
from reporting.models import Extract, ExtractRun
from reporting.tasks import run_extract as run_extract_task

ACCOUNTS = {"UK01": "0015g00000Tl001AAB", "US01": "0015g00000Tl002AAB"}


@pytest.fixture
def root(settings, tmp_path: Path) -> Path:
    settings.EXTRACTS_ROOT = tmp_path / "extracts"
    settings.EXTRACTS_SETTLE_SECONDS = 0
    return settings.EXTRACTS_ROOT


def close_deal(sf, entity: str = "UK01", amount: str = "20000.00") -> None:
    httpx.post(
        f"{sf.url}/__standin__/salesforce/close-deal",
        json={
            "account_id": ACCOUNTS[entity],
            "legal_entity": entity,
            "template": "FIXED-3",
            "amount": amount,
        },
    ).raise_for_status()
    poll_closed_won(Connection.objects.get(vendor="salesforce"))


def bill_and_post_time(demo) -> SyncRun:
    """Complete the first milestone of a provisioned UK project, read the PSA events (the
    invoice), then post approved time of that project to the ERP."""
    kt = demo["kantata"]
    psa = Connection.objects.get(vendor="kantata")
    run = SyncRun.objects.filter(
        workflow="create_service_engagement", status="succeeded", legal_entity_code="UK01"
    ).first()
    workspace = run.context["provision_project"]["psa_project_id"]
    story = min(
        (
            s
            for s in kt.state.table("stories").values()
            if str(s.get("workspace_id")) == workspace and s.get("story_type") == "milestone"
        ),
        key=lambda s: int(s["id"]),
    )
    httpx.post(
        f"{kt.url}/__standin__/kantata/complete-milestone", json={"story_id": story["id"]}
    ).raise_for_status()
    read_psa_events(psa)
    sync_people(Connection.objects.get(name="NetSuite (demo)"), psa)
    httpx.post(
        f"{kt.url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": 6, "approved": True, "user_ids": [1, 2]},
    ).raise_for_status()
    collect_time_entries(psa)
    return run


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_demo_seeds_one_daily_csv_extract_per_dataset(demo):
    daily = Extract.objects.filter(format="csv", enabled=True)
    assert sorted(daily.values_list("dataset", flat=True)) == sorted(Extract.Dataset.values)
    assert Extract.objects.get(name="invoices-parquet").enabled is False


def test_projects_extract_writes_the_rows_then_only_what_changed(demo, root):
    close_deal(demo["salesforce"])
    extract = Extract.objects.get(name="projects-daily")
    first = extracts.run_extract(extract)
    provisioned = SyncRun.objects.filter(workflow="create_service_engagement", status="succeeded")
    assert first.status == ExtractRun.Status.SUCCEEDED
    assert first.rows == provisioned.count() >= 2
    path = Path(first.file_path)
    assert path.parent == root / "projects-daily"
    assert path.name.startswith("projects-") and path.suffix == ".csv"
    assert first.bytes == path.stat().st_size
    rows = read_csv(first.file_path)
    assert list(rows[0]) == datasets.DATASETS["projects"].column_names
    assert {r["project_key"] for r in rows} == set(
        provisioned.values_list("correlation_id", flat=True)
    )
    newest = next(r for r in rows if r["contract_value"] == "20000.00")
    assert newest["currency"] == "GBP" and newest["legal_entity_code"] == "UK01"
    assert newest["psa_project_id"] and newest["erp_project_id"]
    assert newest["changed_at"].endswith("Z")  # UTC
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed into place

    close_deal(demo["salesforce"], "US01", "31000.50")
    second = extracts.run_extract(extract)
    assert second.status == ExtractRun.Status.SUCCEEDED and second.rows == 1
    (only,) = read_csv(second.file_path)
    assert only["contract_value"] == "31000.50" and only["currency"] == "USD"
    extract.refresh_from_db()
    assert second.watermark_from == first.watermark_to
    assert extract.watermark_at == second.watermark_to > first.watermark_to

    third = extracts.run_extract(extract)
    assert third.status == ExtractRun.Status.EMPTY and third.rows == 0 and not third.file_path
    assert len(list((root / "projects-daily").iterdir())) == 2
    assert AuditEvent.objects.filter(action="reporting.extract.run").count() == 3


def test_time_invoice_customer_and_exception_extracts(demo, root):
    close_deal(demo["salesforce"])
    bill_and_post_time(demo)

    time_run = extracts.run_extract(Extract.objects.get(name="time-entries"))
    posted = [
        item
        for batch in PostingBatch.objects.filter(record_type="timeBill")
        for item in batch.entries
        if item.get("erp_id")
    ]
    assert posted and time_run.rows == len(posted)
    entry = read_csv(time_run.file_path)[0]
    assert entry["hours"] == "1.00" and entry["cost_rate"] == "70.00"
    assert entry["erp_time_bill_id"] and entry["erp_employee_id"] and entry["erp_project_id"]
    assert entry["billable"] in ("true", "false")

    invoice_run = extracts.run_extract(Extract.objects.get(name="invoices-daily"))
    (invoice,) = read_csv(invoice_run.file_path)
    assert invoice["invoice_number"].startswith("INV-")
    assert Decimal(invoice["total"]) > Decimal(invoice["net_amount"]) > 0  # with tax
    assert invoice["total"].count(".") == 1 and len(invoice["total"].split(".")[1]) == 2
    assert invoice["currency"] == "GBP" and invoice["payment_state"] == "open"

    customers = read_csv(
        extracts.run_extract(Extract.objects.get(name="customers-daily")).file_path
    )
    assert "Northwind Consulting Ltd" in {c["customer_name"] for c in customers}
    assert all(c["erp_customer_id"] for c in customers)

    exc_run = extracts.run_extract(Extract.objects.get(name="exceptions-daily"))
    assert exc_run.rows == IntegrationException.objects.count() > 0
    # resolving one exception changes it: the next increment holds only that one
    exc = IntegrationException.objects.order_by("pk").first()
    exc.status = "resolved"
    exc.resolved_at = dt.datetime.now(dt.UTC)
    exc.save(update_fields=["status", "resolved_at"])
    (changed,) = read_csv(
        extracts.run_extract(Extract.objects.get(name="exceptions-daily")).file_path
    )
    assert changed["exception_id"] == str(exc.pk) and changed["status"] == "resolved"


def test_watermark_advances_only_with_a_successful_run(demo, root, monkeypatch):
    close_deal(demo["salesforce"])
    extract = Extract.objects.get(name="customers-daily")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(extracts, "write_csv", broken)
    failed = extracts.run_extract(extract)
    extract.refresh_from_db()
    assert failed.status == ExtractRun.Status.FAILED and "disk full" in failed.error
    assert extract.watermark_at is None and extract.watermark_id == 0
    assert not (root / "customers-daily").exists() or not list((root / "customers-daily").iterdir())

    monkeypatch.undo()
    ok = extracts.run_extract(extract)
    extract.refresh_from_db()
    assert ok.status == ExtractRun.Status.SUCCEEDED and ok.rows > 0 == failed.rows
    assert extract.watermark_at == ok.watermark_to is not None
    assert [p.name for p in (root / "customers-daily").iterdir()] == [Path(ok.file_path).name]


def test_parquet_round_trips(demo, root):
    pq = pytest.importorskip("pyarrow.parquet")
    close_deal(demo["salesforce"])
    bill_and_post_time(demo)
    extract = Extract.objects.get(name="invoices-parquet")
    run = extracts.run_extract(extract)
    assert run.status == ExtractRun.Status.SUCCEEDED and run.file_path.endswith(".parquet")
    table = pq.read_table(run.file_path)
    assert table.column_names == datasets.DATASETS["invoices"].column_names
    assert str(table.schema.field("total").type) == "decimal128(18, 2)"
    assert str(table.schema.field("changed_at").type) == "timestamp[us, tz=UTC]"
    (row,) = table.to_pylist()
    assert isinstance(row["total"], Decimal) and row["total"] == row["total"].quantize(
        Decimal("0.01")
    )
    assert row["changed_at"].utcoffset() == dt.timedelta(0)
    assert isinstance(row["invoice_date"], dt.date)


def test_periodic_task_follows_the_extract_schedule(demo, root):
    extract = Extract.objects.get(name="invoices-daily")
    task = extract.periodic_task
    assert task.task == "reporting.run_extract" and task.enabled
    assert task.args == f"[{extract.pk}]"
    assert (task.crontab.minute, task.crontab.hour) == ("15", "2")
    assert str(task.crontab.timezone) == "UTC"

    extract.schedule = "30 4 * * 1-5"
    extract.enabled = False
    extract.save()
    task.refresh_from_db()
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_week, task.enabled) == ("30", "4", "1-5", False)
    assert (
        PeriodicTask.objects.filter(task="reporting.run_extract").count() == Extract.objects.count()
    )

    # edited under Admin -> Periodic tasks: the extract follows
    task.crontab = CrontabSchedule.objects.create(minute="45", hour="6", timezone="UTC")
    task.enabled = True
    task.save()
    extract.refresh_from_db()
    assert extract.schedule == "45 6 * * *" and extract.enabled

    # the crontab itself edited in place: the extract follows too
    task.crontab.hour = "7"
    task.crontab.save()
    extract.refresh_from_db()
    assert extract.schedule == "45 7 * * *"

    # the scheduler's call runs the extract
    assert run_extract_task.apply(args=[extract.pk]).get() in ("succeeded", "empty")
    assert extract.runs.count() == 1

    extract.delete()
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_destination_must_stay_inside_the_extracts_root(demo, root):
    from django.core.exceptions import ValidationError

    extract = Extract(name="escape", dataset="customers", destination="../../etc")
    with pytest.raises(ValidationError):
        extract.full_clean()
    inside = Extract(name="warehouse", dataset="customers", destination="warehouse/daily")
    inside.full_clean()
    assert inside.folder == root.resolve() / "warehouse" / "daily"


def test_api_lists_creates_and_runs_extracts_for_it_admins(demo, root, client):
    client.force_login(User.objects.get(username="pmo"))
    listed = client.get("/api/v1/extracts/")
    assert listed.status_code == 200 and len(listed.json()) == 6
    assert listed.json()[0]["next_run"] or listed.json()[0]["enabled"] is False
    body = {"name": "wh-projects", "dataset": "projects", "format": "csv", "schedule": "0 3 * * *"}
    assert (
        client.post("/api/v1/extracts/", body, content_type="application/json").status_code == 403
    )

    client.force_login(User.objects.get(username="it"))
    bad = client.post(
        "/api/v1/extracts/", {**body, "destination": "/etc"}, content_type="application/json"
    )
    assert bad.status_code == 400 and "destination" in bad.json()
    created = client.post("/api/v1/extracts/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    extract = Extract.objects.get(name="wh-projects")
    assert extract.periodic_task.crontab.hour == "3"
    assert AuditEvent.objects.filter(action="reporting.extract.created").exists()

    close_deal(demo["salesforce"])
    ran = client.post(f"/api/v1/extracts/{extract.pk}/run/")
    assert ran.status_code == 202
    run = extract.runs.get()
    assert run.status == "succeeded" and run.triggered_by == "it"
    assert ran.json()["last_run"]["rows"] == run.rows


def test_extracts_page_shows_runs_and_run_now_for_admins(demo, root, client):
    close_deal(demo["salesforce"])
    client.force_login(User.objects.get(username="pmo"))
    page = client.get("/reporting/extracts/")
    assert page.status_code == 200
    assert b"customers-daily" in page.content and b"never run" in page.content
    assert b"Run now" not in page.content
    extract = Extract.objects.get(name="customers-daily")
    assert client.post(f"/reporting/extracts/{extract.pk}/run/").status_code == 403

    client.force_login(User.objects.get(username="it"))
    assert b"Run now" in client.get("/reporting/extracts/").content
    response = client.post(f"/reporting/extracts/{extract.pk}/run/", follow=True)
    assert response.status_code == 200
    run = extract.runs.get()
    assert run.file_name.encode() in response.content
