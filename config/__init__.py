"""Configuration in one place: the settings class and the logging set-up."""

from config.settings import Settings

__all__ = ["Settings"]
