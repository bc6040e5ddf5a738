"""Execution venues (one package each, behind service_layer.ports.ExecutionVenue)."""
