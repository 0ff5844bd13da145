"""The local stack: the gateway and the three services on their embedded stores, supervised."""
