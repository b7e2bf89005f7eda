"""What each variant and rule achieves, from audit lines: cure attribution, censoring, roll rates, the interval on the
difference in cure rate and its verdict."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from rules.report import MIN_EPISODES, report
from schemas.audit import AuditRecord
from tests.rules.conftest import simulate_scenarios

T0 = datetime.fromisoformat("2026-11-01T00:00:00+08:00")


class Trail:
    """Audit lines of made-up accounts, in order."""

    def __init__(self):
        self.records: list[AuditRecord] = []

    def line(self, account: str, day: float, what: str, variant: str | None, **detail: str) -> None:
        self.records.append(AuditRecord(account, T0 + timedelta(days=day), what, f"{what}-{len(self.records)}", "v1",
                                        detail, variant))

    def episode(self, account: str, variant: str | None, start: float, notices: dict[str, float],
                end: float | None = None, by: str = "payment.received") -> None:
        self.line(account, start, "episode.started", variant)
        for rule, day in notices.items():
            self.line(account, day, "notice.reminder", variant, rule_id=rule, channel="sms", template="t")
        if end is not None:
            self.line(account, end, by, variant)
            self.line(account, end, "episode.ended", variant)


def test_a_cure_is_an_episode_ended_by_a_payment_and_a_rule_counts_from_its_first_notice():
    trail = Trail()
    trail.episode("a", None, 0, {"day-1": 0.5, "day-3": 2.5}, end=4)  # cured 4 days in, 1.5 after day-3
    trail.episode("b", None, 0, {"day-1": 0.5}, end=3, by="dispute.opened")  # resolved, not cured
    trail.episode("c", None, 0, {"day-1": 0.5, "day-3": 2.5}, end=20)  # cured after 20 days
    trail.line("z", 60, "clock.tick", None)  # the horizon
    result = report(trail.records)
    figures = result.variants["(none)"]
    assert (figures.episodes, figures.notices) == (3, 5)
    assert [(figures.cured[d].cured, figures.cured[d].judged) for d in (7, 30)] == [(1, 3), (2, 3)]
    assert figures.median_days_to_cure == 12
    assert figures.per_cure == 2.5
    day_3 = result.rules["(none)"]["day-3"]
    assert (day_3.episodes, day_3.cured[7].cured, day_3.days_to_cure) == (2, 1, [1.5, 17.5])
    assert result.comparisons == []  # no experiment


def test_episodes_too_young_to_judge_are_left_out_of_the_rates():
    trail = Trail()
    trail.episode("old", "champion", 0, {"r": 0}, end=10)
    trail.episode("young", "champion", 25, {"r": 25})  # 5 days old at the horizon: judged at 7 days? no
    trail.line("z", 30, "clock.tick", "champion")
    rate7, rate30 = (report(trail.records).variants["champion"].cured[d] for d in (7, 30))
    assert (rate7.cured, rate7.judged) == (0, 1)  # "old" cured after 10 days: not within 7
    assert (rate30.cured, rate30.judged) == (1, 1)


def test_roll_rates_count_episodes_that_had_time_to_reach_the_next_bucket():
    trail = Trail()
    trail.episode("a", "champion", 0, {}, end=40)  # reached day 41: rolled into 31-60
    trail.episode("b", "champion", 0, {}, end=10)  # cured in 1-30
    trail.episode("c", "champion", 0, {})  # still open at the horizon, day 101: rolled all the way
    trail.episode("d", "champion", 90, {})  # 10 days old: cannot have reached day 31 yet
    trail.line("z", 100, "clock.tick", "champion")
    roll = report(trail.records).variants["champion"].roll
    assert {step: (r.cured, r.judged) for step, r in roll.items()} == {
        "1-30>31-60": (2, 3), "31-60>61-90": (1, 2), "61-90>91+": (1, 1)}


def two_variant_trail(champion: tuple[int, int], challenger: tuple[int, int]) -> Trail:
    """(cured within 30 days, episodes) per variant, all judged."""
    trail = Trail()
    for variant, (cured, total) in (("champion", champion), ("challenger", challenger)):
        for n in range(total):
            trail.episode(f"{variant}-{n}", variant, 0, {"r": 0}, end=5 if n < cured else None)
    trail.line("z", 40, "clock.tick", "champion")
    return trail


def test_the_difference_in_cure_rate_has_a_two_proportion_interval_and_a_verdict():
    [comparison] = report(two_variant_trail((300, 500), (360, 500)).records).comparisons
    spread = 1.959964 * math.sqrt(0.6 * 0.4 / 500 + 0.72 * 0.28 / 500)
    assert (comparison.baseline, comparison.variant) == ("champion", "challenger")
    assert math.isclose(comparison.difference, 0.12)
    assert math.isclose(comparison.low, 0.12 - spread) and math.isclose(comparison.high, 0.12 + spread)
    assert comparison.verdict == (f"challenger cures more than champion: +12.0 points (95% interval "
                                  f"{(0.12 - spread) * 100:+.1f} to {(0.12 + spread) * 100:+.1f})")


def test_an_interval_that_includes_zero_is_no_clear_difference():
    [comparison] = report(two_variant_trail((300, 500), (310, 500)).records).comparisons
    assert comparison.verdict.startswith("no clear difference yet between challenger and champion: +2.0 points")


def test_too_few_episodes_is_not_enough_accounts_yet():
    [comparison] = report(two_variant_trail((30, 50), (45, 50)).records).comparisons
    assert comparison.low is None and comparison.verdict.startswith("not enough accounts yet: champion 50, "
                                                                    "challenger 50 episodes judged at 30 days")
    assert f"at least {MIN_EPISODES}" in comparison.verdict


def test_delivery_and_contact_rates_come_from_the_receipts_in_the_trail():
    """Scenarios 60-62 simulated together: a bounce fallen back to e-mail, a temporary failure retried then sent by
    e-mail, every channel dead."""
    simulation = simulate_scenarios(("60-bounce-falls-back", "61-temporary-failure-retried", "62-every-channel-dead"),
                                    "2026-10-14T00:00:00+08:00", audit=True)
    result = report(simulation.audit)
    day_1 = result.rules["(none)"]["overdue-day-1"]
    # sent: B1 sms + email, T1 sms x 3 + email, D1 sms + email; delivered: B1's and T1's e-mails
    assert (day_1.notices, day_1.delivered, day_1.failed) == (8, 2, 6)
    assert day_1.delivery_rate == 2 / 8 and (day_1.reached, day_1.episodes) == (2, 3)
    everyone = result.variants["(none)"]
    assert everyone.delivered == 3 and everyone.reached == 2  # B1's due-soon receipt came before its episode
    from streams.tools.report import render

    table = render(result).split("delivery (receipts from the notification services)\n")[1]
    assert ["overdue-day-1", "8", "2", "6", "25.0%", "66.7%", "of", "3"] in [row.split() for row in table.splitlines()]
