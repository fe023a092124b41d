"""Tests of the image, Compose file and Kubernetes manifests (marker `container`)."""
