"""Tests of parsers/npppd_users.py: usernames out, passwords never, getcap(3) record rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.npppd_users import parse_usernames, redact

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "npppd-users"
MAN_EXAMPLES = (FIXTURES / "man5-examples.txt").read_text()      # npppd-users.5 EXAMPLES
SHIPPED = (FIXTURES / "sample-npppd-users.txt").read_text()      # /etc/npppd/npppd-users
MAN_PASSWORDS = ("taro's password", "hana's password")


def test_man_page_examples():
    assert parse_usernames(MAN_EXAMPLES) == ("taro", "hana")


def test_passwords_never_in_the_result():
    result = parse_usernames(MAN_EXAMPLES)
    for secret in (*MAN_PASSWORDS, "taro's", "password"):
        assert all(secret not in name for name in result)
        assert secret not in repr(result)


def test_shipped_sample_has_no_user():
    # Every line is a `#` comment, continuation lines included.
    assert parse_usernames(SHIPPED, "/etc/npppd/npppd-users") == ()


def test_redact_man_page_examples():
    red = redact(MAN_EXAMPLES)
    for secret in MAN_PASSWORDS:
        assert secret not in red
    assert red.count(":password=REDACTED:\\\n") == 2
    assert red.splitlines()[2] == "    :framed-ip-address=192.168.0.101:"
    assert len(red.splitlines()) == len(MAN_EXAMPLES.splitlines())
    assert red == MAN_EXAMPLES.replace("taro's password", "REDACTED").replace(
        "hana's password", "REDACTED")
    assert parse_usernames(red) == ("taro", "hana")


def test_redact_commented_out_passwords_too():
    red = redact(SHIPPED)
    assert "taro's password" not in red and "hana's password" not in red
    assert red.count("#\t:password=REDACTED:\\\n") == 2
    assert red.splitlines()[0] == SHIPPED.splitlines()[0]


def test_redact_value_continued_over_lines():
    text = "taro:\\\n\t:password=first\\\nsecond:\\\n\t:framed-ip-address=10.0.0.5:\n"
    red = redact(text)
    assert "first" not in red and "second" not in red
    assert red == "taro:\\\n\t:password=REDACTED\\\n:\\\n\t:framed-ip-address=10.0.0.5:\n"
    assert len(red.split("\n")) == len(text.split("\n"))
    assert parse_usernames(red) == parse_usernames(text) == ("taro",)


def test_redact_any_case_and_value_to_end_of_line():
    text = "bob:Password=s3cret\nalice:password=x:calling-number=0123:\n"
    assert redact(text) == "bob:Password=REDACTED\nalice:password=REDACTED:calling-number=0123:\n"


def test_aliases_and_duplicates():
    text = "taro|taro-mobile:password=a:\nhana:password=b:\ntaro:password=c:\ncarol\n"
    assert parse_usernames(text) == ("taro", "taro-mobile", "hana", "carol")


def test_commented_line_swallows_its_continuation():
    # getent() joins before it looks for `#`: bob is part of the comment.
    text = "#old:\\\nbob:password=x:\nalice:password=y:\n"
    assert parse_usernames(text) == ("alice",)


def test_blank_lines_and_blank_only_lines_are_skipped():
    assert parse_usernames("\n   \n\t\ntaro:password=x:\n\n") == ("taro",)
    assert parse_usernames("") == ()


@pytest.mark.parametrize("text, lineno", [
    # The first record lost its `\`: the password line becomes a nameless record.
    ("taro:\n    :password=secret-one:\\\n    :framed-ip-address=10.0.0.2:\n", 2),
    # An attribute at column 0 of a record of its own.
    ("hana:\\\n    :framed-ip-address=10.0.0.3:\npassword=secret-one:\n", 3),
    (":password=secret-one:\n", 1),
    ("taro||hana:password=secret-one:\n", 1),
    (" taro:password=secret-one:\n", 1),
    ("taro:\\\r\n    :password=secret-one:\r\n", 1),          # DOS line endings
])
def test_malformed_records_raise_without_the_password(text, lineno):
    with pytest.raises(ParseError) as e:
        parse_usernames(text, "/etc/npppd/npppd-users")
    assert e.value.command == "/etc/npppd/npppd-users"
    assert e.value.lineno == lineno
    assert e.value.line is None
    assert "secret-one" not in str(e.value)
    assert all("secret-one" not in str(arg) for arg in e.value.args)
