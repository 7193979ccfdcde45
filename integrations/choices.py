"""Constant choice sets of the integration engine."""

from django.db import models


class SystemKind(models.TextChoices):
    CRM = "crm", "CRM"
    PSA = "psa", "PSA"
    ERP = "erp", "ERP"


class Vendor(models.TextChoices):
    SALESFORCE = "salesforce", "Salesforce"
    NETSUITE = "netsuite", "NetSuite"
    KANTATA = "kantata", "Kantata OX"


VENDOR_SYSTEM = {
    Vendor.SALESFORCE: SystemKind.CRM,
    Vendor.NETSUITE: SystemKind.ERP,
    Vendor.KANTATA: SystemKind.PSA,
}


class AuthKind(models.TextChoices):
    JWT_BEARER = "jwt_bearer", "OAuth 2.0 JWT bearer"
    OAUTH_M2M = "oauth_m2m", "OAuth 2.0 client credentials (M2M)"
    BEARER_TOKEN = "bearer_token", "Bearer token"


class Region(models.TextChoices):
    EMEA = "EMEA", "EMEA"
    AMERICAS = "Americas", "Americas"
    APAC = "APAC", "APAC"


class BillingModel(models.TextChoices):
    FIXED_FEE = "fixed_fee", "Fixed fee by milestone"
    TIME_AND_MATERIALS = "time_and_materials", "Time and materials"
    RETAINER = "retainer", "Retainer"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Trigger(models.TextChoices):
    POLL = "poll", "Polling"
    WEBHOOK = "webhook", "Webhook"
    API = "api", "API"
    MANUAL = "manual", "Manual"


class ErpDocument(models.TextChoices):
    """The kinds of financial record an ERP route sends to one ERP or another."""

    CUSTOMER = "customer", "Customer master"
    INVOICE = "invoice", "Invoices"
    POSTING = "posting", "Time and expense postings"
    REVENUE_SCHEDULE = "revenue_schedule", "Revenue schedules"
    PROJECT = "project", "Project accounting"
