"""Checks of gpulab's Kubernetes manifests (deploy/kubernetes), run by `make -C tools/deploycheck check`.

deploycheck renders each kustomization with kustomize's own library (`deploycheck -kustomize DIR`);
this package validates every object against the Kubernetes schemas (kubernetes-validate, strict)
and asserts gpulab's invariants on the result. It runs in the workspace's environment, so that it
reads each service's settings from the service's own Settings class.
"""
