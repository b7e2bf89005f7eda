"""`dunning worker` refuses to start on a bad ruleset or a mismatched topic layout, with a clear message."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.tools.cli", "worker"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def test_a_bad_ruleset_stops_the_worker_with_the_checkers_message(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text('version: "1"\ndefaults: {timezone: Asia/Shanghai, currency: CNY}\nrules:\n'
                     '  - id: late\n    when: {days_past_due: 1}\n    emit: {kind: reminder, template: x}\n')
    checker = subprocess.run([sys.executable, "-m", "streams.tools.cli", "rules", "check", str(rules)], cwd=REPO,
                             capture_output=True, text=True)
    # No broker is needed: the ruleset is checked before anything else.
    result = run_worker({"DUNNING_RULES": str(rules), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 2
    assert checker.stderr.strip() in result.stderr
    assert f"{rules}:6: rule 'late': emit: a reminder needs a channel" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_is_reported_not_raised():
    result = run_worker({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.broker
def test_topics_with_the_wrong_partition_count_stop_the_worker(kafka_bootstrap, tmp_path):
    prefix = f"layout-{uuid.uuid4().hex[:8]}"
    invoices = f"{prefix}.billing.invoices"
    subprocess.run([str(REPO / "tools" / "kafka" / "kafka-local"), "create-topic", invoices, "2"], check=True,
                   capture_output=True)
    result = run_worker({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DUNNING_PARTITIONS": "3",
                         "DUNNING_TOPIC__INVOICES": invoices, "DUNNING_APP_ID": prefix,
                         "DUNNING_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert f"every topic needs 3 partitions (DUNNING_PARTITIONS), but {invoices} has 2" in result.stderr


@pytest.mark.parametrize("env, says", [
    ({"DUNNING_SECURITY_PROTOCOL": "SASL_SSL", "DUNNING_SASL_USERNAME": "u"},
     "DUNNING_SECURITY_PROTOCOL=SASL_SSL needs DUNNING_SASL_MECHANISM, DUNNING_SASL_USERNAME and DUNNING_SASL_PASSWORD"),
    ({"DUNNING_SASL_MECHANISM": "SCRAM-SHA-256", "DUNNING_SASL_USERNAME": "u", "DUNNING_SASL_PASSWORD": "p"},
     "DUNNING_SASL_MECHANISM is set but DUNNING_SECURITY_PROTOCOL is PLAINTEXT: SASL_SSL (or SASL_PLAINTEXT) uses "
     "it"),
    ({"DUNNING_SECURITY_PROTOCOL": "SSL", "DUNNING_SSL_CAFILE": "/nonexistent/ca.pem"},
     "DUNNING_SSL_CAFILE: no file /nonexistent/ca.pem"),
    ({"DUNNING_SECURITY_PROTOCOL": "TLS"}, "DUNNING_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', "
                                           "'SASL_PLAINTEXT' or 'SASL_SSL'"),
    ({"KAFKA_BOOTSTRAP_SERVERS": " "}, "KAFKA_BOOTSTRAP_SERVERS: KAFKA_BOOTSTRAP_SERVERS is empty"),
], ids=["sasl-half", "mechanism-without-sasl", "cafile", "protocol", "bootstrap"])
def test_bad_settings_stop_the_worker_with_one_line_naming_the_variable(env, says):
    # Settings are read before anything else: no broker is reached (127.0.0.1:1 answers nothing).
    result = run_worker({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"dunning: the settings are not valid: {says}"]
