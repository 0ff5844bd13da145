"""The delivery service: delivery requests, the scheduling workflow that serves them, and their tracking."""
