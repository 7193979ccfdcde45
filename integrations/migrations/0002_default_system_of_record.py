"""Load the default system-of-record policy (reversible)."""

from django.db import migrations

from integrations.canonical.policy import DEFAULTS


def load(apps, schema_editor):
    Rule = apps.get_model("integrations", "SystemOfRecordRule")
    for (entity, field), owner in DEFAULTS.items():
        Rule.objects.get_or_create(
            entity=entity, field=field, defaults={"owner": owner, "note": "default policy"}
        )


def unload(apps, schema_editor):
    Rule = apps.get_model("integrations", "SystemOfRecordRule")
    for entity, field in DEFAULTS:
        Rule.objects.filter(entity=entity, field=field, note="default policy").delete()


class Migration(migrations.Migration):
    dependencies = [("integrations", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
