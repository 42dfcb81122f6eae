"""Outgoing mail: one row per mail to send, from the event that asked for it to its final state."""
