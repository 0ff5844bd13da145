"""The scheduler service: Fabrikam's drone fleet, which drone flies which delivery, and the flights."""
