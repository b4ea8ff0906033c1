"""What a reader of an MTA's log keeps between lines: the Message-IDs the lab handed the MTA,
the queue id each got, and which already have their decision (the first status wins)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MessageLog:
    expected: set[str] = field(default_factory=set)
    qid_to_mid: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)

    def expect(self, message_id: str) -> None:
        self.expected.add(message_id)

    def forget(self) -> None:
        """Between scenarios: nothing of the old messages is waited for any more."""
        self.expected.clear()
        self.qid_to_mid.clear()
        self.decided.clear()

    def queue_id(self, message_id: str) -> str:
        return next((q for q, m in self.qid_to_mid.items() if m == message_id), "")
