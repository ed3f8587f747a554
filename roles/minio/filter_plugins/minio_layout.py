"""Filters for the minio role: MinIO's `{a...b}` expansion notation and erasure layout.

The rules mirror MinIO's own (cmd/endpoint-ellipses.go, internal/config/storageclass):
erasure sets of 2..16 drives, the set size being the largest size that divides the
total drive count and spreads symmetrically over the nodes; default parity by set
size (2-3 drives: 1, 4-5: 2, 6-7: 3, 8+: 4); read quorum = data drives, write
quorum = data drives, plus one when data == parity.
"""

from __future__ import annotations

import re

SET_SIZES = range(2, 17)
_TOKENS = re.compile(r"(\d+)")


def minio_ellipsis(items: list[str]) -> str:
    """Express ITEMS as one string in MinIO's ellipsis notation, or return "".

    ['minio1', 'minio2', 'minio3'] -> 'minio{1...3}';
    ['/d01', '/d02'] -> '/d{01...02}'. The items must differ in exactly one run of
    digits, holding consecutive ascending numbers written alike (all plain or all
    zero-padded to one width). A single item is returned unchanged.
    """
    items = [str(i) for i in items]
    if len(items) == 1:
        return items[0]
    if not items or len(set(items)) != len(items):
        return ""
    split = [_TOKENS.split(i) for i in items]
    if len({len(s) for s in split}) != 1:
        return ""
    varying = [pos for pos in range(len(split[0])) if len({s[pos] for s in split}) > 1]
    if len(varying) != 1 or varying[0] % 2 == 0:  # odd positions hold the digit runs
        return ""
    pos = varying[0]
    digits = [s[pos] for s in split]
    numbers = [int(d) for d in digits]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return ""
    plain = all(d == str(n) for d, n in zip(digits, numbers, strict=True))
    padded = len({len(d) for d in digits}) == 1 and any(d.startswith("0") for d in digits)
    if not (plain or padded):
        return ""
    head, tail = "".join(split[0][:pos]), "".join(split[0][pos + 1 :])
    return f"{head}{{{digits[0]}...{digits[-1]}}}{tail}"


def _default_parity(set_size: int) -> int:
    if set_size == 1:
        return 0
    if set_size <= 3:
        return 1
    if set_size <= 5:
        return 2
    if set_size <= 7:
        return 3
    return 4


def minio_erasure_layout(nodes: int, drives_per_node: int, storage_class: str = "") -> dict:
    """The erasure layout MinIO forms for NODES x DRIVES_PER_NODE drives in one pool.

    Returns a dict with `valid` and `reason`, and when valid: set_size, set_count,
    parity, data, read_quorum, write_quorum, and the number of whole nodes that may
    be lost while reads (`nodes_lost_read_ok`) and writes (`nodes_lost_write_ok`)
    keep working.
    """
    nodes, drives_per_node = int(nodes), int(drives_per_node)
    total = nodes * drives_per_node
    out: dict = {"valid": False, "reason": "", "total_drives": total}
    if nodes < 1 or drives_per_node < 1 or total < 2:
        out["reason"] = f"{nodes} node(s) x {drives_per_node} drive(s) = {total}; a set needs 2 or more"
        return out
    divisors = [s for s in SET_SIZES if total % s == 0]
    symmetric = [s for s in divisors if (nodes % s == 0 if nodes > s else s % nodes == 0)]
    if not symmetric:
        out["reason"] = (
            f"{total} drives ({nodes} nodes x {drives_per_node}) cannot be split into erasure sets of "
            f"2-16 drives spread evenly over {nodes} nodes (sizes dividing {total}: {divisors or 'none'})"
        )
        return out
    set_size = max(symmetric)
    parity = _default_parity(set_size)
    if storage_class:
        match = re.fullmatch(r"EC:(\d+)", str(storage_class))
        if not match or int(match.group(1)) > set_size // 2:
            out["reason"] = (
                f"storage class {storage_class!r} is not EC:N with N between 0 and {set_size // 2} "
                f"(half the erasure set of {set_size})"
            )
            return out
        parity = int(match.group(1))
    data = set_size - parity
    write_quorum = data + 1 if data == parity else data
    per_node = set_size // nodes if set_size >= nodes else 1
    out.update(
        valid=True,
        set_size=set_size,
        set_count=total // set_size,
        parity=parity,
        data=data,
        read_quorum=data,
        write_quorum=write_quorum,
        drives_per_node_per_set=per_node,
        nodes_lost_read_ok=(set_size - data) // per_node,
        nodes_lost_write_ok=(set_size - write_quorum) // per_node,
    )
    return out


class FilterModule:
    """minio_ellipsis, minio_erasure_layout."""

    def filters(self) -> dict:
        return {"minio_ellipsis": minio_ellipsis, "minio_erasure_layout": minio_erasure_layout}
