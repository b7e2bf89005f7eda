"""Delivery receipts: what the notification services say became of a notice.

A notice sent on a channel is remembered (state.awaiting, at most AWAITING_LIMIT, each for the ruleset's
delivery.receipt_days) until its receipt comes. Delivered: counted for the episode. Failed permanently: the
channel is unreachable for the account (until an account.updated gives it anew) and the notice waits to go again
on the next channel the rule allows; failed temporarily: it waits to go again on the same channel after the
ruleset's retry delay, at most retry.times times, then on the next channel. Either way the new notice has its
own deterministic id and names the one it replaces, and goes through the window and the limits like any other. A
receipt for a notice not awaited (answered already, aged out, unknown) is recorded and changes nothing.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rules.contact_policy import DeliveryPolicy
from rules.engine.ledger import When
from rules.engine.rulebook import Rulebook
from rules.state import AWAITING_LIMIT, AccountState, Awaiting, Pending
from schemas.events import NoticeDelivered, NoticeFailed

# A notice sent again extends the key of the one it replaces: one replacement per failed notice, so the chain of
# keys (and ids) is the same on every replay.
_AGAIN = "\x1eagain"


class Receipts:
    def __init__(self, policy: DeliveryPolicy | None, rulebook: Rulebook):
        self.policy = policy
        self.rulebook = rulebook

    def sent(self, state: AccountState, notice_id: str, channel: str, now: datetime, pending: Pending) -> None:
        """A notice went on a channel: awaited until its receipt, when the ruleset says what receipts do."""
        if self.policy is None:
            return
        awaiting = state.awaiting
        awaiting.append(Awaiting(notice_id, channel, now, pending))
        if len(awaiting) > AWAITING_LIMIT:
            del awaiting[0]

    def forget(self, state: AccountState, now: datetime) -> None:
        """Notices whose receipt did not come within receipt_days are no longer awaited."""
        awaiting = state.awaiting
        if awaiting and self.policy is not None:
            cutoff = now - timedelta(days=self.policy.receipt_days)
            if awaiting[0].sent_at < cutoff:
                state.awaiting = [entry for entry in awaiting if entry.sent_at >= cutoff]

    def delivered(self, state: AccountState, event: NoticeDelivered, when: When) -> dict[str, str]:
        found, detail = self._answered(state, event)
        if found is not None and state.episode is not None and found.pending.episode_id == state.episode.episode_id:
            state.episode.delivered += 1
        return detail

    def failed(self, state: AccountState, event: NoticeFailed, when: When) -> dict[str, str]:
        found, detail = self._answered(state, event)
        detail.update(reason=event.reason, permanent=str(event.permanent).lower())
        if found is None:
            return detail
        before, channel = found.pending, found.channel
        retry = self.policy.retry
        offer = before.arrangement_id or found.notice_id if before.kind == "offer" else before.arrangement_id
        if not event.permanent and retry is not None and before.retries < retry.times:
            again = replace(before, key=before.key + _AGAIN, replaces=found.notice_id, channel=channel,
                            tried=list(before.tried), not_before=when.now + retry.after, retries=before.retries + 1,
                            deferred_by=["retry"], arrangement_id=offer)
            detail["then"] = f"retry {again.retries} of {retry.times} on {channel} from {again.not_before.isoformat()}"
        else:
            if event.permanent and channel not in state.unreachable:
                state.unreachable.append(channel)
                detail["unreachable"] = channel
            again = replace(before, key=before.key + _AGAIN, replaces=found.notice_id, channel=None,
                            tried=[*before.tried, channel], not_before=None, deferred_by=["delivery_failed"],
                            arrangement_id=offer)
            detail["then"] = "the next channel"
        state.pending.append(again)
        return detail

    def _answered(self, state: AccountState, event: NoticeDelivered | NoticeFailed) -> tuple[Awaiting | None, dict]:
        """The awaited notice a receipt answers (no longer awaited), and the receipt's audit detail."""
        detail = {"notice_id": event.notice_id, "channel": event.channel}
        found = next((entry for entry in state.awaiting if entry.notice_id == event.notice_id), None)
        if found is None:
            detail["ignored"] = "no notice of this account awaits a receipt under this id (answered, aged out or " \
                                "unknown)"
            return None, detail
        state.awaiting.remove(found)
        compiled = self.rulebook.by_id.get(found.pending.rule_id)
        detail.update(rule_id=found.pending.rule_id, template=compiled.rule.emit.template or "" if compiled else "")
        if event.channel != found.channel:
            detail["sent_on"] = found.channel  # the notice's channel is what counts, whatever the receipt says
        return found, detail
