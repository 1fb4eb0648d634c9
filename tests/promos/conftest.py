"""The promo tests use the configs tests' panels, users and dependencies."""

from tests.configs.conftest import deps, http, panels, plans

__all__ = ["deps", "http", "panels", "plans"]
