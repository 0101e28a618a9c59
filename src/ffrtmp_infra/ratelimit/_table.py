"""The in-memory bucket store: key hash -> theoretical arrival time in flat arrays."""

from __future__ import annotations

from array import array

__all__ = ["BucketTable", "key_hash"]

_MIN_CAPACITY = 1024


def key_hash(key: str) -> int:
    """The slot key for ``key``: its str hash (SipHash, randomised per process), never 0."""
    return hash(key) or 1


class BucketTable:
    """An open-addressing hash table in two arrays: 16 bytes a slot, no object per key.

    A dict of key -> float costs ~100 bytes a key (an int or str key object, a float
    object and the dict's entry and index); two flat arrays with linear probing hold
    the same state in 16 bytes a slot, kept at most half full. Entries are never
    deleted one by one (that would break probe chains): a refilled or reset key just
    holds an old time, which means "full bucket", and :meth:`rebuild` drops such
    entries when the table must grow, so the cost is amortised O(1) per new key.
    """

    __slots__ = ("grow_at", "keys", "mask", "max_keys", "tats", "used")

    def __init__(self, max_keys: int, capacity: int = _MIN_CAPACITY) -> None:
        self.max_keys = max_keys
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.keys = array("q", bytes(8 * capacity))  # 0 marks an empty slot
        self.tats = array("d", bytes(8 * capacity))
        self.mask = capacity - 1
        self.used = 0
        self.grow_at = min(capacity // 2, self.max_keys)

    def find(self, slot_key: int) -> int:
        """The index holding ``slot_key``, or the empty index where it would go."""
        keys = self.keys
        mask = self.mask
        i = slot_key & mask
        found = keys[i]
        while found != slot_key and found != 0:
            i = (i + 1) & mask
            found = keys[i]
        return i

    def get(self, slot_key: int) -> float | None:
        i = self.find(slot_key)
        return self.tats[i] if self.keys[i] else None

    def add(self, slot_key: int, tat: float, now: float) -> None:
        """Insert a key known to be absent (rebuilding first if the table is full)."""
        if self.used >= self.grow_at:
            self.rebuild(now)
        i = self.find(slot_key)
        self.keys[i] = slot_key
        self.tats[i] = tat
        self.used += 1

    def rebuild(self, now: float) -> None:
        """Keep only keys whose bucket is not full; if more than 3/4 of ``max_keys``
        remain, forget those closest to full (the least debt lost) down to 3/4, so a
        flood of live keys costs one rebuild per max_keys/4 new keys; then resize to
        3-6x the live keys."""
        live = [(t, k) for k, t in zip(self.keys, self.tats, strict=True) if k and t > now]
        keep = self.max_keys * 3 // 4
        if len(live) > keep:
            # By time, then by the hash's high bits: ties must not be broken by slot
            # position, or the survivors would crowd one end of the next table.
            live.sort()
            live = live[len(live) - keep :]
        capacity = _MIN_CAPACITY
        while capacity < 3 * len(live):
            capacity *= 2
        self._allocate(capacity)
        keys, tats, mask = self.keys, self.tats, self.mask
        for tat, slot_key in live:
            i = slot_key & mask
            while keys[i]:
                i = (i + 1) & mask
            keys[i] = slot_key
            tats[i] = tat
        self.used = len(live)

    def clear(self) -> None:
        self._allocate(_MIN_CAPACITY)

    def snapshot(self) -> dict[int, float]:
        """All entries (for tests and debugging)."""
        return {k: t for k, t in zip(self.keys, self.tats, strict=True) if k}
