"""The KPI catalogue: every KPI's definition, formula, unit, direction and default thresholds,
and how its figure is computed from what Throughline itself recorded (never typed in).

Each live KPI is kept as rollups (dashboards.models.KpiRollup) of *observations*: integers in
the KPI's base unit (seconds, cents, or 0/1 for a rate), each at a point in time with its
legal entity, region, connection and (for money) currency. dashboards.observations turns the
raw records into observations, the same code for the incremental path and for the rebuild;
dashboards.kpi_queries reads the rollups. A KPI whose inputs Throughline does not record yet
is defined here all the same and marked with what it `needs`: it shows no number rather than
an invented one.

Aggregations: `average` (total / count), `rate` (share of 1s), `sum`, `count`, `balance` (a
running total from the first record; with `per_item`, a running average over items whose
observations replace their previous one: total / count as of the end) and `ratio` (two
rollup series, `parts`, combined when read: DSO = the first as a balance at the end of the
period / the second summed over the period x the days in it; both in cents, per currency).

Thresholds: `warning` and `breach` are boundaries in the display unit. For a KPI where lower
is better, a value at or above `warning` is a warning and at or above `breach` a breach; where
higher is better, at or below. Between them lies the warning band; the rest is ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Direction = Literal["lower", "higher", "none"]
Aggregation = Literal["average", "rate", "sum", "count", "balance", "ratio"]

OK, WARNING, BREACH, NO_DATA = "ok", "warning", "breach", "no_data"
#: a KPI without thresholds (a count, an amount): nothing to compare against
UNRATED = "unrated"


@dataclass(frozen=True)
class Thresholds:
    """Boundaries of the warning and breach bands, in the KPI's display unit."""

    warning: Decimal
    breach: Decimal

    def status(self, value: Decimal | None, direction: Direction) -> str:
        if value is None:
            return NO_DATA
        if direction == "lower":
            if value >= self.breach:
                return BREACH
            return WARNING if value >= self.warning else OK
        if direction == "higher":
            if value <= self.breach:
                return BREACH
            return WARNING if value <= self.warning else OK
        return OK

    def bands(self, direction: Direction, unit: str) -> dict[str, str]:
        """The three bands in words ("ok: below 72 hours", ...)."""
        w, b = _plain(self.warning), _plain(self.breach)
        if direction == "lower":
            return {
                OK: f"below {w} {unit}",
                WARNING: f"{w} to below {b} {unit}",
                BREACH: f"{b} {unit} or more",
            }
        return {
            OK: f"above {w} {unit}",
            WARNING: f"above {b} up to {w} {unit}",
            BREACH: f"{b} {unit} or less",
        }


@dataclass(frozen=True)
class Kpi:
    """One KPI: what it means, how it is computed, and what good looks like."""

    key: str
    name: str
    definition: str
    formula: str
    #: the display unit ("hours", "minutes", "%", "money", "count")
    unit: str
    direction: Direction
    aggregation: Aggregation
    #: where the observations come from (which records, which timestamps, which dimensions)
    computed_from: str
    thresholds: Thresholds | None = None
    #: base units per display unit (3600 seconds per hour, 100 cents per unit of money)
    scale: int = 1
    decimals: int = 2
    #: days the headline ("current") value covers
    window_days: int = 30
    #: the team that owns the outcome
    owner: str = ""
    #: what Throughline would have to record before this KPI can be computed ("" = live)
    needs: str = ""
    #: what "connection" means for this KPI
    connection_means: str = "the connection the work came from"
    tags: tuple[str, ...] = field(default=())
    #: a balance of items (each observation of an item replaces its previous one): the
    #: value is the average over the items, total / count, as of the end
    per_item: bool = False
    #: a ratio: the rollup keys of its numerator (read as a balance) and denominator (summed
    #: over the period), both integers in cents
    parts: tuple[str, ...] = field(default=())

    @property
    def live(self) -> bool:
        return not self.needs

    @property
    def rollup_keys(self) -> tuple[str, ...]:
        """The KpiRollup.kpi values holding this KPI's observations."""
        return self.parts or (self.key,)

    @property
    def is_money(self) -> bool:
        return self.unit == "money"

    def value(self, count: int, total: int) -> Decimal | None:
        """The figure in the display unit from a rollup's count and total (None: no data)."""
        if self.aggregation == "count":
            return Decimal(count)
        if self.aggregation == "ratio":  # needs two series and the period: kpi_queries
            return None
        if self.aggregation == "balance" and self.per_item:
            return self._round(Decimal(total) / count / self.scale) if count else None
        if self.aggregation in ("sum", "balance"):
            return self._round(Decimal(total) / self.scale)
        if not count:
            return None
        if self.aggregation == "rate":
            return self._round(Decimal(total) * 100 / count)
        return self._round(Decimal(total) / count / self.scale)

    def display(self, base: int | None) -> Decimal | None:
        """One observation's value (a minimum, a maximum) in the display unit."""
        if base is None:
            return None
        if self.aggregation == "rate":
            return self._round(Decimal(base) * 100)
        return self._round(Decimal(base) / self.scale)

    def ratio(self, numerator: int, denominator: int, days: Decimal) -> Decimal | None:
        """A ratio KPI's figure: numerator / denominator x days (None: nothing in the
        denominator)."""
        if not denominator:
            return None
        return self._round(Decimal(numerator) / Decimal(denominator) * days / self.scale)

    def status(self, value: Decimal | None) -> str:
        if self.thresholds is None:
            return NO_DATA if value is None else UNRATED
        return self.thresholds.status(value, self.direction)

    def _round(self, value: Decimal) -> Decimal:
        return value.quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


HOUR = 3600
D = Decimal

KPIS: tuple[Kpi, ...] = (
    Kpi(
        key="quote_to_project",
        name="Quote-to-project cycle time",
        definition=(
            "How long a deal takes from its first quote in the CRM to its project being "
            "provisioned in the PSA."
        ),
        formula=(
            "average over deals of (project provisioned at - first quote created at), in "
            "hours; a deal counts at the time its project was provisioned"
        ),
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(72), breach=D(168)),
        owner="pmo",
        computed_from=(
            "Timeline stamps `quote` (the CRM's first quote, read in fetch_deal) and "
            "`project_provisioned` of each create-service-engagement run that succeeded; "
            "legal entity, region and CRM connection of that run. Deals without a quote "
            "are left out."
        ),
    ),
    Kpi(
        key="won_to_project",
        name="Closed-won to project time",
        definition=(
            "How long the hand-off takes: from the deal's closed-won time in the CRM to its "
            "project being provisioned in the PSA."
        ),
        formula="average over deals of (project provisioned at - closed won at), in hours",
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(1), breach=D(4)),
        owner="pmo",
        computed_from=(
            "Timeline stamps `closed_won` and `project_provisioned` of each "
            "create-service-engagement run that succeeded; dimensions of that run."
        ),
    ),
    Kpi(
        key="provisioning_success_rate",
        name="Project provisioning success rate",
        definition=(
            "Share of closed-won deals whose project was provisioned on the first pass, "
            "without an exception that a person had to look at."
        ),
        formula=(
            "deals handed off without any exception / deals handed off or failed, x 100; a "
            "deal counts once, at its first outcome (its run's success, or its first "
            "exception)"
        ),
        unit="%",
        direction="higher",
        aggregation="rate",
        thresholds=Thresholds(warning=D(95), breach=D(85)),
        owner="pmo",
        computed_from=(
            "create-service-engagement runs: a run that succeeded with no exception ever "
            "opened for it counts 1 at its finish time; a run's first exception counts 0 at "
            "the time it opened, with the legal entity and region the run had then. A run "
            "still running with no exception is not counted yet."
        ),
    ),
    Kpi(
        key="time_entry_latency",
        name="Time-entry processing latency",
        definition=(
            "How long approved time takes from Throughline picking it up in the PSA to its "
            "posting in the ERP."
        ),
        formula=(
            "average over posted time entries of (batch posted at - batch created at), in minutes"
        ),
        unit="minutes",
        direction="lower",
        aggregation="average",
        scale=60,
        thresholds=Thresholds(warning=D(15), breach=D(60)),
        owner="finance",
        computed_from=(
            "Posting batches of time entries (record type timeBill) that posted: each entry "
            "the ERP took counts once, at the batch's posted time; legal entity and region "
            "of the entry's deal (its hand-off run), PSA connection. The wait between "
            "approval in the PSA and the next read (at most the read interval, a minute) "
            "is not in it: the PSA's approval time is not recorded."
        ),
    ),
    Kpi(
        key="billing_exception_rate",
        name="Billing exception rate",
        definition=(
            "Share of completed billing milestones whose invoice needed a person: the "
            "billing run raised at least one exception."
        ),
        formula=(
            "billing runs with an exception / billing runs that succeeded or failed, x 100; "
            "a milestone counts once, at its first outcome"
        ),
        unit="%",
        direction="lower",
        aggregation="rate",
        thresholds=Thresholds(warning=D(5), breach=D(10)),
        owner="finance",
        computed_from=(
            "release-milestone-billing runs: the first exception of a run counts 1 at the "
            "time it opened (legal entity and region the run had then); a run that "
            "succeeded without any exception counts 0 at its finish time. PSA connection."
        ),
    ),
    Kpi(
        key="time_to_invoice",
        name="Time to invoice",
        definition=(
            "How long a completed billing milestone waits for its invoice: from the "
            "milestone's completion reaching Throughline to the invoice in the ERP."
        ),
        formula=(
            "average over invoiced milestones of (invoice created at - milestone received "
            "at), in hours"
        ),
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(24), breach=D(72)),
        owner="finance",
        computed_from=(
            "release-milestone-billing runs that succeeded: the run's creation (the "
            "milestone.completed event consumed) to the finish of its create_invoice step; "
            "counted at the invoice's time. The PSA's own completion time is not on the "
            "event, so the change feed's delay (about a minute) is not in it."
        ),
    ),
    Kpi(
        key="invoice_cycle_time",
        name="Invoice cycle time",
        definition=(
            "The whole billing cycle of a milestone: from its completion reaching "
            "Throughline to the invoice existing in the ERP with its number and status back "
            "on the milestone in the PSA and on the deal in the CRM, waits in exception "
            "queues included."
        ),
        formula="average over billing runs of (run finished at - run created at), in hours",
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(24), breach=D(72)),
        owner="finance",
        computed_from=(
            "release-milestone-billing runs that succeeded: created to finished; counted "
            "at the finish. Invoice-to-cash is in DSO."
        ),
    ),
    Kpi(
        key="billed_amount",
        name="Billed",
        definition="Invoices raised for billing milestones, by legal entity and currency.",
        formula="sum of invoiced milestone amounts (before tax), in the invoice currency",
        unit="money",
        direction="none",
        aggregation="sum",
        scale=100,
        owner="finance",
        computed_from=(
            "release-milestone-billing runs that succeeded: the milestone's amount and "
            "currency the invoice was raised for (load_milestone; before tax, as the "
            "contract counts it), at the time its create_invoice step finished."
        ),
    ),
    Kpi(
        key="backlog",
        name="Backlog (contracted, not yet billed)",
        definition=(
            "What the firm has sold and not invoiced yet, per legal entity and currency: "
            "the leadership view of the order book."
        ),
        formula=(
            "sum of deal values handed off + amendment changes - invoiced milestone amounts, "
            "to the end of each period (a running balance from the first record)"
        ),
        unit="money",
        direction="none",
        aggregation="balance",
        scale=100,
        owner="leadership",
        computed_from=(
            "+ the deal amount of each create-service-engagement run that succeeded (at "
            "its finish); + the change in contract value of each update-billing-plan run "
            "that succeeded (new total - the value before it); - the invoiced milestone "
            "amount of each release-milestone-billing run that succeeded (at the invoice's "
            "time). Amounts before tax, per currency (no conversion)."
        ),
    ),
    Kpi(
        key="exceptions_opened",
        name="Exceptions opened",
        definition="New exceptions in the queues (repeats of an open one are not new).",
        formula="count of exceptions by the time they first opened",
        unit="count",
        direction="lower",
        aggregation="count",
        decimals=0,
        owner="it",
        connection_means="the connection that failed",
        computed_from=(
            "Exception records: first seen, legal entity, region and connection of each."
        ),
    ),
    Kpi(
        key="milestones_completed",
        name="Milestones completed",
        definition=(
            "Billing milestones marked complete in the PSA, as the analytics store saw them."
        ),
        formula="count of milestone facts by the time they were recorded",
        unit="count",
        direction="none",
        aggregation="count",
        decimals=0,
        owner="pmo",
        computed_from=(
            "Milestone facts (dashboards.MilestoneFact): recorded time, PSA connection, and "
            "legal entity and region of the milestone's deal (its hand-off run)."
        ),
    ),
    Kpi(
        key="dso",
        name="Days sales outstanding",
        definition=(
            "How many days of billing are waiting to be paid: what customers owe at the end "
            "of the period against what was invoiced in it."
        ),
        formula=(
            "receivables at period end / invoiced in the period x days in the period, per "
            "currency (invoice totals with tax, as the ERP holds them); each point of the "
            "series is the DSO over the 30 days to its bucket's end"
        ),
        unit="days",
        direction="lower",
        aggregation="ratio",
        parts=("dso.receivables", "dso.invoiced"),
        thresholds=Thresholds(warning=D(45), breach=D(60)),
        owner="finance",
        connection_means="the ERP the invoices are in",
        computed_from=(
            "Invoice payment facts (dashboards.InvoicePaymentFact): one each time the payments "
            "sync reads an invoice Throughline raised from the ERP (NetSuite SuiteQL: total "
            "and amount remaining) and its amounts changed. Invoiced and receivable: + the "
            "invoice's total at the time its billing run created it; receivable: - what was "
            "paid (or voided) at the ERP's last change of the invoice. Legal entity and "
            "region of the billing run, the ERP connection, the invoice's currency (no "
            "conversion). Invoices count from the first time the sync reads them."
        ),
    ),
    Kpi(
        key="earned_revenue",
        name="Earned revenue",
        definition=(
            "Revenue the ERP recognised: the revenue schedule lines of the months whose books "
            "it closed, by legal entity and currency."
        ),
        formula=(
            "sum of the revenue schedule lines of the accounting periods the ERP closed, "
            "each on its period's last day, in the line's currency"
        ),
        unit="money",
        direction="none",
        aggregation="sum",
        scale=100,
        owner="leadership",
        connection_means="the ERP that recognised it",
        computed_from=(
            "Recognised revenue facts (dashboards.EarnedRevenueFact), read back from the ERP "
            "by integrations.revenue every 5 minutes (NetSuite SuiteQL over the accounting "
            "periods and Throughline's revenue schedule custom record): each active line of "
            "a closed month, as the ERP holds it when the month is read, counted on the "
            "month's last day. Legal entity and region of the contract's deal (its hand-off "
            "run), the ERP connection, the line's currency."
        ),
    ),
    Kpi(
        key="project_margin_variance",
        name="Project margin variance",
        definition=(
            "How far projects' actual margin is from the margin they were sold at: below "
            "zero, projects earn less than planned."
        ),
        formula=(
            "average over projects of (actual margin % - planned margin %), each project at "
            "its latest figures up to the end of the period, where actual margin = (billed - "
            "cost) / billed, cost = posted time at cost rates + subcontractor charges"
        ),
        unit="percentage points",
        direction="higher",
        aggregation="balance",
        per_item=True,
        scale=100,
        thresholds=Thresholds(warning=D(-5), breach=D(-10)),
        owner="leadership",
        connection_means="the CRM the deal came from",
        computed_from=(
            "Project margin facts (dashboards.ProjectMarginFact), one each time a project's "
            "figures change: billed = the milestone amounts invoiced (release-milestone-"
            "billing runs, before tax); cost = time entries posted to the ERP at the cost "
            "rate each carries (hours x rate, to the cent) + subcontractor charges posted as "
            "vendor bills; planned margin = the CRM deal's Planned_Margin__c as read at "
            "hand-off. Costs in another currency than the deal's are converted at the ERP's "
            "exchange rates kept in Throughline. A project is left out while nothing is "
            "billed, without a planned margin, or once a cost could not be priced (no cost "
            "rate, no exchange rate). A change takes the project's previous figure back at "
            "the time of the change. Purchase orders are commitments, not costs: the vendor "
            "bills against them count. Legal entity and region of the hand-off run, its "
            "CRM connection."
        ),
    ),
    Kpi(
        key="project_margin",
        name="Project margin",
        definition=(
            "The margin projects make so far: what was billed less what the work cost, as a "
            "share of what was billed."
        ),
        formula=(
            "average over projects of (billed - cost) / billed x 100, each project at its "
            "latest figures up to the end of the period; cost = posted time at cost rates + "
            "subcontractor charges"
        ),
        unit="%",
        direction="higher",
        aggregation="balance",
        per_item=True,
        scale=100,
        owner="leadership",
        connection_means="the CRM the deal came from",
        computed_from=(
            "The project margin facts of project margin variance (dashboards."
            "ProjectMarginFact), billed and cost as there. A project is left out while "
            "nothing is billed, or once a cost could not be priced; a change takes the "
            "project's previous margin back at the time of the change. Legal entity and "
            "region of the hand-off run, its CRM connection."
        ),
    ),
    Kpi(
        key="utilization_freshness",
        name="Utilization reporting freshness",
        definition=(
            "How old the time data behind utilization reports is: from a person's time "
            "being approved in the PSA to it being in the reporting extract."
        ),
        formula=(
            "average over time entries of (in the extract at - approved at), in hours; an "
            "entry counts once, when the first extract file holding it was written"
        ),
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(24), breach=D(48)),
        owner="pmo",
        connection_means="the PSA the time came from",
        computed_from=(
            "Time entries posted to the ERP (posting batches of timeBill) with the approval "
            "time read from the PSA (Kantata has none on the entry: its updated_at when "
            "Throughline first read it approved, see the Kantata mapping), and the reporting "
            "extracts of the time dataset (reporting.ExtractRun that wrote a file): each "
            "entry counts at the finish of the first run whose watermark window holds its "
            "batch's posting time. Legal entity and region of the entry's deal (its hand-off "
            "run), PSA connection. Entries posted before approval times were read have none "
            "and are left out."
        ),
    ),
    Kpi(
        key="revenue_posting_accuracy",
        name="Revenue posting accuracy",
        definition=(
            "Share of billing that reached the ERP exactly as the PSA holds it: each billing "
            "milestone completed in the PSA has one ERP invoice for the same amount (to the "
            "cent, in the legal entity's currency), status, date and customer, as the "
            "reconciliation of the two systems themselves found it."
        ),
        formula=(
            "(milestones matched + differences accepted) / milestones and invoices compared, "
            "x 100, over the invoices reconciliation runs finished in the period"
        ),
        unit="%",
        direction="higher",
        aggregation="rate",
        thresholds=Thresholds(warning=D("99.5"), breach=D(99)),
        owner="finance",
        connection_means="the ERP compared",
        computed_from=(
            "Invoices reconciliation runs (PSA billing milestones vs ERP invoices, read from "
            "both systems): per legal entity, the keys compared and those matched or with a "
            "difference finance accepted, counted at the run's finish (several runs in the "
            "period weigh by their size)."
        ),
    ),
)

BY_KEY: dict[str, Kpi] = {kpi.key: kpi for kpi in KPIS}
LIVE: tuple[Kpi, ...] = tuple(kpi for kpi in KPIS if kpi.live)


def get(key: str) -> Kpi:
    """The KPI with this key (KeyError if there is none)."""
    return BY_KEY[key]
