"""Links from an exception to the records it concerns in each connected system.

One small function per vendor builds a record's address from the connection's base URL and
the record's id in that system. Connections to the local stand-ins (any host that is not the
vendor's own domain) link to the stand-in's record page, `/__standin__/records/<kind>/<id>`,
which shows the record as the stand-in holds it.

The records come from what Throughline knows: the deal a run was started for (its
correlation id), the external-id bindings the run made, and the bindings of the exception's
own entity (a legal entity's subsidiary in each ERP, a customer, a project).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.db.models import Q

from integrations.choices import Vendor
from integrations.models import Connection, ExternalBinding

from .models import IntegrationException

#: at most this many links on a page (a run can touch many records)
MAX_LINKS = 12

#: Throughline's entity types as each vendor calls the record: (UI path or object, stand-in
#: collection, label)
SALESFORCE_OBJECTS = {
    "opportunity": ("Opportunity", "Opportunity", "Opportunity"),
    "customer": ("Account", "Account", "Account"),
    "account": ("Account", "Account", "Account"),
    "contract_amendment": ("Contract_Amendment__c", "Contract_Amendment__c", "Amendment"),
}
NETSUITE_RECORDS = {
    "customer": ("/app/common/entity/custjob.nl", "customer", "Customer"),
    "project": ("/app/accounting/project/project.nl", "job", "Project"),
    "job": ("/app/accounting/project/project.nl", "job", "Project"),
    "invoice": ("/app/accounting/transactions/custinvc.nl", "invoice", "Invoice"),
    "legal_entity": ("/app/common/otherlists/subsidiarytype.nl", "subsidiary", "Subsidiary"),
    "vendor": ("/app/common/entity/vendor.nl", "vendor", "Vendor"),
    "person": ("/app/common/entity/employee.nl", "employee", "Employee"),
    "purchase_order": ("/app/accounting/transactions/purchord.nl", "purchaseorder", "PO"),
}
KANTATA_RECORDS = {
    "project": ("workspaces", "workspaces", "Project"),
    "person": ("users", "users", "Person"),
}
REAL_DOMAINS = {
    Vendor.SALESFORCE: ("salesforce.com", "force.com"),
    Vendor.NETSUITE: ("netsuite.com",),
    Vendor.KANTATA: ("mavenlink.com", "kantata.com"),
}


@dataclass(frozen=True)
class RecordLink:
    system: str  # the connection's name
    label: str  # what the record is, in the vendor's words
    external_id: str
    url: str


def is_standin(connection: Connection) -> bool:
    """A connection whose host is not the vendor's own domain (the local stand-ins)."""
    host = (urlsplit(connection.base_url).hostname or "").lower()
    domains = REAL_DOMAINS.get(connection.vendor, ())
    return not any(host == d or host.endswith("." + d) for d in domains)


def _standin_url(connection: Connection, collection: str, external_id: str) -> str:
    base = connection.base_url.rstrip("/")
    return f"{base}/__standin__/records/{quote(collection)}/{quote(external_id, safe='')}"


def salesforce_url(connection: Connection, entity_type: str, external_id: str) -> RecordLink | None:
    """`<instance>/lightning/r/<Object>/<id>/view` (the instance from settings.instance_url,
    else the base URL)."""
    kind = SALESFORCE_OBJECTS.get(entity_type)
    if kind is None:
        return None
    sobject, collection, label = kind
    if is_standin(connection):
        url = _standin_url(connection, collection, external_id)
    else:
        instance = str(connection.settings.get("instance_url") or connection.base_url)
        url = f"{instance.rstrip('/')}/lightning/r/{sobject}/{quote(external_id, safe='')}/view"
    return RecordLink(connection.name, label, external_id, url)


def netsuite_url(connection: Connection, entity_type: str, external_id: str) -> RecordLink | None:
    """`https://<account>.app.netsuite.com/app/.../<record>.nl?id=<internal id>` (the
    account from settings.account_id: lower case, '_' becomes '-')."""
    kind = NETSUITE_RECORDS.get(entity_type)
    if kind is None:
        return None
    path, collection, label = kind
    if is_standin(connection):
        url = _standin_url(connection, collection, external_id)
    else:
        account = str(connection.settings.get("account_id") or "").strip().lower()
        host = account.replace("_", "-") or (urlsplit(connection.base_url).hostname or "")
        host = host.split(".")[0]
        url = f"https://{host}.app.netsuite.com{path}?id={quote(external_id, safe='')}"
    return RecordLink(connection.name, label, external_id, url)


def kantata_url(connection: Connection, entity_type: str, external_id: str) -> RecordLink | None:
    """`https://app.mavenlink.com/workspaces/<id>` (Kantata OX's web app)."""
    kind = KANTATA_RECORDS.get(entity_type)
    if kind is None:
        return None
    path, collection, label = kind
    if is_standin(connection):
        url = _standin_url(connection, collection, external_id)
    else:
        url = f"https://app.mavenlink.com/{path}/{quote(external_id, safe='')}"
    return RecordLink(connection.name, label, external_id, url)


BUILDERS = {
    Vendor.SALESFORCE: salesforce_url,
    Vendor.NETSUITE: netsuite_url,
    Vendor.KANTATA: kantata_url,
}


def record_url(connection: Connection, entity_type: str, external_id: str) -> RecordLink | None:
    """The address of one record in `connection`'s system, or None if we cannot build one."""
    builder = BUILDERS.get(connection.vendor)
    if builder is None or not external_id:
        return None
    return builder(connection, entity_type, str(external_id))


def record_links(exc: IntegrationException) -> list[RecordLink]:
    """The records `exc` concerns, one link each (the deal first), at most MAX_LINKS."""
    found: list[RecordLink] = []
    seen: set[str] = set()

    def add(link: RecordLink | None) -> None:
        if link is not None and link.url not in seen and len(found) < MAX_LINKS:
            seen.add(link.url)
            found.append(link)

    run = exc.run
    if run is not None and run.correlation_id.startswith("deal:"):
        deal = run.correlation_id.removeprefix("deal:")
        source = run.source_connection
        if source is None or source.vendor != Vendor.SALESFORCE:
            source = Connection.objects.filter(vendor=Vendor.SALESFORCE).order_by("pk").first()
        if source is not None:
            add(record_url(source, "opportunity", deal))
    # these failures name the record by the vendor's own id
    own_id = exc.entity_type == "opportunity" or (
        exc.entity_type == "project"
        and exc.connection is not None
        and exc.connection.vendor == Vendor.KANTATA
    )
    if own_id and exc.connection is not None:
        add(record_url(exc.connection, exc.entity_type, exc.entity_ref))
    bound = Q()
    if exc.entity_type and exc.entity_ref:
        bound |= Q(entity_type=exc.entity_type, canonical_key=exc.entity_ref)
    if run is not None:
        bound |= Q(created_by_run=run)
        if run.business_key:
            bound |= Q(canonical_key=run.business_key)
    if bound:
        bindings = (
            ExternalBinding.objects.filter(bound)
            .select_related("connection")
            .order_by("connection__name", "entity_type", "pk")[: MAX_LINKS * 2]
        )
        for binding in bindings:
            add(record_url(binding.connection, binding.entity_type, binding.external_id))
    return found
