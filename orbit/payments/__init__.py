"""Payments: the core shared by every method (`service`), TON (`ton`, `tonapi`),
and the methods' own modules. See docs/payments.md."""
