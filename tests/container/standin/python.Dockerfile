# Local stand-in for python:3.12-slim, built by scripts/base-images from a debootstrap rootfs
# on machines that cannot pull from an image registry. python3 is Debian's (3.11, /usr/bin).
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
# The host's CA bundle, so that pip inside `docker build` trusts the host's TLS path to PyPI.
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/host-ca.crt
CMD ["python3"]
