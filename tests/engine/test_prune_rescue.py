"""Freeing a full disk without writing: only leftovers, and only when nobody else holds a lock."""

from __future__ import annotations

import hashlib
import os

from amber.engine.prune_rescue import free_leftover_packs
from amber.repository import Repository
from amber.storage import FileType, Handle


def _leftover(repo: Repository) -> str:
    data = os.urandom(4096)
    name = hashlib.sha256(data).hexdigest()
    repo.backend.save(Handle(FileType.PACK, name), data)
    return name


def _packs(repo: Repository) -> set[str]:
    return {fi.name for fi in repo.backend.list(FileType.PACK)}


def test_leftover_packs_go_indexed_ones_stay(repo: Repository) -> None:
    before = _packs(repo)
    name = _leftover(repo)
    freed = free_leftover_packs(repo)
    assert (freed.packs, freed.bytes, freed.why_not) == (1, 4096, "")
    assert _packs(repo) == before and name not in _packs(repo)
    assert free_leftover_packs(repo).why_not == "no pack is left over from a failed backup"


def test_a_live_lock_protects_unindexed_packs(repo: Repository) -> None:
    name = _leftover(repo)
    with repo.lock():  # a backup in progress: its packs are not indexed yet
        freed = free_leftover_packs(repo)
    assert freed.packs == 0 and "lock(s) held" in freed.why_not
    assert name in _packs(repo)
