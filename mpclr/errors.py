"""Errors mpclr raises. Each names the problem: the file, row, column, parameter or message at fault. And
the warnings: insecure parameters, privacy, a keyword's older name (`renamed_keywords`)."""

import functools
import warnings


class MpclrError(Exception):
    """Base class for mpclr's own errors."""


class ParameterError(MpclrError, ValueError):
    """A parameter set, preset or argument is invalid or insecure."""


class FormatError(MpclrError, ValueError):
    """Bytes that do not parse as the object they claim to be (SEAL object or protocol message)."""


class ProtocolError(MpclrError):
    """A protocol cannot proceed: missing nodes, too few shares, inconsistent state."""


class NodeUnavailable(ProtocolError):
    """Nodes did not answer (dead, unreachable, timed out). `nodes` names them."""

    def __init__(self, nodes, detail: str = ""):
        self.nodes = sorted(nodes)
        super().__init__(f"no answer from {', '.join(self.nodes)}" + (f": {detail}" if detail else ""))


class MessageError(ProtocolError):
    """A protocol message was rejected: truncated, tampered, replayed, or from the wrong session/params."""


class DataError(MpclrError, ValueError):
    """Input data is malformed: names file, row and column where it can."""


class InsecureParametersWarning(UserWarning):
    """Emitted when a parameter set below 128-bit security is used on explicit opt-in."""


class PrivacyWarning(UserWarning):
    """A study runs in a configuration that reveals more than the threat model's table promises in
    general (two hospitals: each learns the other's sums and sums of squares from the pooled scaling)."""


def renamed_keywords(**renamed: str):
    """Decorator: a function (or __init__) still takes each keyword's older name (`old="new"`), with a
    DeprecationWarning naming the new one; giving both is a TypeError."""

    def wrap(fn):
        name = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {new} and its older name {old}")
                    warnings.warn(f"{name}({old}=...) is now {name}({new}=...)", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap
