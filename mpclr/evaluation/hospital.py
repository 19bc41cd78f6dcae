"""A hospital's side of the secure evaluation: lr.encrypt_eval, its rows in the public evaluation layout
(standardized features and labels, encrypted), registered on every hospital through mpclr.roles.extensions'
`register_handlers`."""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from ..roles import encryptor
from ..roles.encryptor import PROCESS_MIN_CIPHERTEXTS
from ..roles.extensions import register_handlers
from ..training.hospital import scaling
from ..training.party import upload_window
from .layout import EvalLayout, own_blocks, party_vectors

__all__ = ["HANDLERS"]


def on_encrypt_eval(node, fields, sender):
    """The hospital's rows in the public evaluation layout: standardized features / scale and labels,
    encrypted under the collective key, as [block, column, ciphertext] for the blocks it has rows in, in
    rounds (mpclr.training.party.upload_window: from `start`, at most `count` blocks; `next` says where
    the next round starts)."""
    node.from_server(sender, "lr.encrypt_eval")
    X, y, rows = node.require_data()
    if node.folds is None:
        raise ProtocolError(f"{node.name}: fold assignment (lr.folds) must come before lr.encrypt_eval")
    layout = EvalLayout.from_description(fields["layout"])
    if layout.slots != node.ctx.params.slots or int(rows.max()) >= layout.n_rows:
        raise ProtocolError("the evaluation layout does not fit this hospital's rows or the parameters")
    if not np.array_equal(layout.fold_of_row[rows], node.folds):
        raise ProtocolError(f"{node.name}: the evaluation layout's fold ids differ from this hospital's own")
    mean, std = scaling(fields, X)
    scale = float(fields["scale"])
    if not 0 < scale < 1e6:
        raise ProtocolError(f"evaluation scale must be positive, got {scale}")
    label_level = int(fields.get("label_level", node.ctx.top_level))  # where the evaluation first uses them
    if not 0 <= label_level <= node.ctx.top_level:
        raise ProtocolError(f"the labels' level must lie in 0..{node.ctx.top_level}, got {label_level}")
    d = X.shape[1]
    own = own_blocks(layout, rows)
    take, following = upload_window(fields, own, node.ctx.params, layout.block_ciphertexts(d), "lr.encrypt_eval")
    vectors = list(party_vectors(layout, rows, X, y, mean, std, scale, set(take)))
    large = len(own) * (d + 1) >= PROCESS_MIN_CIPHERTEXTS  # the whole upload: worth a process
    # features at the top level, labels (column d) where the evaluation first uses them (fewer primes)
    cts = node.encrypt_many([v for *_, v in vectors], processes=large,
                            levels=[label_level if j == d else None for _, j, _ in vectors])
    if following is None:  # its last round
        encryptor.done(node)
    return {"ciphertexts": [[b, j, ct] for (b, j, _), ct in zip(vectors, cts)], "next": following}


HANDLERS = {"lr.encrypt_eval": on_encrypt_eval}
register_handlers(HANDLERS)
