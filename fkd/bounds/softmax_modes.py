"""The FAITHUB modes ``softmax`` and ``joint_softmax`` of ``ImageBounds``: tight mode first, then the
softmax inside each network's program (``fkd.bounds.softmax``), then both softmaxes at one shared x
(``fkd.bounds.joint_softmax``); each a ``ModeResult`` never above the mode it builds on."""
from __future__ import annotations

import time

from .budget import Budget
from .joint_softmax import joint_softmax_faithub
from .milp import Relax
from .network import check_pair
from .softmax import TANGENTS, SoftmaxBounds, softmax_faithub


def _combine(tight, t0: float, cached: bool, records: list, value: float, extra: float = 0.0):
    """A ModeResult built on ``tight``'s (seconds and solves include it, plus ``extra`` seconds of a
    reused stage; status the worst)."""
    from .shared import ModeResult, _summarise

    done = _summarise(min(value, tight.value), t0, records)
    status = "failed" if "failed" in (done.status, tight.status) else \
        "time_limit" if "time_limit" in (done.status, tight.status) else "ok"
    seconds = done.seconds + (tight.seconds if cached else 0.0) + extra
    return ModeResult(done.value, seconds, done.solves + tight.solves, status,
                      tuple(sorted(set(done.solvers) | set(tight.solvers))))


def softmax_pair(ib, teacher, student, stages=None, tangents: int = TANGENTS, pieces: int = 1):
    """(tight ModeResult, whether it was cached, SoftmaxBounds of teacher and student, value,
    records) for ``ImageBounds`` ``ib``: tight mode first, then the softmax block of each network on
    its refined d bounds (stages: LP, plus MILP when ib.method is milp, within ib.budget; ``pieces``:
    exp's chords of the MILP stage in pieces)."""
    cached = (ib._key(teacher), ib._key(student)) in ib._tight
    tight = ib.tight(teacher, student)
    if stages is None:
        stages = (Relax.LP,) if ib.method.value != "milp" else (Relax.LP, Relax.MILP)
    t, s = (SoftmaxBounds.start(ib.diffs(n), tangents, pieces) for n in (teacher, student))
    value, records = softmax_faithub(t, s, stages, ib.time_limit, ib.budget)
    return tight, cached, t, s, value, records


def softmax_mode(ib, teacher, student, stages=None, tangents: int = TANGENTS):
    """FAITHUB mode ``softmax`` of ``ImageBounds`` ``ib``: a ``ModeResult`` never above tight's."""
    check_pair(teacher, student)
    t0 = time.perf_counter()
    tight, cached, t, s, value, records = softmax_pair(ib, teacher, student, stages, tangents)
    if stages is None and tangents == TANGENTS:   # joint_softmax of this pair reuses the stage once
        spent = time.perf_counter() - t0 - (0.0 if cached else tight.seconds)
        stage_cache(ib)[ib._key(teacher), ib._key(student)] = (t, s, value, records, spent)
    return _combine(tight, t0, cached, records, value)


def stage_cache(ib) -> dict:
    """The softmax stage of each pair of ``ImageBounds`` ``ib`` that the softmax mode ran, for the
    joint_softmax mode to reuse once (its solves and seconds are counted again there)."""
    return ib.__dict__.setdefault("_softmax_stage", {})


def joint_softmax_mode(ib, teacher, student, pieces: int = 1, tangents: int = TANGENTS, stages=None):
    """FAITHUB mode ``joint_softmax`` of ``ImageBounds`` ``ib``: the ``softmax`` mode, then the joint
    program on its largest terms; a ``ModeResult`` never above softmax's or tight's."""
    check_pair(teacher, student)
    t0, budget = time.perf_counter(), Budget(ib.budget)
    hit = stage_cache(ib).pop((ib._key(teacher), ib._key(student)), None) \
        if stages is None and tangents == TANGENTS else None
    if hit is not None:   # the softmax mode just ran this pair's stage
        tight, cached, (t, s, value, records, extra) = ib.tight(teacher, student), True, hit
    else:
        tight, cached, t, s, value, records = softmax_pair(ib, teacher, student, stages, tangents)
        extra = 0.0
    left = None if ib.budget is None else max(budget.left(), 0.05)   # one short joint solve at least
    joint, recs = joint_softmax_faithub(t, s, pieces, tangents, ib.time_limit, left)
    return _combine(tight, t0, cached, records + recs, min(value, joint), extra)
