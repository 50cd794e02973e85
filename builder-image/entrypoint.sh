#!/bin/sh
# Starts rootless buildkitd on tcp://[::]:1234 with mutual TLS. The certificates come from Fly
# secrets (PEM text): RHONE_BUILDER_TLS_CA, RHONE_BUILDER_TLS_CERT, RHONE_BUILDER_TLS_KEY.
# Without TLS any build step could call the daemon's API (rootless builds share the host network),
# so the daemon refuses to start without them.
set -eu

state=/home/user/.local/share/buildkit
certs=/run/rhone-builder
for name in RHONE_BUILDER_TLS_CA RHONE_BUILDER_TLS_CERT RHONE_BUILDER_TLS_KEY; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "rhone-builder: $name is not set; set the three TLS secrets (see builder-image/README.md)" >&2
    exit 1
  fi
done

mkdir -p "$state" "$certs"
chown user:user "$state"
umask 077
printf '%s\n' "$RHONE_BUILDER_TLS_CA" > "$certs/ca.pem"
printf '%s\n' "$RHONE_BUILDER_TLS_CERT" > "$certs/cert.pem"
printf '%s\n' "$RHONE_BUILDER_TLS_KEY" > "$certs/key.pem"
chown -R user:user "$certs"
unset RHONE_BUILDER_TLS_CA RHONE_BUILDER_TLS_CERT RHONE_BUILDER_TLS_KEY

# BUILDKITD_FLAGS: extra daemon flags, e.g. --oci-worker-no-process-sandbox where the kernel
# refuses rootlesskit's /proc mount, or --oci-worker-snapshotter=native without overlayfs.
# shellcheck disable=SC2086
exec su-exec user rootlesskit buildkitd \
  --config /etc/rhone-builder/buildkitd.toml \
  --addr unix:///run/user/1000/buildkit/buildkitd.sock \
  --addr 'tcp://[::]:1234' \
  --tlscacert "$certs/ca.pem" --tlscert "$certs/cert.pem" --tlskey "$certs/key.pem" \
  ${BUILDKITD_FLAGS:-}
