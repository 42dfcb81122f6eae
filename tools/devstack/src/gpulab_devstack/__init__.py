"""The local run and the test servers: embedded PostgreSQL and NATS with JetStream, and all services."""
