"""Approval chains (data per org and request kind) and the approval steps of each request."""
