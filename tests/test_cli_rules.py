"""`dunning rules check`: what an author sees in the terminal (and CI sees in the exit code)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streams.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "rules" / "default.yaml", *sorted((REPO / "rules" / "examples").glob("*.yaml"))]

VALID = textwrap.dedent("""\
    version: "2026.12"
    defaults: {timezone: Europe/Berlin, currency: EUR}
    rules:
      - id: day-1
        when: {days_past_due: 1}
        emit: {kind: reminder, channel: email, template: overdue}
      - id: agency
        when: {days_past_due: 45}
        emit: {kind: handoff, to: agency}
""")

INVALID = textwrap.dedent("""\
    version: "2026.12"
    defaults: {timezone: Europe/Berlin, currency: EUR}
    rules:
      - id: day-1
        when: {days_past_due: 1}
        emit: {kind: reminder, channel: email, template: overdue}
      - id: demand-letter
        when:
          days_past_due: 15
          overdue_amount: {gte: 100.00}
        emit: {kind: urgent_notice, channel: letter, template: demand}
""")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(capsys, *paths) -> tuple[int, str, str]:
    code = main(["rules", "check", *map(str, paths)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_valid_file_is_ok(tmp_path, capsys):
    path = write(tmp_path, "berlin.yaml", VALID)
    code, out, err = check(capsys, path)
    assert code == 0
    assert out == f"{path}: ok (version 2026.12, 2 rules)\n"
    assert err == ""


def test_shipped_rulesets_are_ok(capsys):
    code, out, err = check(capsys, *SHIPPED)
    assert (code, err) == (0, "")
    assert [line.split(": ok")[0] for line in out.splitlines()] == [str(path) for path in SHIPPED]


def test_invalid_file_names_file_line_rule_and_field(tmp_path, capsys):
    path = write(tmp_path, "berlin.yaml", INVALID)
    code, out, err = check(capsys, path)
    assert code == 1
    assert out == ""
    assert err.startswith(f"{path}:10: rule 'demand-letter': when.overdue_amount: ")
    assert "quoted decimal strings" in err
    assert "Traceback" not in err


def test_every_invalid_file_is_reported(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", VALID)
    bad = write(tmp_path, "bad.yaml", INVALID)
    empty = write(tmp_path, "empty.yaml", "")
    missing = tmp_path / "missing.yaml"
    code, out, err = check(capsys, bad, good, empty, missing)
    assert code == 1
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(bad), str(empty), str(missing)]
    assert lines[1] == f"{empty}: the file is empty"
    assert lines[2] == f"{missing}: cannot read: No such file or directory"
    # The good file is not reported as broken.
    assert str(good) not in err


@pytest.mark.parametrize("text, says", [
    ("version: 2026.12\ndefaults: {timezone: UTC, currency: EUR}\nrules: []\n", ":1: version: quote the version"),
    ('version: "1"\ndefaults: {timezone: Europe/Berlln, currency: EUR}\nrules: []\n',
     ":2: defaults.timezone: 'Europe/Berlln' is not an IANA time zone name"),
    ('version: "1"\ndefaults: {timezone: UTC, currency: EUR\nrules: []\n', ":3: not valid YAML:"),
    ('version: "1"\ndefaults: {timezone: UTC, currency: EUR}\nrules:\n  - id: x\n    on: payment.bounced\n'
     '    emit: {kind: reminder, channel: sms, template: t}\n', ":5: rule 'x': on: 'payment.bounced'"),
    ("a: &loop [*loop]\n", ": not valid YAML: nested too deeply"),
    ('version: "1"\nx: "\x07"\n', ":2: not valid YAML: control character #x0007"),
])
def test_mistakes_are_one_line_messages_not_tracebacks(tmp_path, capsys, text, says):
    path = write(tmp_path, "rules.yaml", text)
    code, out, err = check(capsys, path)
    assert code == 1
    assert err.startswith(f"{path}{says}")
    assert "Traceback" not in err


def test_no_files_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["rules", "check"])
    assert caught.value.code == 2
    assert "usage: dunning rules check" in capsys.readouterr().err


def test_real_command_line(tmp_path):
    good = write(tmp_path, "good.yaml", VALID)
    bad = write(tmp_path, "bad.yaml", INVALID)
    command = [sys.executable, "-m", "streams.tools.cli", "rules", "check"]

    ok = subprocess.run([*command, str(good)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == f"{good}: ok (version 2026.12, 2 rules)\n"

    failed = subprocess.run([*command, str(bad)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith(f"{bad}:10: rule 'demand-letter': when.overdue_amount: ")
    assert "Traceback" not in failed.stderr
