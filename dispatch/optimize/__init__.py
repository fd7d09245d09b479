"""Auto-assign: optimizer proposals for a dispatcher's scope, solved by a worker process."""
