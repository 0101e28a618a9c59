"""The in-memory placement index used by ``reserve_any`` with a built-in scorer.

Nodes with the same allocatable vector and labels form a *shape*. Inside a shape,
nodes are bucketed by their used ``(cpu, gpu)``; each bucket is a sorted list of
``used_ram << 32 | seq`` integers (bisection on plain ints is several times faster
than on tuples). Within a bucket the best node for any built-in
score is found by bisection on RAM, and buckets are visited in CPU order with an
upper bound that stops the walk early (binpack, spread). The cost of a search grows
with the number of distinct CPU-use levels per shape, not with the number of nodes.
Balanced cannot stop early; for a shape whose buckets hold only a node or two it
makes one plain pass over the shape's nodes instead.

Ties (equal scores) go to the node registered first (lowest ``seq``).

Updates are lazy: reserve and release only mark the node dirty (one flag and one
list append); the next search moves the dirty nodes to their new buckets first.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Mapping

from ._scoring import Selector, builtin_score, matches
from ._types import Resources

BIG = 1 << 62
#: Balanced scans a shape node by node when its buckets average fewer nodes than this.
SCAN_BELOW = 4
SEQ_BITS = 32
SEQ_MASK = (1 << SEQ_BITS) - 1


class NodeState:
    """The mutable record the memory backend keeps for one node."""

    __slots__ = (
        "alloc_cpu",
        "alloc_ext",
        "alloc_gpu",
        "alloc_ram",
        "allocatable",
        "capacity",
        "dirty",
        "draining",
        "gpu_mask",
        "indexed",
        "jobs",
        "labels",
        "node_id",
        "seq",
        "shape",
        "used_cpu",
        "used_ext",
        "used_gpu",
        "used_ram",
    )

    def __init__(
        self,
        node_id: str,
        seq: int,
        capacity: Resources,
        allocatable: Resources,
        labels: Mapping[str, str],
    ) -> None:
        self.node_id = node_id
        self.seq = seq
        self.capacity = capacity
        self.allocatable = allocatable
        self.alloc_cpu = allocatable.cpu_milli
        self.alloc_ram = allocatable.ram_mib
        self.alloc_gpu = allocatable.gpu
        self.alloc_ext: dict[str, int] = dict(allocatable.extended)
        self.labels = labels
        self.used_cpu = 0
        self.used_ram = 0
        self.used_gpu = 0
        self.used_ext: dict[str, int] = {}
        self.gpu_mask = 0
        self.jobs: dict[str, object] = {}
        self.draining = False
        self.dirty = False
        self.shape: Shape | None = None
        # (used_cpu, used_gpu, used_ram) as filed in the shape's buckets, None if not filed.
        self.indexed: tuple[int, int, int] | None = None


def shape_key(node: NodeState) -> tuple[object, ...]:
    return (
        node.alloc_cpu,
        node.alloc_ram,
        node.alloc_gpu,
        tuple(node.alloc_ext.items()),
        tuple(node.labels.items()),
    )


class Shape:
    """The nodes of one shape, bucketed by used (cpu, gpu), each bucket sorted by RAM."""

    __slots__ = ("ac", "ag", "alloc_ext", "ar", "buckets", "filed", "keys", "labels", "members")

    def __init__(self, node: NodeState) -> None:
        self.ac, self.ar, self.ag = node.alloc_cpu, node.alloc_ram, node.alloc_gpu
        self.alloc_ext = dict(node.alloc_ext)
        self.labels = node.labels
        self.members: dict[int, NodeState] = {}  # seq -> node
        # seq -> ((used_cpu, used_gpu, used_ram), node) for the filed (non-draining) nodes
        self.filed: dict[int, tuple[tuple[int, int, int], NodeState]] = {}
        self.buckets: dict[tuple[int, int], list[int]] = {}
        self.keys: list[tuple[int, int]] = []  # sorted (used_cpu, used_gpu)

    def add(self, node: NodeState) -> None:
        node.shape = self
        self.members[node.seq] = node
        self.refresh(node)

    def remove(self, node: NodeState) -> None:
        self._unfile(node)
        del self.members[node.seq]
        node.shape = None

    def refresh(self, node: NodeState) -> None:
        want = None if node.draining else (node.used_cpu, node.used_gpu, node.used_ram)
        if want == node.indexed:
            return
        self._unfile(node)
        if want is not None:
            key = (want[0], want[1])
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = []
                insort(self.keys, key)
            insort(bucket, want[2] << SEQ_BITS | node.seq)
            node.indexed = want
            self.filed[node.seq] = (want, node)

    def _unfile(self, node: NodeState) -> None:
        have = node.indexed
        if have is None:
            return
        key = (have[0], have[1])
        bucket = self.buckets[key]
        del bucket[bisect_left(bucket, have[2] << SEQ_BITS | node.seq)]
        if not bucket:
            del self.buckets[key]
            del self.keys[bisect_left(self.keys, key)]
        node.indexed = None
        del self.filed[node.seq]

    def _first(self, kind: str, bucket: list[int], uc: int, rc: int, rr: int, max_r: int) -> int:
        """The bucket's best entry with ``used_ram <= max_r`` (lowest seq on a tie), or -1."""
        if kind == "spread":
            return bucket[0] if bucket[0] >> SEQ_BITS <= max_r else -1
        hi = bisect_right(bucket, max_r << SEQ_BITS | SEQ_MASK)
        if hi == 0:
            return -1
        if kind == "binpack":
            return bucket[bisect_left(bucket, bucket[hi - 1] & ~SEQ_MASK, 0, hi)]
        ac = self.ac or 1
        target = (uc + rc) * (self.ar or 1)  # balanced wants (ur + rr) * ac == target
        split = (target // ac) - rr
        right = bisect_right(bucket, split << SEQ_BITS | SEQ_MASK, 0, hi) if split >= 0 else 0
        if right == 0:
            return bucket[0]
        below = bucket[bisect_left(bucket, bucket[right - 1] & ~SEQ_MASK, 0, right)]
        if right == hi:
            return below
        above = bucket[right]
        d_below = target - ((below >> SEQ_BITS) + rr) * ac
        d_above = ((above >> SEQ_BITS) + rr) * ac - target
        if d_below < d_above or (d_below == d_above and below & SEQ_MASK < above & SEQ_MASK):
            return below
        return above

    def _ordered(
        self, kind: str, bucket: list[int], uc: int, rc: int, rr: int, max_r: int
    ) -> Iterator[int]:
        """The bucket's entries with ``used_ram <= max_r``, best first, seq ascending on ties.

        Only used when the first choice is excluded or lacks an extended resource.
        """
        hi = bisect_right(bucket, max_r << SEQ_BITS | SEQ_MASK)
        if kind == "spread":
            yield from bucket[:hi]
            return
        if kind == "binpack":
            while hi > 0:
                lo = bisect_left(bucket, bucket[hi - 1] & ~SEQ_MASK, 0, hi)
                yield from bucket[lo:hi]
                hi = lo
            return
        ac = self.ac or 1
        target = (uc + rc) * (self.ar or 1)
        split = (target // ac) - rr
        right = bisect_right(bucket, split << SEQ_BITS | SEQ_MASK, 0, hi) if split >= 0 else 0
        left = right
        while left > 0 or right < hi:
            dl = target - ((bucket[left - 1] >> SEQ_BITS) + rr) * ac if left > 0 else BIG
            dr = ((bucket[right] >> SEQ_BITS) + rr) * ac - target if right < hi else BIG
            if dl == dr:  # the same score on both sides: one group, in seq order
                lo = bisect_left(bucket, bucket[left - 1] & ~SEQ_MASK, 0, left)
                end = bisect_right(bucket, bucket[right] | SEQ_MASK, right, hi)
                yield from sorted(bucket[lo:left] + bucket[right:end], key=_seq)
                left, right = lo, end
            elif dl < dr:
                lo = bisect_left(bucket, bucket[left - 1] & ~SEQ_MASK, 0, left)
                yield from bucket[lo:left]
                left = lo
            else:
                end = bisect_right(bucket, bucket[right] | SEQ_MASK, right, hi)
                yield from bucket[right:end]
                right = end

    def best(
        self,
        kind: str,
        rc: int,
        rr: int,
        rg: int,
        ext: Mapping[str, int],
        exclude: frozenset[str],
        best_score: float,
        best_seq: int,
    ) -> tuple[float, int, NodeState | None]:
        """The best feasible node of this shape if it beats ``(best_score, best_seq)``."""
        ac, ar = self.ac, self.ar
        max_c, max_r, max_g = ac - rc, ar - rr, self.ag - rg  # most a fitting node may use
        found: NodeState | None = None
        if max_c < 0 or max_r < 0 or max_g < 0:
            return best_score, best_seq, found
        keys = self.keys
        if kind == "balanced" and len(keys) * SCAN_BELOW > len(self.members):
            # Balanced visits every bucket; when buckets hold only a node or two (nodes
            # of this shape almost all carry different loads) a plain pass is cheaper.
            return self._scan(rc, rr, rg, ext, exclude, best_score, best_seq)
        end = bisect_right(keys, (max_c, BIG))
        order = range(end - 1, -1, -1) if kind == "binpack" else range(end)
        members, buckets = self.members, self.buckets
        bound_r = max_r if kind == "binpack" else 0
        ac1, ar1 = ac or 1, ar or 1
        den = ac1 * ar1
        for k in order:
            uc, ug = keys[k]
            if ug > max_g:
                continue
            bucket = buckets[(uc, ug)]
            if kind != "balanced":
                if builtin_score(kind, ac, ar, uc, bound_r, rc, rr) < best_score:
                    break  # no node of this bucket, or of any later one, can do better
                entry = self._first(kind, bucket, uc, rc, rr, max_r)
                if entry < 0:
                    continue
                score = builtin_score(kind, ac, ar, uc, entry >> SEQ_BITS, rc, rr)
            else:
                # Balanced, inlined (it cannot stop early, so every bucket is visited):
                # the best entry has (ur + rr) * ac nearest target = (uc + rc) * ar.
                target = (uc + rc) * ar1
                top = bisect_right(bucket, max_r << SEQ_BITS | SEQ_MASK)
                if top == 0:
                    continue
                split = target // ac1 - rr
                right = (
                    bisect_right(bucket, split << SEQ_BITS | SEQ_MASK, 0, top) if split >= 0 else 0
                )
                if right:
                    below = bucket[right - 1]
                    gap_below = target - ((below >> SEQ_BITS) + rr) * ac1
                    if right < top:
                        above = bucket[right]
                        gap_above = ((above >> SEQ_BITS) + rr) * ac1 - target
                    else:
                        gap_above = BIG
                else:
                    gap_below = BIG
                    above = bucket[0]
                    gap_above = ((above >> SEQ_BITS) + rr) * ac1 - target
                gap = gap_below if gap_below <= gap_above else gap_above
                score = (den - gap) / den
                if score < best_score:
                    continue
                if gap_below <= gap_above:
                    # the lowest seq among entries with that RAM use
                    entry = bucket[bisect_left(bucket, below & ~SEQ_MASK, 0, right)]
                    if gap_below == gap_above and above & SEQ_MASK < entry & SEQ_MASK:
                        entry = above
                else:
                    entry = above
            seq = entry & SEQ_MASK
            if score < best_score or (score == best_score and seq > best_seq):
                continue
            node = members[seq]
            if node.node_id not in exclude and (not ext or _fits_ext(node, ext)):
                best_score, best_seq, found = score, seq, node
                continue
            for entry in self._ordered(kind, bucket, uc, rc, rr, max_r):
                seq = entry & SEQ_MASK
                score = builtin_score(kind, ac, ar, uc, entry >> SEQ_BITS, rc, rr)
                if score < best_score or (score == best_score and seq > best_seq):
                    break
                node = members[seq]
                if node.node_id not in exclude and (not ext or _fits_ext(node, ext)):
                    best_score, best_seq, found = score, seq, node
                    break
        return best_score, best_seq, found

    def _scan(
        self,
        rc: int,
        rr: int,
        rg: int,
        ext: Mapping[str, int],
        exclude: frozenset[str],
        best_score: float,
        best_seq: int,
    ) -> tuple[float, int, NodeState | None]:
        """The balanced ``best`` by looking at every node of the shape.

        Inside one shape the score only depends on ``|(uc + rc) * ar - (ur + rr) * ac|``,
        so the pass compares that integer and divides once at the end.
        """
        max_c, max_r, max_g = self.ac - rc, self.ar - rr, self.ag - rg
        ac1, ar1 = self.ac or 1, self.ar or 1
        den = ac1 * ar1
        best_d, seq_d, found = BIG, BIG, None
        for (uc, ug, ur), node in self.filed.values():
            if uc > max_c or ur > max_r or ug > max_g:
                continue
            d = (uc + rc) * ar1 - (ur + rr) * ac1
            if d < 0:
                d = -d
            if d > best_d or (d == best_d and node.seq > seq_d):
                continue
            if node.node_id in exclude or (ext and not _fits_ext(node, ext)):
                continue
            best_d, seq_d, found = d, node.seq, node
        if found is None:
            return best_score, best_seq, None
        score = (den - best_d) / den
        if score > best_score or (score == best_score and seq_d < best_seq):
            return score, seq_d, found
        return best_score, best_seq, None


def _seq(entry: int) -> int:
    return entry & SEQ_MASK


def _fits_ext(node: NodeState, ext: Mapping[str, int]) -> bool:
    used, alloc = node.used_ext, node.alloc_ext
    return all(v <= alloc.get(k, 0) - used.get(k, 0) for k, v in ext.items())


class Index:
    """All shapes; ``best`` asks each matching shape in turn."""

    __slots__ = ("by_key", "dirty")

    def __init__(self) -> None:
        self.by_key: dict[tuple[object, ...], Shape] = {}
        self.dirty: list[NodeState] = []

    def add(self, node: NodeState) -> None:
        key = shape_key(node)
        shape = self.by_key.get(key)
        if shape is None:
            shape = self.by_key[key] = Shape(node)
        shape.add(node)

    def remove(self, node: NodeState) -> None:
        shape = node.shape
        if shape is not None:
            shape.remove(node)
            if not shape.members:
                del self.by_key[shape_key(node)]

    def refresh(self, node: NodeState) -> None:
        if node.shape is not None:
            node.shape.refresh(node)

    def flush(self) -> None:
        dirty = self.dirty
        for node in dirty:
            node.dirty = False
            if node.shape is not None:
                node.shape.refresh(node)
        dirty.clear()

    def best(
        self,
        kind: str,
        rc: int,
        rr: int,
        rg: int,
        ext: Mapping[str, int],
        selector: Selector,
        exclude: frozenset[str],
    ) -> NodeState | None:
        if self.dirty:
            self.flush()
        best_score, best_seq, found = -1.0, BIG, None
        for shape in self.by_key.values():
            if selector and not matches(shape.labels, selector):
                continue
            if ext and any(v > shape.alloc_ext.get(k, 0) for k, v in ext.items()):
                continue
            best_score, best_seq, node = shape.best(
                kind, rc, rr, rg, ext, exclude, best_score, best_seq
            )
            if node is not None:
                found = node
        return found
