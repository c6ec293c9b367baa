"""``hearby up``'s pure parts: ports, the parts' environment, port checks, flags."""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from hearby import up
from hearby.up import (
    Ports,
    Stack,
    StackConfig,
    StackError,
    check_ports_free,
    stopped_on_signals,
)

PORT_VARIABLES = (
    "HEARBY_UP_REDIS_PORT",
    "HEARBY_CONTROL_PORT",
    "HEARBY_VECTORSTORE_PORT",
    "HEARBY_CATALOG_PORT",
    "HEARBY_RANKER_PORT",
    "HEARBY_FEEDBACK_PORT",
    "HEARBY_EMBEDDER_PORT",
    "HEARBY_EMBEDDER_METRICS_PORT",
    "HEARBY_DASHBOARD_PORT",
    "HEARBY_REDIS_URL",
    "HEARBY_CATALOG_REDIS_URL",
    "HEARBY_EMBEDDER_MODEL_REPOSITORIES",
    "HEARBY_MODEL_REPOSITORIES",
    "HEARBY_EMBEDDER_MODEL_REPOSITORY",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for key in PORT_VARIABLES:
        monkeypatch.delenv(key, raising=False)


def _args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_ports_default_to_the_services_own_ports_and_a_redis_beside_the_system_one():
    assert Ports.configured() == Ports(
        redis=6390,
        control=50051,
        vectorstore=50052,
        ranker=50053,
        catalog=50054,
        embedder=8001,
        embedder_metrics=8002,
        feedback=50055,
        dashboard=8501,
    )


def test_a_base_port_moves_every_part_but_a_service_variable_still_wins(monkeypatch):
    monkeypatch.setenv("HEARBY_CATALOG_PORT", "7000")
    monkeypatch.setenv("HEARBY_DASHBOARD_PORT", "8600")
    assert Ports.configured(base=51000) == Ports(
        redis=51000,
        control=51001,
        vectorstore=51002,
        ranker=51003,
        catalog=7000,
        embedder=51005,
        embedder_metrics=51006,
        feedback=51007,
        dashboard=8600,
    )
    monkeypatch.delenv("HEARBY_DASHBOARD_PORT")
    assert Ports.configured(base=51000).dashboard == 51008


def test_every_part_gets_the_addresses_of_the_others_and_its_data_under_the_data_dir(tmp_path):
    ports = Ports(6390, 50051, 50052, 50053, 50054, 8001, 8002, 50055, 8501)
    config = StackConfig(
        tmp_path / "stack",
        (tmp_path / "models", tmp_path / "published"),
        ports,
        env={"HEARBY_INGEST_MAX_ATTEMPTS": "3"},
    )
    env = Stack(config).env()
    assert env["HEARBY_REDIS_URL"] == "redis://127.0.0.1:6390/0"
    assert env["HEARBY_CONTROL_ADDRESS"] == "127.0.0.1:50051"
    assert env["HEARBY_VECTORSTORE_ADDRESS"] == "127.0.0.1:50052"
    assert env["HEARBY_EMBEDDER_URL"] == "127.0.0.1:8001"
    assert env["HEARBY_CATALOG_PORT"] == "50054"
    assert (env["HEARBY_RANKER_PORT"], env["HEARBY_FEEDBACK_PORT"]) == ("50053", "50055")
    repositories = f"{tmp_path / 'models'}:{tmp_path / 'published'}"
    assert env["HEARBY_EMBEDDER_MODEL_REPOSITORIES"] == repositories
    assert env["HEARBY_CONTROL_MODEL_REPOSITORIES"] == repositories
    assert env["HEARBY_VECTORSTORE_MILVUS_URI"] == str(tmp_path / "stack/milvus/hearby.db")
    assert env["HEARBY_CATALOG_AUDIO_STORE"] == str(tmp_path / "stack/audio")
    assert env["HEARBY_INGEST_MAX_ATTEMPTS"] == "3"
    # The dashboard reads every service's shared address variable.
    assert (
        env["HEARBY_RANKER_ADDRESS"],
        env["HEARBY_CATALOG_ADDRESS"],
        env["HEARBY_FEEDBACK_ADDRESS"],
    ) == ("127.0.0.1:50053", "127.0.0.1:50054", "127.0.0.1:50055")


def test_the_dashboard_finds_every_service_through_the_stacks_environment(tmp_path):
    from dashboard.settings import DashboardSettings

    ports = Ports(6390, 50051, 50052, 50053, 50054, 8001, 8002, 50055, 8501)
    stack = Stack(StackConfig(tmp_path / "stack", (tmp_path / "models",), ports, host="0.0.0.0"))
    env = {**stack.env(), "HEARBY_DASHBOARD_HOST": "0.0.0.0", "HEARBY_DASHBOARD_PORT": "8501"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = DashboardSettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8501)
    assert settings.control_address == "0.0.0.0:50051"
    assert settings.vectorstore_address == "0.0.0.0:50052"
    assert settings.ranker_address == "0.0.0.0:50053"
    assert settings.catalog_address == "0.0.0.0:50054"
    assert settings.feedback_address == "0.0.0.0:50055"
    # A browser cannot open 0.0.0.0; the printed URL is the loopback one.
    assert stack.dashboard_url == "http://127.0.0.1:8501/"


def test_an_existing_redis_is_used_when_hearby_redis_url_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://elsewhere:6379/3")
    config = up.config_from_args(_args(data=tmp_path))
    assert config.redis_url == "redis://elsewhere:6379/3"
    assert Stack(config).env()["HEARBY_REDIS_URL"] == "redis://elsewhere:6379/3"


def test_flags_set_workers_default_and_repositories(tmp_path):
    config = up.config_from_args(
        _args(data=tmp_path, workers=4, default="ts-ps", repository=[tmp_path / "r"])
    )
    assert (config.workers, config.default_version, config.redis_url) == (4, "ts-ps", "")
    assert config.repositories == (tmp_path / "r",)
    assert up.config_from_args(_args()).repositories == (
        Path("models"),
        Path("var/model_repository"),
    )


def test_a_taken_port_is_named_with_its_part_and_how_to_move():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} \(control\).*--base-port"):
            check_ports_free("127.0.0.1", {"control": port})


def test_a_health_url_counts_as_healthy_only_when_it_answers_200_ok():
    replies = {"/ok": (200, b"ok"), "/busy": (503, b"ok"), "/other": (200, b"starting")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = replies[self.path]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert up.http_healthy(f"{base}/ok")
        assert not up.http_healthy(f"{base}/busy")
        assert not up.http_healthy(f"{base}/other")
    finally:
        server.shutdown()
        server.server_close()
    # Nothing listens there any more.
    assert not up.http_healthy(f"{base}/ok")


def test_a_missing_program_stops_the_start_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    config = StackConfig(tmp_path / "stack", (tmp_path / "models",), Ports.free())
    with pytest.raises(StackError, match="redis-server not found"):
        Stack(config).start()


def test_stopped_on_signals_stops_once_on_sigterm_and_restores_the_handlers():
    class Stopped(Exception):
        pass

    def handler(signum, frame):
        raise Stopped(signum)

    stops = []
    seen_during_stop = []

    def stop():
        seen_during_stop.append(signal.getsignal(signal.SIGINT))
        stops.append(True)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped), stopped_on_signals(handler, stop):
        assert signal.getsignal(signal.SIGTERM) is handler
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises long before
    assert stops == [True]
    assert seen_during_stop == [signal.SIG_IGN]  # a second Ctrl-C cannot cut stop() short
    assert signal.getsignal(signal.SIGTERM) is before


class _Process:
    """A part's process as the supervisor sees it: dead or alive, with a log tail."""

    def __init__(self) -> None:
        self.proc = None
        self.dead = False

    def alive(self) -> bool:
        return not self.dead

    def log_tail(self) -> str:
        return "last words"


class _Stack:
    """The two calls the supervisor makes: dead_parts() and restart(name)."""

    def __init__(self, names: list[str]) -> None:
        self.parts = {name: up.Part(name, _Process(), "", Path(f"{name}.log")) for name in names}
        self.restarted: list[str] = []

    def dead_parts(self) -> list[up.Part]:
        return [p for p in self.parts.values() if not p.process.alive()]

    def restart(self, name: str) -> up.Part:
        if name == "mystery":
            raise ValueError(f"{name} is not a part that can be restarted")
        self.restarted.append(name)
        self.parts[name] = up.Part(name, _Process(), "", Path(f"{name}.log"))
        return self.parts[name]


def test_the_supervisor_restarts_a_dead_service_until_its_budget_is_spent():
    now = [0.0]
    stack = _Stack(["ranker", "ingest-1"])
    supervisor = up.Supervisor(stack, max_restarts=2, window_seconds=60, clock=lambda: now[0])
    assert supervisor.check() == []
    for _ in range(2):
        stack.parts["ranker"].process.dead = True
        now[0] += 10
        assert supervisor.check() == ["ranker"]
    stack.parts["ranker"].process.dead = True
    with pytest.raises(StackError, match="ranker died 3 times within 60 s"):
        supervisor.check()
    # Outside the window the old restarts no longer count.
    now[0] += 61
    assert supervisor.check() == ["ranker"]
    assert stack.restarted == ["ranker"] * 3


def test_the_supervisor_gives_up_on_a_part_it_cannot_restart():
    stack = _Stack(["mystery", "ranker"])
    stack.parts["mystery"].process.dead = True
    with pytest.raises(StackError, match=r"mystery exited .*not a part that can be restarted"):
        up.Supervisor(stack).check()


def test_the_supervisor_restarts_redis_and_the_embedder_too():
    stack = _Stack(["redis", "embedder", "ranker"])
    stack.parts["redis"].process.dead = True
    stack.parts["embedder"].process.dead = True
    assert sorted(up.Supervisor(stack).check()) == ["embedder", "redis"]


def test_stack_keys_are_made_once_and_replaced_when_revoked(tmp_path):
    from dashboard.users import read_users, verify
    from hearby.up import StackKeys
    from services.common.auth import KeyStore, Scope, revoke_key, split_key

    keys = StackKeys(tmp_path / "keys")
    keys.ensure()
    store = KeyStore(keys.file)
    service = store.authenticate(keys.service_file.read_text().strip())
    admin = store.authenticate(keys.admin)
    assert service.rate_per_second == 0 and admin.rate_per_second is None
    assert service.allows(Scope.ADMIN) and admin.allows(Scope.ADMIN)
    password = keys.dashboard_password_file.read_text().strip()
    assert verify(read_users(keys.dashboard_users), "admin", password) is not None

    embedder_key = keys.embedder_file.read_text()
    assert len(embedder_key.strip()) >= 43
    first_admin = keys.admin
    keys.ensure()
    assert keys.admin == first_admin and keys.embedder_file.read_text() == embedder_key
    assert keys.dashboard_password_file.read_text().strip() == password

    revoke_key(keys.file, split_key(first_admin)[0])
    keys.ensure()
    assert keys.admin != first_admin
    assert KeyStore(keys.file).authenticate(keys.admin).name == "stack-admin"


def test_stack_env_turns_keys_on_only_with_auth(tmp_path):
    ports = Ports.free()
    on = Stack(StackConfig(tmp_path / "a", (tmp_path / "models",), ports, auth=True)).env()
    off = Stack(StackConfig(tmp_path / "b", (tmp_path / "models",), ports)).env()
    assert on["HEARBY_AUTH"] == "keys" and on["HEARBY_AUTH_KEYS_FILE"].endswith("keys.json")
    assert on["HEARBY_API_KEY_FILE"].endswith("service.key")
    assert on["HEARBY_DASHBOARD_USERS_FILE"].endswith("dashboard-users.json")
    assert on["HEARBY_EMBEDDER_KEY_FILE"].endswith("embedder.key")
    assert off["HEARBY_AUTH"] == "off" and "HEARBY_AUTH_KEYS_FILE" not in off
    assert "HEARBY_EMBEDDER_KEY_FILE" not in off
