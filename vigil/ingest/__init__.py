"""Ingestion stage: device readings over HTTP and MQTT, validated, stored, passed on."""
