"""What isakmpd and npppd logged, as Prometheus metric families.

log_families(counts) formats LogCounts (checks/attempts.py update_counts());
it judges nothing.  Every label value is from a fixed set, except `user`,
which only ever holds names of /etc/npppd/npppd-users: a failed login's user
name or a peer address is chosen by whoever connects and never becomes a label.

    obsdvpn_ppp_auth_failures_total{reason="wrong-password"} 3
    obsdvpn_ike_failures_total{reason="no-proposal"} 12
    obsdvpn_log_lines_total{result="unmatched"} 0
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .checks.attempts import IKE_REASONS, PPP_AUTH_REASONS, LogCounts

P = "obsdvpn_"


def log_families(counts: LogCounts, read_success: bool = True,
                 users: Iterable[str] = ()) -> Iterator[Metric]:
    """`users`: the names of npppd-users; each gets its byte counters from 0 on, so
    increase() sees a user's first ended session too."""
    auth = CounterMetricFamily(
        P + "ppp_auth_failures", "PPP logins npppd refused, by reason (auth-failed: PAP or "
        "MD5-CHAP, which do not tell a wrong password from an unknown user).", labels=["reason"])
    for reason in PPP_AUTH_REASONS:
        auth.add_metric([reason], counts.ppp_auth_failures.get(reason, 0))
    yield auth
    ike = CounterMetricFamily(
        P + "ike_failures", "IKE exchanges isakmpd dropped or gave up, by reason.",
        labels=["reason"])
    for reason in IKE_REASONS:
        ike.add_metric([reason], counts.ike_failures.get(reason, 0))
    yield ike
    started = CounterMetricFamily(P + "ppp_sessions_started", "PPP sessions npppd opened "
                                  "(TUNNELSTART lines).")
    started.add_metric([], counts.sessions_started)
    yield started
    closed = CounterMetricFamily(P + "ppp_sessions_closed", "Logged-in PPP sessions npppd "
                                 "closed (TUNNELUSAGE lines).")
    closed.add_metric([], counts.sessions_closed)
    yield closed
    rx = CounterMetricFamily(P + "ppp_user_receive_bytes", "Bytes received from the user's "
                             "ended sessions (TUNNELUSAGE data_in), users of npppd-users only.",
                             labels=["user"])
    tx = CounterMetricFamily(P + "ppp_user_transmit_bytes", "Bytes sent to the user in ended "
                             "sessions (TUNNELUSAGE data_out), users of npppd-users only.",
                             labels=["user"])
    names = sorted(set(counts.user_bytes_in) | set(counts.user_bytes_out) | set(users))
    for user in names:
        rx.add_metric([user], counts.user_bytes_in.get(user, 0))
        tx.add_metric([user], counts.user_bytes_out.get(user, 0))
    yield rx
    yield tx
    lines = CounterMetricFamily(P + "log_lines", "Log lines read: isakmpd/npppd lines understood "
                                "(matched) or not (unmatched), other programs' lines (other).",
                                labels=["result"])
    lines.add_metric(["matched"], counts.lines_matched)
    lines.add_metric(["unmatched"], counts.lines_unmatched)
    lines.add_metric(["other"], counts.lines_other)
    yield lines
    ok = GaugeMetricFamily(P + "log_read_success", "1 when the daemon log could be read.")
    ok.add_metric([], 1 if read_success else 0)
    yield ok
