"""Personal notifications, stored so a user who was offline still finds them (inbox + read)."""
