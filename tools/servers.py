"""The servers of the embedded stack, one class each: Redis, Mosquitto, Kafka (KRaft),
Triton and Prometheus, run as local processes (see ``tools.stack`` for up/down/status).

Each ``Server`` (``tools.server_base``) knows its command line, its files under
``settings.stack_dir/<name>`` (``pid``, ``server.log``, data) and how to check that it is
healthy.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from argus.settings import REPO_ROOT
from tools.server_base import Server, StackError, binary, http_ok, port_open

TRITON_VENV = REPO_ROOT / ".venv-triton"


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid`` it never starts with ``-``: the StorageTool's
    argument parser would read such an id (``-t -N8I7...``) as an option and fail.

    >>> all(not kafka_cluster_id().startswith("-") for _ in range(500))
    True
    >>> len(kafka_cluster_id())
    22
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id




class Redis(Server):
    name = "redis"
    start_timeout_s = 20.0

    @property
    def port(self) -> int:
        return int(self.settings.redis_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def command(self) -> list[str]:
        return [binary("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--appendonly", "yes", "--save", "",
                "--protected-mode", "yes", "--daemonize", "no"]

    def healthy(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.settings.redis_url, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class Mosquitto(Server):
    """The MQTT broker sensors publish to (Debian's ``mosquitto``), anonymous on loopback."""

    name = "mosquitto"
    start_timeout_s = 20.0

    @property
    def ports(self) -> list[int]:
        return [self.settings.mqtt_port]

    def prepare(self) -> None:
        # Loopback only, so anonymous clients are fine. Persistence (saved every second and
        # on stop) keeps the gateway's persistent session over a broker restart, so what
        # sensors publish before the gateway reconnects is queued for it, not dropped
        # (ops/mosquitto/mosquitto.conf, `argus chaos --faults mosquitto`). Packets over
        # 1 MiB (the HTTP body limit too) are refused.
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.settings.mqtt_port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            # started as root, mosquitto would drop to user "mosquitto", which cannot write
            # the stack folder: stay the user that owns it
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "autosave_interval 1\n"
            "persistent_client_expiration 1d\n"  # sessions of clients gone for a day
            "max_packet_size 1048576\n"
            "log_dest stderr\n"  # unbuffered, unlike stdout to a file
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
        )

    def command(self) -> list[str]:
        return [binary("mosquitto"), "-c", str(self.dir / "mosquitto.conf")]

    def healthy(self) -> bool:
        return port_open(self.settings.mqtt_port) and _mqtt_connects(self.settings.mqtt_port)


def _mqtt_connects(port: int, timeout_s: float = 2.0) -> bool:
    """True if an MQTT client can connect to 127.0.0.1:port (a CONNACK with success)."""
    import paho.mqtt.client as mqtt

    answers: list[bool] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"argus-health-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda _c, _u, _f, code, _p: answers.append(not code.is_failure)
    try:
        client.connect("127.0.0.1", port, keepalive=10)
        deadline = time.monotonic() + timeout_s
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        client.disconnect()
    except OSError:
        return False
    return answers == [True]


class Kafka(Server):
    name = "kafka"
    start_timeout_s = 90.0

    @property
    def port(self) -> int:
        return int(self.settings.kafka_bootstrap.rsplit(":", 1)[1])

    @property
    def ports(self) -> list[int]:
        return [self.port, self.settings.kafka_controller_port]

    @property
    def classpath(self) -> str:
        libs = self.settings.cache_dir / "kafka" / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka jars missing in {libs}: run `make bootstrap`")
        return f"{libs}/*"

    def prepare(self) -> None:
        data = self.dir / "data"
        ctrl = self.settings.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{ctrl}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "6",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": "16777216",
            "replica.fetch.max.bytes": "16777216",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "24",
        }
        (self.dir / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items()))
        if not (data / "meta.properties").exists():
            done = subprocess.run(
                ["java", "-cp", self.classpath, "kafka.tools.StorageTool", "format",
                 "-t", kafka_cluster_id(), "-c", str(self.dir / "server.properties"),
                 "--ignore-formatted"],
                capture_output=True, text=True, cwd=self.dir,
            )
            if done.returncode != 0:
                raise StackError(f"Kafka StorageTool format failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-2000:]}")

    def command(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
                f"-Dlog4j.configuration=file:{REPO_ROOT / 'ops/kafka/log4j.properties'}",
                "-cp", self.classpath, "kafka.Kafka", str(self.dir / "server.properties")]

    def healthy(self) -> bool:
        if not port_open(self.port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                     request_timeout_ms=3000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()


class Triton(Server):
    name = "triton"
    start_timeout_s = 180.0

    @property
    def ports(self) -> list[int]:
        s = self.settings
        return [s.triton_http_port, s.triton_grpc_port, s.triton_metrics_port]

    @property
    def root(self) -> Path:
        sp = TRITON_VENV / "lib" / "python3.11" / "site-packages"
        if not (sp / "pytriton" / "tritonserver" / "bin" / "tritonserver").exists():
            raise StackError("tritonserver missing in .venv-triton: run `make bootstrap`")
        return sp

    def prepare(self) -> None:
        from tools.models import fetch

        fetch(self.settings)
        # Triton takes every folder at the repository root for a model: a __pycache__
        # there (argus_backend.py imported by an older checkout's models) stops its start
        shutil.rmtree(REPO_ROOT / "triton_models" / "__pycache__", ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = f"{self.root / 'nvidia_pytriton.libs'}:" + env.get(
            "LD_LIBRARY_PATH", "")
        env["PATH"] = f"{TRITON_VENV / 'bin'}:{env.get('PATH', '')}"
        env["ARGUS_MODEL_DIR"] = str(self.settings.models_dir)
        env.pop("PYTHONPATH", None)
        return env

    def command(self) -> list[str]:
        t = self.root / "pytriton" / "tritonserver"
        s = self.settings
        return [str(t / "bin" / "tritonserver"),
                f"--model-repository={REPO_ROOT / 'triton_models'}",
                f"--backend-directory={t / 'backends'}",
                "--http-address=127.0.0.1", f"--http-port={s.triton_http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={s.triton_grpc_port}",
                f"--metrics-port={s.triton_metrics_port}", "--allow-metrics=true",
                "--exit-on-error=true", "--log-verbose=0"]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.settings.triton_http_port}/v2/health/ready")


class Prometheus(Server):
    name = "prometheus"
    start_timeout_s = 30.0

    @property
    def ports(self) -> list[int]:
        return [self.settings.prometheus_port]

    def prepare(self) -> None:
        text = (REPO_ROOT / "ops" / "prometheus" / "prometheus.yml").read_text()
        for key in ("triton_metrics_port", "prometheus_port"):
            text = text.replace("{{" + key + "}}", str(getattr(self.settings, key)))
        text = text.replace("{{repo_root}}", str(REPO_ROOT))
        (self.dir / "prometheus.yml").write_text(text)

    def command(self) -> list[str]:
        return [binary("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.settings.prometheus_port}/-/ready")


SERVERS: dict[str, type[Server]] = {
    "redis": Redis, "mosquitto": Mosquitto, "kafka": Kafka, "triton": Triton,
    "prometheus": Prometheus,
}

