# The real PostgreSQL and NATS every test talks to (see tools/devstack/src/gpulab_devstack/testing.py).
pytest_plugins = ["gpulab_devstack.testing"]
