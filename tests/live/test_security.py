"""SASL/SCRAM over TLS, live: a private broker of this test's own (tools/kafka/kafka-local with KAFKA_STATE_DIR,
KAFKA_EXTRA_CONFIG and KAFKA_FORMAT_ARGS) gets a SASL_SSL listener whose certificate the test makes (keytool, which
comes with the Java the broker runs on: a CA, and a key and certificate for 127.0.0.1 signed by it, in a PKCS12
keystore) and a SCRAM user, and an SSL listener (TLS alone). The worker, `dunning publish` and `dunning tail` are
given only one of those listeners: with the right credentials (SCRAM-SHA-256, SCRAM-SHA-512, or TLS alone) they
process events and read the notices; with a wrong password, an unknown user or a CA that did not sign the
broker's certificate the worker stops at once with exit 2 and one line saying which.

The broker keeps a PLAINTEXT listener too, which only the test's own kcat and probe use.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from livekit import DUNNING, REPO, Namespace, Worker, eventually, free_port, get, items_from_lines, simulate

from schemas.deadletter import DeadLetterReason

pytestmark = pytest.mark.broker
KAFKA_LOCAL = REPO / "tools" / "kafka" / "kafka-local"
USER, PASSWORD = "dunning-worker", "c0rrect-h0rse"
STORE_PASSWORD = "keystore-secret"
KEYTOOL = shutil.which("keytool") or str(Path(os.environ.get("JAVA_HOME", "/nonexistent")) / "bin" / "keytool")

INVOICE = (b'{"event_id":"sec-1","type":"invoice.issued","account_id":"SEC1",'
           b'"occurred_at":"2026-11-05T10:00:00+08:00","invoice_id":"SEC1-I1","amount":"300.00","currency":"CNY",'
           b'"due_date":"2026-11-07"}')
FAILED = (b'{"event_id":"sec-2","type":"payment.failed","account_id":"SEC1",'
          b'"occurred_at":"2026-11-05T11:00:00+08:00","payment_id":"SEC1-P1","amount":"300.00","currency":"CNY",'
          b'"invoice_id":"SEC1-I1","reason":"invalid_payment_method"}')


@dataclass
class SecureBroker:
    plaintext: str  # for the test's own tools
    sasl_ssl: str   # for the worker and the CLI
    ssl: str        # TLS without SASL
    cafile: Path
    other_cafile: Path  # a CA that signed nothing the broker has


def keytool(folder: Path, *args: str) -> None:
    proc = subprocess.run([KEYTOOL, *args], cwd=folder, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"keytool {args[0]} failed:\n{proc.stdout}{proc.stderr}"


def make_ca(folder: Path, name: str) -> Path:
    """A CA's key pair in name.p12 and its certificate, PEM, in name.pem."""
    keytool(folder, "-genkeypair", "-alias", name, "-keyalg", "RSA", "-keysize", "2048", "-dname", f"CN={name}",
            "-ext", "bc:c", "-validity", "2", "-keystore", f"{name}.p12", "-storetype", "PKCS12",
            "-storepass", STORE_PASSWORD)
    keytool(folder, "-exportcert", "-alias", name, "-rfc", "-keystore", f"{name}.p12", "-storepass", STORE_PASSWORD,
            "-file", f"{name}.pem")
    return folder / f"{name}.pem"


def make_broker_keystore(folder: Path) -> Path:
    """broker.p12: a key for 127.0.0.1 and its certificate, signed by the CA "test-ca", with the CA's certificate."""
    store = ["-keystore", "broker.p12", "-storepass", STORE_PASSWORD]
    keytool(folder, "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=127.0.0.1",
            "-validity", "2", "-storetype", "PKCS12", *store)
    keytool(folder, "-certreq", "-alias", "broker", "-file", "broker.csr", *store)
    keytool(folder, "-gencert", "-alias", "test-ca", "-keystore", "test-ca.p12", "-storepass", STORE_PASSWORD,
            "-infile", "broker.csr", "-outfile", "broker.pem", "-ext", "san=ip:127.0.0.1", "-ext", "eku=serverAuth",
            "-rfc", "-validity", "2")
    keytool(folder, "-importcert", "-alias", "test-ca", "-file", "test-ca.pem", "-noprompt", *store)
    keytool(folder, "-importcert", "-alias", "broker", "-file", "broker.pem", *store)
    return folder / "broker.p12"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("secure-broker")
    cafile, other_cafile = make_ca(root, "test-ca"), make_ca(root, "other-ca")
    keystore = make_broker_keystore(root)
    plain, controller, secure, tls = free_port(), free_port(), free_port(), free_port()
    extra = root / "sasl-ssl.properties"
    extra.write_text("\n".join([
        f"listeners=PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
        f"SASL_SSL://127.0.0.1:{secure},SSL://127.0.0.1:{tls}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure},SSL://127.0.0.1:{tls}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
        *(f"listener.name.sasl_ssl.{m}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
          "required;" for m in ("scram-sha-256", "scram-sha-512")),
        "ssl.keystore.type=PKCS12", f"ssl.keystore.location={keystore}",
        f"ssl.keystore.password={STORE_PASSWORD}", f"ssl.key.password={STORE_PASSWORD}",
    ]) + "\n")
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(KAFKA_STATE_DIR=str(root / "kafka"), KAFKA_PORT=str(plain), KAFKA_CONTROLLER_PORT=str(controller),
               KAFKA_EXTRA_CONFIG=str(extra), KAFKA_HEAP_OPTS="-Xms128m -Xmx384m",
               KAFKA_FORMAT_ARGS=" ".join(f"--add-scram {m}=[name={USER},password={PASSWORD}]"
                                          for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")))

    def kafka_local(command: str) -> None:
        proc = subprocess.run([str(KAFKA_LOCAL), command], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"kafka-local {command} (the private SASL_SSL broker) failed:\n{proc.stderr}"

    kafka_local("start")
    try:
        yield SecureBroker(f"127.0.0.1:{plain}", f"127.0.0.1:{secure}", f"127.0.0.1:{tls}", cafile, other_cafile)
    finally:
        kafka_local("stop")


@dataclass
class SecureNamespace(Namespace):
    """A namespace on the private broker whose workers and CLI get only its SASL_SSL listener."""

    secure: dict[str, str] = field(default_factory=dict)

    def env(self, state_dir: Path, web_port: int) -> dict[str, str]:
        return {**super().env(state_dir, web_port), **self.secure}


def credentials(broker: SecureBroker, mechanism: str | None = "SCRAM-SHA-512", user: str = USER,
                password: str = PASSWORD, cafile: Path | None = None) -> dict[str, str]:
    """The worker's settings for the SASL_SSL listener, or with no mechanism the SSL one."""
    tls = {"DUNNING_SSL_CAFILE": str(cafile or broker.cafile)}
    if mechanism is None:
        return {"KAFKA_BOOTSTRAP_SERVERS": broker.ssl, "DUNNING_SECURITY_PROTOCOL": "SSL", **tls}
    return {"KAFKA_BOOTSTRAP_SERVERS": broker.sasl_ssl, "DUNNING_SECURITY_PROTOCOL": "SASL_SSL",
            "DUNNING_SASL_MECHANISM": mechanism, "DUNNING_SASL_USERNAME": user, "DUNNING_SASL_PASSWORD": password,
            **tls}


@pytest.fixture
def secure_namespace(secure_broker: SecureBroker, tmp_path: Path) -> Iterator[SecureNamespace]:
    namespace = SecureNamespace(bootstrap=secure_broker.plaintext, root=tmp_path)
    yield namespace
    namespace.cleanup()


def cli(namespace: SecureNamespace, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DUNNING), *args], cwd=REPO, env=namespace.env(namespace.root / "cli", free_port()),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", None], ids=["SCRAM-SHA-256", "SCRAM-SHA-512",
                                                                                "SSL-only"])
def test_with_the_right_credentials_the_worker_and_the_cli_work_over_tls(secure_broker, secure_namespace,
                                                                              tmp_path, mechanism):
    namespace = secure_namespace
    namespace.secure = credentials(secure_broker, mechanism)
    worker = Worker(namespace, "w1", tmp_path).start(timeout=90)
    try:
        events = tmp_path / "events.jsonl"
        events.write_bytes(INVOICE + b"\n" + FAILED + b"\n")
        published = cli(namespace, "publish", "--events", str(events))
        assert published.returncode == 0 and "published 2 events" in published.stdout, published.stderr
        tailed = cli(namespace, "tail", "--from-beginning", "--limit", "1", "--idle", "60")
        assert tailed.returncode == 0, tailed.stderr
        [expected] = simulate(items_from_lines([INVOICE, FAILED]), None, None).notices
        assert expected.rule_id == "card-invalid"
        assert f"rule={expected.rule_id}" in tailed.stdout and f"[{expected.notice_id}]" in tailed.stdout

        # its /metrics: every dead-letter reason and crash kind at 0 from the start, and the process metrics
        status, body = get(f"http://127.0.0.1:{worker.web_port}/metrics")
        text = body.decode()
        assert status == 200
        for reason in DeadLetterReason.__args__:
            assert f'dunning_dead_letters_total{{reason="{reason}"}} 0.0' in text
        for what in ("batch", "agent", "clock"):
            assert f'dunning_crashes_total{{what="{what}"}} 0.0' in text
        for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                     'python_gc_collections_total{generation="2"}'):
            assert f"\n{name} " in text
        assert 'dunning_events_total{type="payment.failed"} 1.0' in text
    finally:
        worker.terminate()
    assert "Traceback" not in worker.log_text(since_start=False)


@pytest.mark.parametrize("wrong, says", [
    ({"password": "not-the-password"}, "refused the credentials of user 'dunning-worker' (SCRAM-SHA-512 over "
                                       "SASL_SSL"),
    ({"user": "nobody"}, "refused the credentials of user 'nobody'"),
    ({"mechanism": "SCRAM-SHA-256", "password": "not-the-password"}, "(SCRAM-SHA-256 over SASL_SSL"),
    ({"cafile": "other"}, "presented a certificate that is not trusted (DUNNING_SSL_CAFILE"),
], ids=["password", "user", "password-sha-256", "ca"])
def test_wrong_credentials_are_refused_at_once_with_one_line(secure_broker, secure_namespace, wrong, says):
    if wrong.get("cafile") == "other":
        wrong = {**wrong, "cafile": secure_broker.other_cafile}
    secure_namespace.secure = credentials(secure_broker, **wrong)
    started = time.monotonic()
    result = cli(secure_namespace, "worker", timeout=60)  # a hang fails here
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dunning worker: Kafka at {secure_broker.sasl_ssl} ") and says in line, line
    assert "Traceback" not in result.stderr


def test_the_worker_is_refused_on_a_plaintext_connection_to_the_sasl_ssl_listener(secure_broker,
                                                                                   secure_namespace):
    """No credentials at all: nothing is let through, and the worker stops rather than hang."""
    secure_namespace.secure = {"KAFKA_BOOTSTRAP_SERVERS": secure_broker.sasl_ssl}
    result = cli(secure_namespace, "worker", timeout=120)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dunning worker: cannot reach Kafka at {secure_broker.sasl_ssl} (PLAINTEXT)"), line
