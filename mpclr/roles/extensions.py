"""The hospital's extension point: packages above roles/ (training, evaluation, stats) teach every hospital
the steps it answers on its own rows, so that roles/ holds only generic multiparty code and imports none
of them."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["register_handlers", "handlers"]

# Steps other packages teach every hospital (mpclr.training.hospital, mpclr.evaluation.hospital, mpclr.stats):
# step -> function(hospital, fields, sender).
_EXTRA_HANDLERS: dict[str, Callable] = {}


def register_handlers(handlers: dict[str, Callable]) -> None:
    """Let every hospital made from now on answer more protocol steps: step -> function(hospital, fields,
    sender), run as the hospital's own handlers are (what it raises becomes a refusal). What such a
    package keeps between requests goes in `hospital.extension_state[its name]` (JSON, saved with the
    hospital's keystore)."""
    for step, fn in handlers.items():
        if not callable(fn):
            raise TypeError(f"handler of {step!r} is not callable")
    _EXTRA_HANDLERS.update(handlers)


def handlers() -> dict[str, Callable]:
    """The steps registered so far (a copy): what a hospital made now answers beyond its own."""
    return dict(_EXTRA_HANDLERS)
