#!/usr/bin/env bash
# The real OpenID provider the auth tests run against: the example OpenID Provider of
# zitadel/oidc (a certified OpenID Connect library for Go), built once with `go install` into
# $KWB_CACHE/oidc/<version>/ and reused. It serves discovery, a JWKS, the authorization-code
# flow with a login form, static users, and signs with an RSA key generated at each start
# (so a restart is a key rotation).
#   scripts/oidc/provider.sh path    installs when missing, prints the binary's path
# Needs Go (1.24 or newer) and the Go module proxy.
set -euo pipefail

KWB_CACHE="${KWB_CACHE:-$HOME/.cache/kafka-ws-bridge}"
# Pinned: the example's users, clients and login form are what tests/oidc/ drives.
OIDC_VERSION=v3.52.0
dir="$KWB_CACHE/oidc/$OIDC_VERSION"
bin="$dir/bin/server"

ensure() {
  [ -x "$bin" ] && return
  command -v go >/dev/null 2>&1 || {
    echo "the OpenID provider for the auth tests needs Go (https://go.dev/doc/install)" >&2
    exit 1
  }
  echo "==> building the OpenID provider (zitadel/oidc $OIDC_VERSION example) into $dir" >&2
  local started=$SECONDS
  mkdir -p "$dir/bin"
  # A temporary GOBIN, renamed into place: an interrupted build leaves no half binary behind.
  local tmp
  tmp="$(mktemp -d "$dir/build.XXXXXX")"
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/zitadel/oidc/v3/example/server@$OIDC_VERSION" >&2
  mv "$tmp/server" "$bin"
  rmdir "$tmp"
  echo "==> OpenID provider built in $((SECONDS - started)) s" >&2
}

case "${1:-}" in
  path) ensure; echo "$bin" ;;
  *) echo "usage: $0 path" >&2; exit 2 ;;
esac
