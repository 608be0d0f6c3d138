"""Runners: feed the engine core events and the time, and publish what it decides."""
