"""Worker hosts simulated in network namespaces, and a PostgreSQL reachable only over them.

Each host is a network namespace joined to this one by a veth pair: the host
side (in this namespace) gets ``10.231.N.1/30``, the namespace side
``10.231.N.2/30``. A private PostgreSQL listens on the host-side addresses
only, so a worker started with ``ip netns exec`` reaches the database over its
own link and nothing else. ``cut()`` sets the host-side end down: the
namespace's packets are then dropped silently (no RST, no ICMP), so the
worker's connections hang as in a real partition; ``heal()`` brings it back.

Everything is created under names unique to this run (``djh`` + random hex)
on /30 subnets not in use on this machine, and removed again by ``remove()``,
so neither a crashed run's leftovers nor a parallel run collide with this one.
Needs root, iproute2 and the kernel's netns and veth support; used by
tests/e2e/test_many_hosts.py and bench/many_hosts.py (plain stdlib + psycopg,
no pytest).
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SUBNET = "10.231"  # 10.231.N.0/30 per host, N picked among the unused


class NetnsUnavailable(RuntimeError):
    """Network namespaces or veth pairs cannot be set up here (the message says why)."""


def ip(*args: str, timeout: float = 10) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def used_octets() -> set[int]:
    """Third octets of 10.231.x.y addresses already on this machine's interfaces."""
    listing = ip("-4", "-o", "addr", "show")
    return {int(n) for n in re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", listing)}


@dataclass(frozen=True)
class Host:
    netns: str
    host_if: str  # the veth end in this namespace
    ns_if: str  # the veth end inside the host's namespace
    server_ip: str  # this namespace's address on the link: where the host reaches PostgreSQL
    ns_ip: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class Hosts:
    """``count`` namespaces with a veth pair each; ``create()`` then always ``remove()``."""

    count: int
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: list[Host] = field(default_factory=list)

    def create(self) -> list[Host]:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2's `ip` is not installed (apt-get install iproute2)")
        used = used_octets()
        free = [n for n in range(1, 255) if n not in used]
        random.shuffle(free)
        if len(free) < self.count:
            raise NetnsUnavailable(f"no free {SUBNET}.N.0/30 subnets left")
        for i, octet in enumerate(free[: self.count]):
            host = Host(
                netns=f"djh{self.tag}{i}",
                host_if=f"vh{self.tag}{i}",
                ns_if=f"vn{self.tag}{i}",
                server_ip=f"{SUBNET}.{octet}.1",
                ns_ip=f"{SUBNET}.{octet}.2",
            )
            self.hosts.append(host)  # before creating: remove() undoes a half-made host too
            ip("netns", "add", host.netns)
            ip("link", "add", host.host_if, "type", "veth", "peer", "name", host.ns_if)
            ip("link", "set", host.ns_if, "netns", host.netns)
            ip("addr", "add", f"{host.server_ip}/30", "dev", host.host_if)
            ip("link", "set", host.host_if, "up")
            ip("-n", host.netns, "addr", "add", f"{host.ns_ip}/30", "dev", host.ns_if)
            ip("-n", host.netns, "link", "set", host.ns_if, "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
        return self.hosts

    def remove(self) -> list[str]:
        """Delete every link and namespace of this run; returns what could not be removed."""
        problems = []
        for host in self.hosts:
            # Deleting one end of a veth pair deletes both; the namespace goes last.
            for args in (("link", "del", host.host_if), ("netns", "del", host.netns)):
                try:
                    ip(*args)
                except (NetnsUnavailable, subprocess.TimeoutExpired) as exc:
                    if "Cannot find device" not in str(exc):
                        problems.append(str(exc))
        self.hosts = []
        return problems

    def leftovers(self) -> list[str]:
        """Names of this run still present (empty after ``remove()``)."""
        present = ip("netns", "list") + ip("-o", "link", "show")
        return sorted(set(re.findall(rf"\b(?:djh|vh|vn){self.tag}\d\b", present)))

    @staticmethod
    def cut(host: Host) -> None:
        """Partition ``host``: its link goes down and its packets are dropped silently."""
        ip("link", "set", host.host_if, "down")

    @staticmethod
    def heal(host: Host) -> None:
        ip("link", "set", host.host_if, "up")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_bin() -> Path | None:
    """Debian's versioned server binaries (newest first), else initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = candidates[0] if candidates else shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PrivateServer:
    """A throwaway PostgreSQL listening only on ``listen`` (the hosts' server_ip)."""

    listen: list[str]
    options: dict[str, str] = field(default_factory=dict)  # extra -c settings
    port: int = field(default_factory=free_port)
    datadir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="django-jobs-hosts-"))
    )

    def __post_init__(self) -> None:
        binaries = server_bin()
        if binaries is None:
            raise NetnsUnavailable("PostgreSQL server binaries (initdb) not found")
        self.bin = binaries
        # PostgreSQL refuses to run as root: as the postgres OS user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    def url(self, address: str, database: str) -> str:
        return f"postgres://postgres@{address}:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        done = subprocess.run(
            list(argv), user=self.user, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        if self.user is not None:
            owner = pwd.getpwnam(self.user)
            os.chown(self.datadir, owner.pw_uid, owner.pw_gid)
        initdb = str(self.bin / "initdb")
        self._run(initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-N")
        # The hosts connect from their namespace addresses: trusted, like local ones.
        with (self.datadir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0.0/16 trust\n")
        settings = {"listen_addresses": ",".join(self.listen), "fsync": "off", **self.options}
        options = f"-p {self.port} -k {self.datadir} " + " ".join(
            f"-c {name}={value}" for name, value in settings.items()
        )
        pg_ctl = str(self.bin / "pg_ctl")
        log = str(self.datadir / "server.log")
        self._run(pg_ctl, "-D", str(self.datadir), "start", "-w", "-l", log, "-o", options)

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(self.listen[-1], "postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # a name of ours, not user input

    def stop(self) -> None:
        """Stop (immediately) and delete the data directory; safe to call twice."""
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.datadir), "stop", "-m", "immediate"],
                user=self.user,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.datadir, ignore_errors=True)

    def postmaster(self) -> int:
        """The server's main process id."""
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def log(self) -> str:
        path = self.datadir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_reachable(address: str, port: int, timeout: float = 10) -> None:
    """Until ``address:port`` accepts TCP connections (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
