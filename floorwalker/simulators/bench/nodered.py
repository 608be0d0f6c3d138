"""Node-RED as ``bench live``'s comparison: installed from npm, run on the bench's broker.

:func:`install` puts a pinned Node-RED into a local folder with ``npm install
--prefix`` (once: a second call finds it there and returns at once). By default
the folder is ``.cache/nodered`` of the source checkout, or
``$XDG_CACHE_HOME/floorwalker/nodered`` for an installed package.

:class:`NodeRed` writes a user directory: ``settings.js`` (loopback only, no
editor, the bench's configuration in ``functionGlobalContext``),
``flows.json`` from :data:`FLOW_TEMPLATE` (the dwell-and-bell flow, on the
bench's topic prefix and broker) and ``flows_cred.json`` (the broker
credentials, mode 0600, never logged), then runs ``node red.js`` and waits
until the flow is connected to the broker. ``GET /bench/stats`` on its HTTP
port returns the flow's counters (``events`` in, ``rejected``, ``open_alerts``).

The flow does what the bench's Floorwalker rules do: a bell press pages a
staff band at once and the next band 1 s later unless a band answered; a
shopper entering a dwell zone gets an offer after 3 s there (a timer per
shopper, cleared when they move). Presence is the simplest possible (the zone
of the last sighting), which is what a flow author would write first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from floorwalker import services
from floorwalker.errors import ServiceError

VERSION: Final = "4.1.15"
"""Pinned: 4.1 is the release line that runs on Node.js 18 and 20 (5.x needs 22.9)."""
FLOW_TEMPLATE: Final = Path(__file__).with_name("nodered") / "flow.json"
BROKER_NODE: Final = "bench-broker"
INSTALL_TIMEOUT_S: Final = 600.0
START_TIMEOUT_S: Final = 60.0
_HINT: Final = "install Node.js >= 18 and npm (scripts/bootstrap.sh does)"


def default_dir() -> Path:
    """``<checkout>/.cache/nodered`` in a source checkout, else the user's cache folder."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file():
        return root / ".cache" / "nodered"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floorwalker" / "nodered"


def red_js(prefix: Path) -> Path:
    return prefix / "node_modules" / "node-red" / "red.js"


def installed_version(prefix: Path) -> str | None:
    try:
        meta = json.loads((prefix / "node_modules" / "node-red" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return str(version) if version else None


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"bench live --target nodered needs `{name}`: {_HINT}")
    return found


def install(prefix: Path | None = None, *, version: str = VERSION) -> Path:
    """Node-RED ``version`` in ``prefix`` (installed now if it is not there); its ``red.js``."""
    prefix = prefix or default_dir()
    if installed_version(prefix) == version and red_js(prefix).is_file():
        return red_js(prefix)
    prefix.mkdir(parents=True, exist_ok=True)
    argv = [
        _tool("npm"),
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--omit=dev",
        "--loglevel=error",
        f"node-red@{version}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"npm install node-red@{version} took over {exc.timeout:g} s") from None
    if done.returncode != 0 or installed_version(prefix) != version:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise ServiceError(f"npm install node-red@{version} into {prefix} failed:\n{tail}")
    return red_js(prefix)


@dataclass(frozen=True)
class FlowConfig:
    """What the flow needs to know: the broker, the prefix and the store's layout."""

    host: str
    port: int
    username: str
    password: str
    prefix: str
    client_id: str
    store: str
    beacon_zone: dict[str, str]
    bell_zone: dict[str, str]
    bands: tuple[str, ...]
    dwell_zones: tuple[str, ...]
    dwell_s: float
    escalate_s: float

    def global_context(self) -> dict[str, Any]:
        return {
            "benchCfg": {
                "prefix": self.prefix,
                "store": self.store,
                "beaconZone": self.beacon_zone,
                "bellZone": self.bell_zone,
                "bands": list(self.bands),
                "dwellZones": list(self.dwell_zones),
                "dwellS": self.dwell_s,
                "escalateS": self.escalate_s,
                "dwellMessage": "You have been looking here a while: 10% off today.",
            }
        }


def flow_json(cfg: FlowConfig) -> str:
    """The flow template on ``cfg``'s broker and prefix."""
    text = FLOW_TEMPLATE.read_text(encoding="utf-8")
    for mark, value in (
        ("@PREFIX@", cfg.prefix),
        ("@HOST@", cfg.host),
        ("@PORT@", str(cfg.port)),
        ("@CLIENT_ID@", cfg.client_id),
    ):
        text = text.replace(mark, value)
    json.loads(text)  # still JSON: the values are ids, a host and a number
    return text


def settings_js(cfg: FlowConfig, http_port: int) -> str:
    settings = {
        "uiHost": services.LOOPBACK,
        "uiPort": http_port,
        "flowFile": "flows.json",
        "credentialSecret": False,  # flows_cred.json is plain, 0600, in a private temp dir
        "httpAdminRoot": False,  # no editor, no admin API
        "httpNodeRoot": "/",
        "disableEditor": True,
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
        "functionGlobalContext": cfg.global_context(),
        "externalModules": {"autoInstall": False},
    }
    return "module.exports = " + json.dumps(settings, indent=2) + ";\n"


class NodeRed:
    """``with NodeRed(red_js, cfg, userdir) as nr: nr.stats()`` — one Node-RED process."""

    def __init__(self, red: Path, cfg: FlowConfig, userdir: Path) -> None:
        self.red = red
        self.cfg = cfg
        self.userdir = userdir
        self.port = services.free_port()
        self.log_path = userdir / "node-red.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def stats_url(self) -> str:
        return f"http://{services.LOOPBACK}:{self.port}/bench/stats"

    def _write(self) -> None:
        d = self.userdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "settings.js").write_text(settings_js(self.cfg, self.port), encoding="utf-8")
        (d / "flows.json").write_text(flow_json(self.cfg), encoding="utf-8")
        cred = d / "flows_cred.json"
        cred.touch(mode=0o600)
        cred.chmod(0o600)
        secret = {BROKER_NODE: {"user": self.cfg.username, "password": self.cfg.password}}
        cred.write_text(json.dumps(secret), encoding="utf-8")

    def start(self) -> None:
        self._write()
        argv = [_tool("node"), str(self.red), "--userDir", str(self.userdir)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.userdir,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            log = self.log_path.read_bytes()
            if b"Connected to broker" in log:
                with contextlib.suppress(OSError, ServiceError):
                    self.stats()
                    return
            if b"Connection failed to broker" in log or b"Not authorized" in log:
                break
            time.sleep(0.1)
        raise ServiceError(f"Node-RED did not start its flow:\n{self.log_tail()}")

    def stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.stats_url, timeout=timeout_s) as resp:  # loopback
                data: dict[str, Any] = json.loads(resp.read())
        except (urllib.error.URLError, ValueError, OSError) as exc:
            raise ServiceError(f"Node-RED's /bench/stats did not answer: {exc}") from None
        return data

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
