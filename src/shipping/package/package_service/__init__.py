"""The package service: the packages Fabrikam's drones carry (size, weight, tag, owner)."""
