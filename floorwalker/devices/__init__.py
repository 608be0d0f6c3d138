"""Devices: wire decoders, the store registry, and presence from beacon sightings.

Nothing here knows about MQTT clients, Redis or Kafka: decoders take bytes and a
topic string and return typed values.
"""
