"""What the engine knows of its contacts with an account, as facts for rules."""
from __future__ import annotations

from typing import Any

from rules.state import AccountState


def contact_facts(state: AccountState) -> dict[str, Any]:
    """unreachable_channels: channels a permanent delivery failure closed; delivered_contacts: notices of this
    episode a receipt said were delivered."""
    episode = state.episode
    return {"unreachable_channels": len(state.unreachable),
            "delivered_contacts": episode.delivered if episode is not None else 0}
