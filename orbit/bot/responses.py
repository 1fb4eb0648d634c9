"""Keep aiogram's parsed-response classes alive for the life of the process.

aiogram parses every Bot API answer with `Response[method.__returning__]`, a
pydantic generic parametrized on each call. Pydantic caches parametrized
classes *weakly*, and a class sits in reference cycles, so a cyclic GC pass
frees it and the next call builds it again: schema generation, milliseconds of
CPU on the update that happens to hit it (it showed as the top cost in
`bench/bench_menu.py`, and is why `gc.freeze()` helped aiogram so much). Holding
one strong reference per return type (about 40) at start-up ends that.
"""

from __future__ import annotations

from aiogram import methods
from aiogram.methods.base import Response


def pin_response_types() -> tuple[type, ...]:
    """Parametrize `Response[T]` for every Bot API method; keep the result referenced."""
    returning = set()
    for name in methods.__all__:
        value = getattr(getattr(methods, name), "__returning__", None)
        if value is not None and not isinstance(value, property):
            returning.add(value)
    return tuple(Response[t] for t in returning)  # type: ignore[misc]
