"""Scale-out: each of N exporters probes only its own share of the targets and domains.

A target belongs to shard `jump_hash(sha256(host), N)`. Jump consistent hash (Lamping and
Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) moves only about 1/N of
the hosts when a replica is added, where a plain `hash mod N` would move almost all of them.

The key is the target's host, not host:port/module, so that every endpoint of one mail
server lands on the same exporter and `per_host_concurrency` still bounds the connections
that server sees from the whole fleet.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ..config import Config

_MASK_64 = (1 << 64) - 1


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in [0, buckets) of a 64-bit `key` (the paper's reference algorithm)."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    bucket, next_bucket = -1, 0
    while next_bucket < buckets:
        bucket = next_bucket
        key = (key * 2862933555777941757 + 1) & _MASK_64
        next_bucket = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_of(name: str, count: int) -> int:
    """The shard of a host or domain name: jump_hash of the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(name.encode()).digest()
    return jump_hash(int.from_bytes(digest[:8], "big"), count)


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be from 0 to {self.count - 1} and count at least 1; "
                             f"got index {self.index}, count {self.count}")

    def owns(self, name: str) -> bool:
        return self.count == 1 or shard_of(name, self.count) == self.index

    def select(self, config: Config) -> Config:
        """`config` with only this shard's targets (by host) and domains (by name)."""
        if self.count == 1:
            return config
        return dataclasses.replace(
            config,
            targets=tuple(target for target in config.targets if self.owns(target.host)),
            domains=tuple(domain for domain in config.domains if self.owns(domain.name)),
        )
