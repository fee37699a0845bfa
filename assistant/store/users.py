"""The folder store's users: ``users.json`` beside the generations, readable by its owner only, replaced atomically
under a lock of its own (adding a user never waits for an ingest)."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from ..errors import StoreError
from .base import UserRecord

__all__ = ["FolderUserTable"]

USERS = "users.json"
USERS_LOCK = "users.lock"


class FolderUserTable:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / USERS

    def get(self, name: str) -> UserRecord | None:
        return self._read().get(name)

    def list(self) -> list[UserRecord]:
        return sorted(self._read().values(), key=lambda u: u.name)

    def put(self, user: UserRecord) -> None:
        with self._locked():
            users = self._read()
            users[user.name] = user
            self._write(users)

    def remove(self, name: str) -> bool:
        with self._locked():
            users = self._read()
            found = users.pop(name, None) is not None
            if found:
                self._write(users)
            return found

    def _read(self) -> dict[str, UserRecord]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read the users in {self.path}: {e}") from None
        try:
            return {u["name"]: UserRecord(str(u["name"]), str(u["password_hash"]), bool(u.get("admin", False)),
                                          float(u.get("created", 0.0))) for u in raw["users"]}
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{self.path} is damaged ({type(e).__name__}: {e})") from None

    def _write(self, users: dict[str, UserRecord]) -> None:
        data = json.dumps({"users": [asdict(u) for u in sorted(users.values(), key=lambda u: u.name)]},
                          ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".users.", dir=self.root)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not an index folder")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / USERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
