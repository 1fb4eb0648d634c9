"""The small set of errors the Marzban layer raises; handlers turn them into texts.

Each error names the catalog key (`orbit/locales/*/LC_MESSAGES/marzban.ftl`)
a handler shows the user, so no handler needs to know panel details.
"""

from __future__ import annotations


class MarzbanError(Exception):
    """Base of every error raised by `orbit.marzban`."""

    message_key = "marzban-error"


class PanelUnavailable(MarzbanError):
    """The panel could not be reached, timed out, answered 5xx or refused our login.

    `outcome_unknown` is true when the request may have been applied although
    no answer came back (a timeout or a dropped connection after sending).
    """

    message_key = "marzban-panel-unavailable"

    def __init__(self, instance_id: str, reason: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(f"panel {instance_id}: {reason}")
        self.instance_id = instance_id
        self.reason = reason
        self.outcome_unknown = outcome_unknown


class PanelAuthFailed(PanelUnavailable):
    """The panel refused the instance's credentials (fix them with `orbit instances edit`)."""


class PanelRejected(MarzbanError):
    """The panel understood the request and refused it (4xx other than 401/404/409).

    `fields` holds a 422 body's field → message object, empty otherwise.
    """

    message_key = "marzban-panel-rejected"

    def __init__(
        self,
        instance_id: str,
        status: int,
        detail: str,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"panel {instance_id} answered {status}: {detail}")
        self.instance_id = instance_id
        self.status = status
        self.detail = detail
        self.fields = fields or {}


class PanelUserExists(PanelRejected):
    """409: a panel user with that username already exists."""


class PanelUserNotFound(MarzbanError):
    """404 `User not found`: the panel has no user by that name."""

    message_key = "marzban-user-not-found"

    def __init__(self, instance_id: str, username: str) -> None:
        super().__init__(f"panel {instance_id} has no user {username!r}")
        self.instance_id = instance_id
        self.username = username


class NoInstanceAvailable(MarzbanError):
    """No active, healthy instance is left to place a config on."""

    message_key = "marzban-no-instance"


class InstanceNotFound(MarzbanError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"unknown instance {instance_id!r}")
        self.instance_id = instance_id


class ConfigNotFound(MarzbanError):
    """The config row does not exist or was deleted."""

    message_key = "marzban-config-not-found"

    def __init__(self, config_id: int) -> None:
        super().__init__(f"config {config_id} does not exist or was deleted")
        self.config_id = config_id


class ConfigBusy(MarzbanError):
    """Another operation on the same config did not finish in time."""

    def __init__(self, config_id: int) -> None:
        super().__init__(f"config {config_id} is busy with another panel operation")
        self.config_id = config_id


class DrainRefused(MarzbanError):
    """Draining cannot start (no other healthy instance, unknown instance)."""
