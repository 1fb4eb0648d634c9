"""Promo codes: balance credits or subscription days, each usable once per user."""
