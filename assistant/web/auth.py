"""Sign-in for the web app.

* ``Passwords``: argon2id hashes (salted, slow, parameters from the ``auth`` settings); verifying takes the same
  time whether or not the name exists, and a hash made with other parameters is replaced at the next sign-in.
* ``SignIn``: checks a name and password against the collection's users (``store.users()``), refusing for a
  while after ``auth_max_failures_per_user`` failures for one name or ``auth_max_failures_per_address`` from one
  address within ``auth_failure_window_s``; every attempt goes to the audit log.
* ``sign_in_policy``: whether ``serve`` on a host must ask for sign-in, may run without, or must refuse to start.
"""
from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
import socket
import time
from dataclasses import replace
from typing import Any

from ..errors import AccessError, SettingsError
from ..settings import AuthSettings
from ..store.base import UserRecord, UserTable
from .audit import AuditLog
from .limits import WindowCounter

__all__ = ["Passwords", "SignIn", "check_password", "check_user_name", "client_address", "is_loopback",
           "sign_in_policy"]

log = logging.getLogger(__name__)

# the address of the client of the request being handled (set by the web app's middleware)
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("assistant_client_address",
                                                                             default=None)

_NAME = re.compile(r"[\w][\w.@+-]{0,63}")


def check_user_name(name: str) -> str:
    """A user name: 1-64 letters, digits and ``_ . @ + -``, starting with a letter, digit or ``_``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError("a user name is 1-64 letters, digits or _ . @ + - (starting with a letter or digit)")
    return name


def check_password(password: str, settings: AuthSettings) -> str:
    if not isinstance(password, str) or len(password) < settings.min_password_chars:
        raise SettingsError(f"the password must have at least {settings.min_password_chars} characters")
    if len(password) > 1024:
        raise SettingsError("the password is too long (over 1024 characters)")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError("the password is not valid text") from None
    return password


class Passwords:
    """argon2id hashing with the ``auth`` settings' parameters."""

    def __init__(self, settings: AuthSettings | None = None) -> None:
        try:
            from argon2 import PasswordHasher, Type
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise SettingsError(f"sign-in needs argon2-cffi ({e}); install it with `pip install argon2-cffi`") from None
        s = settings or AuthSettings()
        self._hasher = PasswordHasher(time_cost=s.hash_time_cost, memory_cost=s.hash_memory_kib,
                                      parallelism=s.hash_parallelism, type=Type.ID)
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; with no hash (no such user) a dummy hash is checked, so
        the answer takes as long either way."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        if password_hash is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash("not a password of anyone")
            password_hash, real = self._dummy, False
        else:
            real = True
        try:
            return self._hasher.verify(password_hash, password) and real
        except (VerifyMismatchError, VerificationError):
            return False
        except (InvalidHashError, ValueError):
            log.error("a stored password hash is not a valid argon2 hash")
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except Exception:  # noqa: BLE001 - an unreadable hash: make a new one
            return True


class SignIn:
    """Checks sign-ins against ``users`` and tells the role of a signed-in name."""

    def __init__(self, users: UserTable, settings: AuthSettings | None = None, audit: AuditLog | None = None,
                 *, clock: Any = time.monotonic) -> None:
        self.users = users
        self.settings = settings or AuthSettings()
        self.audit = audit or AuditLog(None)
        self.passwords = Passwords(self.settings)
        s = self.settings
        self._by_user = WindowCounter(s.max_failures_per_user, s.failure_window_s, clock=clock)
        self._by_address = WindowCounter(s.max_failures_per_address, s.failure_window_s, clock=clock)

    def check(self, name: str, password: str, address: str | None = None) -> bool:
        """Whether ``name`` may sign in with ``password``. Raises ``AccessError`` (nothing is checked) while the
        name or the address has failed too often recently."""
        name = str(name or "").strip()[:200]
        wait = max(self._by_user.wait_s(name), self._by_address.wait_s(address or ""))
        if wait > 0:
            self.audit.write("sign-in", "refused", user=name, address=address, detail="too many failed sign-ins")
            minutes = max(1, round(wait / 60))
            raise AccessError(f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}")
        try:
            user = self.users.get(name) if _NAME.fullmatch(name) else None
        except Exception as e:  # noqa: BLE001 - an unreadable users file must not let anyone in
            log.error("cannot read the users: %s", e)
            user = None
        ok = self.passwords.verify(user.password_hash if user else None, str(password or ""))
        if not ok or user is None:
            self._by_user.add(name)
            self._by_address.add(address or "")
            self.audit.write("sign-in", "failed", user=name, address=address)
            return False
        if self.passwords.needs_rehash(user.password_hash):
            try:
                self.users.put(replace(user, password_hash=self.passwords.hash(password)))
            except Exception as e:  # noqa: BLE001 - the sign-in itself succeeded
                log.error("cannot store the new hash of %s: %s", name, e)
        self._by_user.clear(name)
        self.audit.write("sign-in", "ok", user=name, address=address)
        return True

    def user(self, name: str | None) -> UserRecord | None:
        """The user signed in as ``name``, if there still is one."""
        if not name:
            return None
        try:
            return self.users.get(name)
        except Exception as e:  # noqa: BLE001
            log.error("cannot read the users: %s", e)
            return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is only reachable from this machine."""
    host = (host or "").strip().strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def sign_in_policy(host: str, n_users: int, no_auth: bool) -> tuple[bool, str | None]:
    """``(sign-in required, warning to show)`` for serving on ``host`` with ``n_users`` users; ``AccessError``
    when the server must not start."""
    if n_users:
        warning = ("--no-auth is ignored: this collection has users, so signing in is required"
                   if no_auth else None)
        return True, warning
    if is_loopback(host):
        return False, None
    if not no_auth:
        raise AccessError(
            f"refusing to serve on {host} without sign-in: add a user first (`assistant users add NAME --admin`), "
            "or pass --no-auth to let anyone who can reach this address upload, delete and ask")
    return False, (f"serving on {host} without sign-in (--no-auth): anyone who can reach it can upload and delete "
                   "documents and ask questions")
