"""Dispatch: trip requests, approvals, assignment, vehicles, drivers, costs."""
