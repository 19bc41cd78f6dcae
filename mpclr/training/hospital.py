"""A hospital's side of the encrypted training: the steps it answers on its own rows (registered on every
hospital through mpclr.roles.extensions' `register_handlers`, as plain functions of (hospital, fields,
sender)), and the rows per fold it reports for a study's manifest. Its evaluation step is in
mpclr.evaluation.hospital.

lr.aggregate      sums of x, x^2 and the curvature bound's terms, encrypted (the public scaling statistics)
lr.folds          stratified fold ids from the hospital's own secret fold key (shown to the server)
lr.encrypt        its rows in the training layout: design blocks and the constant part, encrypted, in rounds
                  of at most `blocks_per_round` blocks (a window from `start`; the reply says where the next
                  starts), so that no reply holds a large study's rows at once
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import ProtocolError
from ..plain.folds import check_fold_count, secret_folds
from ..roles import encryptor
from ..roles.encryptor import PROCESS_MIN_CIPHERTEXTS
from ..roles.extensions import register_handlers
from .layout import Layout
from .party import (
    aggregate_length,
    aggregate_vector,
    block_ciphertexts,
    constant_part,
    design_rows,
    pack_blocks,
    upload_blocks,
    upload_window,
)
from .party import fold_sizes as _fold_sizes

__all__ = ["HANDLERS", "fold_sizes", "scaling"]


def fold_sizes(hospital, folds: int) -> list[int]:
    """Rows per fold of the assignment lr.folds will make at `hospital`, asked before the study for its
    manifest (public once assigned: lr.folds shows the server every row's fold). Before the hospital joins
    a session, the fold key it will use in that session is drawn now."""
    _, y, rows = hospital.require_data()
    return [int(x) for x in _fold_sizes(y, folds, hospital.fold_key(), rows)]


def on_aggregate(node, fields, sender):
    node.from_server(sender, "lr.aggregate")
    X, _, _ = node.require_data()
    d = X.shape[1]
    if aggregate_length(d) > node.ctx.params.slots:
        raise ProtocolError(f"{d} features make an aggregate larger than one ciphertext")
    return {"ciphertext": node.encrypt_bytes(aggregate_vector(X)), "length": aggregate_length(d), "features": d}


def on_folds(node, fields, sender):
    """Stratified fold ids for the hospital's rows from its own secret fold key: no seed from the server
    (a fold assignment an observer can replay tells it which rows share a label). folds=1 asks for one model
    on every row: no row is held out, every fold id is -1 (nothing drawn or revealed)."""
    node.from_server(sender, "lr.folds")
    if "seed" in fields:
        raise ProtocolError("lr.folds: a hospital draws its folds from its own secret randomness and "
                            "takes no seed from the server")
    _, y, rows = node.require_data()
    if fields["folds"] == 1 and not isinstance(fields["folds"], bool):
        node.folds = np.full(len(rows), -1, dtype=np.int64)
        return {"rows": rows.tolist(), "folds": node.folds.tolist()}
    folds = check_fold_count(fields["folds"])
    node.folds = secret_folds(y, folds, node.fold_key(), rows)
    return {"rows": rows.tolist(), "folds": node.folds.tolist()}


def scaling(fields, X):
    """The pooled means and standard deviations a request carries, checked against the hospital's features."""
    mean, std = np.asarray(fields["mean"], dtype=np.float64), np.asarray(fields["std"], dtype=np.float64)
    if mean.shape != (X.shape[1],) or std.shape != (X.shape[1],):
        raise ProtocolError(f"scaling statistics for {mean.shape} features, this hospital has {X.shape[1]}")
    return mean, std


def on_encrypt(node, fields, sender):
    node.from_server(sender, "lr.encrypt")
    X, y, rows = node.require_data()
    if node.folds is None:
        raise ProtocolError(f"{node.name}: fold assignment (lr.folds) must come before lr.encrypt")
    layout = Layout.from_description(fields["layout"])
    if layout.slots != node.ctx.params.slots or int(rows.max()) >= layout.n_rows:
        raise ProtocolError("the requested layout does not fit this hospital's rows or the parameters")
    if layout.features not in (None, X.shape[1] + 1):
        raise ProtocolError(f"the requested layout packs {layout.features} columns, this hospital has {X.shape[1] + 1}")
    mean, std = scaling(fields, X)
    counts = np.asarray(fields["train_counts"], dtype=np.float64)
    if counts.shape != (layout.folds,) or np.any(counts < 1):
        raise ProtocolError(f"training row counts must be positive, one per fold; got {counts.tolist()}")
    interval = float(fields["interval"])
    if not 0 < interval < 1e6:
        raise ProtocolError(f"sigmoid interval must be positive, got {interval}")
    level = int(fields.get("constant_level", node.ctx.top_level))  # where the trainer first uses C
    if not 0 <= level <= node.ctx.top_level:
        raise ProtocolError(f"the constant part's level must lie in 0..{node.ctx.top_level}, got {level}")
    z, scaled, own, sort = _upload_rows(node, fields["layout"], layout, mean, std, interval)
    order = upload_blocks(layout)
    take, following = upload_window(fields, own, node.ctx.params, block_ciphertexts(layout, z.shape[1]), "lr.encrypt")
    only = {order[i] for i in take}
    blocks = list(pack_blocks(layout, rows, scaled, only, sort))
    # the constant part goes with the first round (the one starting at the first block)
    first = fields.get("start", 0) == 0
    const = list(constant_part(layout, z, node.folds, counts)) if first else []
    large = len(own) * z.shape[1] >= PROCESS_MIN_CIPHERTEXTS  # the whole upload: worth a process
    # rows at the top level, the constant part at the level the trainer first uses it (fewer primes)
    cts = node.encrypt_many([v for *_, v in blocks] + [v for *_, v in const], processes=large,
                            levels=[None] * len(blocks) + [level] * len(const))
    if following is None:  # its last round
        encryptor.done(node)
        node._training_upload = None
    return {"blocks": [[g, b, j, ct] for (g, b, j, _), ct in zip(blocks, cts)],
            "constant": [[g, j, ct] for (g, j, _), ct in zip(const, cts[len(blocks):])], "next": following}


def _upload_rows(node, description, layout: Layout, mean, std, interval: float):
    """(z, z / R, the places of the hospital's blocks in the upload order, the argsort of its rows) for an
    upload: made on its first round and kept for the next ones (a million rows take hundreds of rounds,
    each would otherwise standardize and sort them all again), as long as the data and the request's
    layout and scaling stay the same."""
    data = node.require_data()
    key = (json.dumps(description, sort_keys=True), mean.tobytes(), std.tobytes(), float(interval))
    kept = getattr(node, "_training_upload", None)
    if kept is not None and kept[0] is data and kept[1] == key:
        return kept[2]
    X, y, rows = data
    z = design_rows(X, y, mean, std)
    place = {gb: i for i, gb in enumerate(upload_blocks(layout))}
    own = sorted(place[(g.index, b)] for g in layout.groups for b in layout.blocks_with_rows(g, rows))
    value = (z, z / interval, own, np.argsort(np.asarray(rows), kind="stable"))
    node._training_upload = (data, key, value)
    return value


HANDLERS = {"lr.aggregate": on_aggregate, "lr.folds": on_folds, "lr.encrypt": on_encrypt}
register_handlers(HANDLERS)
