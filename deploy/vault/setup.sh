#!/usr/bin/env bash
# Install what the weightseal key service needs into a Vault or OpenBao server:
#   * a Transit engine for the model KEKs     (default mount: weightseal-transit)
#   * a KV v2 engine for the model registry   (default mount: weightseal-kv)
#   * the policies in this directory (*.hcl): weightseal-kms (the service), weightseal-admin
#   * AppRole auth and the role "weightseal-kms" bound to the weightseal-kms policy
# and print the role_id (and, with --secret-id, a fresh secret_id) for the key service.
#
# This is the operator's equivalent of weightseal.kms._devvault.setup_vault(), which the
# integration tests run against a real OpenBao; both read the same policy files.
#
# Usage:  BAO_ADDR=https://vault:8200 BAO_TOKEN=<admin token> deploy/vault/setup.sh [--secret-id]
# Environment:
#   VAULT_BIN       bao or vault binary           (default: bao if found, else vault)
#   TRANSIT_MOUNT   Transit mount path            (default: weightseal-transit)
#   KV_MOUNT        KV v2 mount path              (default: weightseal-kv)
#   NAME_SUFFIX     appended to policy/role names (default: empty)
#   APPROLE_MOUNT   AppRole auth path             (default: approle)
#   TOKEN_TTL / TOKEN_MAX_TTL / SECRET_ID_TTL     (default: 1h / 4h / 0 = no expiry)
# Re-running is safe: existing mounts are kept, policies and the role are rewritten.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TRANSIT_MOUNT="${TRANSIT_MOUNT:-weightseal-transit}"
KV_MOUNT="${KV_MOUNT:-weightseal-kv}"
NAME_SUFFIX="${NAME_SUFFIX:-}"
APPROLE_MOUNT="${APPROLE_MOUNT:-approle}"
TOKEN_TTL="${TOKEN_TTL:-1h}"
TOKEN_MAX_TTL="${TOKEN_MAX_TTL:-4h}"
SECRET_ID_TTL="${SECRET_ID_TTL:-0}"
SERVICE_POLICY="weightseal-kms"
ROLE="weightseal-kms${NAME_SUFFIX}"
WANT_SECRET_ID=0
[[ "${1:-}" == "--secret-id" ]] && WANT_SECRET_ID=1

if [[ -z "${VAULT_BIN:-}" ]]; then
  if command -v bao >/dev/null 2>&1; then VAULT_BIN=bao; else VAULT_BIN=vault; fi
fi
# The bao CLI reads BAO_*, the vault CLI VAULT_*: accept either.
export BAO_ADDR="${BAO_ADDR:-${VAULT_ADDR:-}}" VAULT_ADDR="${VAULT_ADDR:-${BAO_ADDR:-}}"
export BAO_TOKEN="${BAO_TOKEN:-${VAULT_TOKEN:-}}" VAULT_TOKEN="${VAULT_TOKEN:-${BAO_TOKEN:-}}"

for m in "$TRANSIT_MOUNT" "$KV_MOUNT"; do
  [[ "$m" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || { echo "invalid mount name: $m" >&2; exit 2; }
done

v() { "$VAULT_BIN" "$@"; }

mounts="$(v secrets list -format=json)"
if ! grep -q "\"${TRANSIT_MOUNT}/\"" <<<"$mounts"; then
  v secrets enable -path="$TRANSIT_MOUNT" -description="weightseal model KEKs" transit >/dev/null
fi
if ! grep -q "\"${KV_MOUNT}/\"" <<<"$mounts"; then
  v secrets enable -path="$KV_MOUNT" -version=2 -description="weightseal model registry" kv >/dev/null
fi

for f in "$HERE"/*.hcl; do
  name="$(basename "$f" .hcl)${NAME_SUFFIX}"
  # Same rewrite as render_policy(): only the mount prefix of each path "..." stanza.
  sed -E -e "s#(path[[:space:]]+\")weightseal-transit/#\1${TRANSIT_MOUNT}/#" \
         -e "s#(path[[:space:]]+\")weightseal-kv/#\1${KV_MOUNT}/#" "$f" \
    | v policy write "$name" - >/dev/null
  echo "policy written: $name" >&2
done

if ! v auth list -format=json | grep -q "\"${APPROLE_MOUNT}/\""; then
  v auth enable -path="$APPROLE_MOUNT" approle >/dev/null
fi
v write "auth/${APPROLE_MOUNT}/role/${ROLE}" \
  token_policies="${SERVICE_POLICY}${NAME_SUFFIX}" token_ttl="$TOKEN_TTL" \
  token_max_ttl="$TOKEN_MAX_TTL" secret_id_ttl="$SECRET_ID_TTL" token_type=service >/dev/null

echo "role_id=$(v read -field=role_id "auth/${APPROLE_MOUNT}/role/${ROLE}/role-id")"
if [[ "$WANT_SECRET_ID" == 1 ]]; then
  # Deliver this to the key service through your secret store; it is printed only once.
  echo "secret_id=$(v write -f -field=secret_id "auth/${APPROLE_MOUNT}/role/${ROLE}/secret-id")"
fi
