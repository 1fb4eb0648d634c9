"""The admin audit trail (table `admin_audit`): `record()` inside the change's transaction."""

from orbit.audit.queries import Entry
from orbit.audit.trail import NotInTransaction, bot_actor, by_key, cli_actor, instance_target, latest, record

__all__ = [
    "Entry",
    "NotInTransaction",
    "bot_actor",
    "by_key",
    "cli_actor",
    "instance_target",
    "latest",
    "record",
]
