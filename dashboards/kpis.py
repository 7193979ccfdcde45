"""The KPI catalogue: every KPI's definition, formula, unit, direction and default thresholds,
and how its figure is computed from what Throughline itself recorded (never typed in).

Each live KPI is kept as rollups (dashboards.models.KpiRollup) of *observations*: integers in
the KPI's base unit (seconds, cents, or 0/1 for a rate), each at a point in time with its
legal entity, region, connection and (for money) currency. dashboards.observations turns the
raw records into observations, the same code for the incremental path and for the rebuild;
dashboards.kpi_queries reads the rollups. A KPI whose inputs Throughline does not record yet
is defined here all the same and marked with what it `needs`: it shows no number rather than
an invented one.

Thresholds: `warning` and `breach` are boundaries in the display unit. For a KPI where lower
is better, a value at or above `warning` is a warning and at or above `breach` a breach; where
higher is better, at or below. Between them lies the warning band; the rest is ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Direction = Literal["lower", "higher", "none"]
Aggregation = Literal["average", "rate", "sum", "count", "balance"]

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

    @property
    def live(self) -> bool:
        return not self.needs

    @property
    def is_money(self) -> bool:
        return self.unit == "money"

    def value(self, count: int, total: int) -> Decimal | None:
        """The figure in the display unit from a rollup's count and total (None: no data)."""
        if self.aggregation == "count":
            return Decimal(count)
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
            "at the finish. Invoice-to-cash needs per-invoice payments (see DSO)."
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
    # -- defined, not computed yet: what Throughline does not record --------------------------
    Kpi(
        key="revenue_posting_accuracy",
        name="Revenue posting accuracy",
        definition=(
            "Share of revenue schedule lines that reached the ERP exactly as planned (amount, "
            "period, legal entity)."
        ),
        formula="matching revenue lines / revenue lines planned, x 100",
        unit="%",
        direction="higher",
        aggregation="rate",
        thresholds=Thresholds(warning=D("99.5"), breach=D(99)),
        owner="finance",
        computed_from="Reconciliation runs between the planned schedules and the ERP.",
        needs=(
            "reconciliation of revenue schedules against the ERP (issue 6): Throughline "
            "records what it sent, not what the ERP holds afterwards"
        ),
    ),
    Kpi(
        key="utilization_freshness",
        name="Utilization reporting freshness",
        definition=(
            "How old the time data behind utilization reports is: from a person's time "
            "being approved in the PSA to it being in the reporting extract."
        ),
        formula="average over approved entries of (in the extract at - approved at), in hours",
        unit="hours",
        direction="lower",
        aggregation="average",
        scale=HOUR,
        thresholds=Thresholds(warning=D(24), breach=D(48)),
        owner="pmo",
        computed_from="Approval times from the PSA and the reporting extracts' times.",
        needs=(
            "the PSA's approval time of each time entry and the reporting extracts (issue 5, "
            "item 7) with their as-of times"
        ),
    ),
    Kpi(
        key="project_margin_variance",
        name="Project margin variance",
        definition="How far each project's actual margin is from the margin it was sold at.",
        formula=(
            "actual margin % - planned margin %, where actual margin = (revenue - cost) / "
            "revenue, cost = posted time at cost rates + subcontractor charges"
        ),
        unit="percentage points",
        direction="none",
        aggregation="average",
        thresholds=Thresholds(warning=D(5), breach=D(10)),
        owner="leadership",
        computed_from="Planned cost per project, posted cost, recognised revenue.",
        needs=(
            "a planned cost (or margin) per project, and recognised revenue read back from "
            "the ERP; posted time and charges alone give cost, not margin"
        ),
    ),
    Kpi(
        key="dso",
        name="Days sales outstanding",
        definition="How many days of billing are waiting to be paid.",
        formula="receivables at period end / amount billed in the period x days in the period",
        unit="days",
        direction="lower",
        aggregation="average",
        thresholds=Thresholds(warning=D(45), breach=D(60)),
        owner="finance",
        computed_from="Invoices billed (recorded) and payments per invoice.",
        needs=(
            "per-invoice payment records (amount and date paid of each invoice): the "
            "payments sync writes the state to the PSA and the CRM but stamps only the "
            "deal's first payment, so receivables at a date cannot be rebuilt"
        ),
    ),
    Kpi(
        key="earned_revenue",
        name="Earned revenue",
        definition="Revenue recognised in the ERP, by legal entity.",
        formula="sum of recognised revenue in the period",
        unit="money",
        direction="none",
        aggregation="sum",
        scale=100,
        owner="leadership",
        computed_from="Recognised revenue per period from the ERP.",
        needs=(
            "recognised revenue read back from the ERP: Throughline posts revenue schedules "
            "(a plan) but does not read what the ERP recognised"
        ),
    ),
)

BY_KEY: dict[str, Kpi] = {kpi.key: kpi for kpi in KPIS}
LIVE: tuple[Kpi, ...] = tuple(kpi for kpi in KPIS if kpi.live)


def get(key: str) -> Kpi:
    """The KPI with this key (KeyError if there is none)."""
    return BY_KEY[key]
