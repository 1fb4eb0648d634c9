"""Users: registration, language, blocked state."""
