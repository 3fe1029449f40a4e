"""Real-network fakes of the backends the integration talks to (for tests and demos)."""
