"""Collectors: the sidecar HTTP service and the other ways records reach the monitors."""
