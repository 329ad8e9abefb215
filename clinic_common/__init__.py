"""Plumbing every clinic service needs, written once: config, logging, NATS, Redis, gRPC bootstrap."""
