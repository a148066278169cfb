"""Packaged configuration: base.yml plus one override file per environment."""
