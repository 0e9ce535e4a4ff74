"""The responder: claim an incident, decide (runbook, policy or LLM), act, verify, record."""
