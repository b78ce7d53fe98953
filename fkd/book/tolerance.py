"""When a cell of ours reproduces the paper's: the tolerance per table and the one rule that applies it.

Ours is rounded as the paper prints the table (Table 1: accuracy in percent, one decimal; Table 2:
the mean of a bound over the images, three decimals), then compared with the paper's printed value.
"""
from __future__ import annotations

#: How close a cell must be to the paper's to count as reproduced: Table 1 in accuracy points,
#: Table 2 in the mean of a bound over the images.
TOLERANCE = {"table1": 2.0, "table2": 0.05}
#: The decimals the paper prints each table's cells with.
DECIMALS = {"table1": 1, "table2": 3}


def within(diff, table: str):
    """Whether ours reproduces the paper's cell: ``|diff|`` rounded to the paper's decimals is at most
    ``TOLERANCE[table]`` (the one rule every count of reproduced cells uses).

    Args:
        diff: ours minus the paper's, a float or a pandas Series. table: ``table1`` or ``table2``.
    Returns:
        bool, or a boolean Series like ``diff``.
    """
    if table not in TOLERANCE:
        raise ValueError(f"unknown table {table!r}; choose one of: {', '.join(TOLERANCE)}")
    return abs(round(diff, DECIMALS[table])) <= TOLERANCE[table] + 1e-9
