#!/bin/sh
# The gateway container's entrypoint: render nginx.conf from the environment into the runtime
# directory (the root filesystem is read-only), then replace this shell with nginx.
set -eu

# GATEWAY_TEMPLATE is for running this script outside the image (tests/gateway).
template="${GATEWAY_TEMPLATE:-/etc/nginx/drone-delivery/nginx.conf.template}"
: "${GATEWAY_LISTEN_PORT:?}" "${DELIVERY_UPSTREAM:?}" "${GATEWAY_RUNTIME_DIR:?}"
: "${GATEWAY_MAX_BODY_SIZE:?}" "${GATEWAY_RATE_LIMIT:?}" "${GATEWAY_RATE_BURST:?}"
: "${GATEWAY_TRUSTED_PROXIES:?}"

mkdir -p "$GATEWAY_RUNTIME_DIR"
config="$GATEWAY_RUNTIME_DIR/nginx.conf"
# Only the gateway's own variables are substituted; nginx's $variables pass through untouched.
# shellcheck disable=SC2016
envsubst '${GATEWAY_LISTEN_PORT} ${DELIVERY_UPSTREAM} ${GATEWAY_RUNTIME_DIR} ${GATEWAY_MAX_BODY_SIZE} ${GATEWAY_RATE_LIMIT} ${GATEWAY_RATE_BURST} ${GATEWAY_TRUSTED_PROXIES}' \
    <"$template" >"$config"

# nginx must stay in the foreground as the container's process; the template says so itself
# (`daemon off;`), and a template that does not gets it here.
if grep -Eq '^[[:space:]]*daemon[[:space:]]' "$config"; then
    exec nginx -e stderr -c "$config"
fi
exec nginx -e stderr -c "$config" -g 'daemon off;'
