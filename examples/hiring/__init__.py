"""A hiring-screen model brought to Fairlane by its own team (see README.md)."""
