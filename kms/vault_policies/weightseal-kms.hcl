# weightseal-kms: the policy of the key service itself (AppRole role "weightseal-kms").
#
# The service may create each model's Transit key (only with the safe settings), generate and
# unwrap DEKs, rotate keys, rewrap DEKs and raise min_decryption_version; and read/write the model
# registry in KV v2 (check-and-set writes).  It may NOT export or back up keys, delete keys, make
# a key exportable or deletable, trim old versions, touch sys/, or delete registry entries.
#
# Mount names: "weightseal-transit" and "weightseal-kv" are the defaults.  To install under other
# mounts, replace these two path prefixes (setup.sh and weightseal.kms._devvault do exactly that).

# Create a model KEK: aes256-gcm96, derived (context = model id), never exportable, no
# plaintext backup.  Re-posting an existing key is a no-op in Transit.
path "weightseal-transit/keys/+" {
  capabilities = ["create", "read", "update"]
  allowed_parameters = {
    "type"                   = ["aes256-gcm96"]
    "derived"                = [true]
    "exportable"             = [false]
    "allow_plaintext_backup" = [false]
  }
}

# Rotation adds a key version.
path "weightseal-transit/keys/+/rotate" {
  capabilities = ["update"]
}

# Only the version floor may be changed (retire old versions); not exportable/deletion_allowed.
path "weightseal-transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
  }
}

# DEKs: generate (plaintext returned to the service, wrapped form stored), wrap a locally made
# DEK, unwrap, and rewrap to the latest key version.
path "weightseal-transit/datakey/plaintext/+" {
  capabilities = ["update"]
}
path "weightseal-transit/encrypt/+" {
  capabilities = ["update"]
}
path "weightseal-transit/decrypt/+" {
  capabilities = ["update"]
}
path "weightseal-transit/rewrap/+" {
  capabilities = ["update"]
}

# Explicit denials (deny wins over any other policy attached to the same token).
path "weightseal-transit/export/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/backup/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/restore/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/keys/+/trim" {
  capabilities = ["deny"]
}

# Model registry (KV v2): read, create, check-and-set update, list.  No delete/destroy.
path "weightseal-kv/data/models/*" {
  capabilities = ["create", "read", "update"]
}
path "weightseal-kv/metadata/models/*" {
  capabilities = ["read", "list"]
}
path "weightseal-kv/config" {
  capabilities = ["read"]
}
