#!/usr/bin/env bash
# Blue-green deployment of a Kubernetes application, driven by the GitHub Actions workflows in
# contrib/github-actions/ (or by hand).
#
# Layout it expects (namespace $NAMESPACE, application $APP):
#   Deployment $APP-blue and $APP-green, pods labelled app.kubernetes.io/name=$APP and
#   slot=blue|green, each with probed as a sidecar (contrib/kubernetes/sidecar/deployment.yaml);
#   Service $APP whose selector includes slot=<live slot>: switching traffic is one patch.
#
# Usage:
#   bluegreen.sh slots                    print live=<slot> and idle=<slot> (GitHub output format)
#   bluegreen.sh deploy SLOT IMAGE        roll IMAGE out to SLOT and wait until it is ready
#   bluegreen.sh forward SLOT             port-forward SLOT's app (18080) and probed (19333)
#   bluegreen.sh switch SLOT              point the Service at SLOT and check it took effect
# Every failure exits non-zero with a message on stderr.
set -euo pipefail

APP=${APP:-shop}
NAMESPACE=${NAMESPACE:-default}
APP_PORT=${APP_PORT:-8080}
PROBED_PORT=${PROBED_PORT:-9333}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-10m}

die() { echo "bluegreen: $*" >&2; exit 1; }
kc() { kubectl --namespace "$NAMESPACE" "$@"; }

check_slot() {
  case "${1:-}" in
    blue | green) ;;
    *) die "slot must be blue or green, got '${1:-}'" ;;
  esac
}

live_slot() {
  local slot
  slot=$(kc get service "$APP" -o jsonpath='{.spec.selector.slot}') \
    || die "cannot read Service $APP in namespace $NAMESPACE"
  check_slot "$slot"
  echo "$slot"
}

other_slot() {
  if [ "$1" = blue ]; then echo green; else echo blue; fi
}

cmd=${1:-}
case "$cmd" in
  slots)
    live=$(live_slot)
    echo "live=$live"
    echo "idle=$(other_slot "$live")"
    ;;
  deploy)
    slot=${2:-}; image=${3:-}
    check_slot "$slot"
    [ -n "$image" ] || die "deploy needs an image"
    kc set image "deployment/$APP-$slot" "$APP=$image" \
      || die "cannot set image of deployment/$APP-$slot"
    kc rollout status "deployment/$APP-$slot" --timeout="$ROLLOUT_TIMEOUT" \
      || die "deployment/$APP-$slot did not become ready within $ROLLOUT_TIMEOUT"
    ;;
  forward)
    slot=${2:-}
    check_slot "$slot"
    kc port-forward "deployment/$APP-$slot" "18080:$APP_PORT" "19333:$PROBED_PORT" >/dev/null &
    echo "forwarding $APP-$slot: app on 127.0.0.1:18080, probed on 127.0.0.1:19333 (pid $!)"
    ;;
  switch)
    slot=${2:-}
    check_slot "$slot"
    patch=$(printf '{"spec":{"selector":{"app.kubernetes.io/name":"%s","slot":"%s"}}}' "$APP" "$slot")
    kc patch service "$APP" --type merge -p "$patch" || die "cannot patch Service $APP"
    [ "$(live_slot)" = "$slot" ] || die "Service $APP still does not select slot $slot"
    echo "traffic of $APP now goes to $slot"
    ;;
  *)
    die "usage: bluegreen.sh slots | deploy SLOT IMAGE | forward SLOT | switch SLOT"
    ;;
esac
