"""Temporal activities: the provider clients, the action registry and the shared HTTP layer."""
